//! `confab-bench`: load figures for a running Confab API (see docs/benchmarks.md).
//!
//! 1. `GET /v1/me` with a valid token, closed loop: the most requests/s, with p50 and p99.
//! 2. Logins/s with the API's hashing pool saturated (closed loop).
//! 3. `GET /v1/me` at a fixed rate (a quarter of the maximum, open loop): p50 and p99.
//! 4. The same fixed-rate `GET /v1/me` while a login flood is offered at 10× the measured login
//!    capacity from a separate thread: p99 against phase 3, the flood's 200/503 split, and the
//!    API's peak resident memory.
//!
//! 5. `GET /v1/rooms/{id}` and 6. `POST /v1/rooms/{id}/join`, closed loop, with the API's CPU
//!    time per request.
//! 7. The cost of one access-token verification, measured in this process with the API's keys.
//!
//! All traffic goes to the given API address on this machine; every phase is bounded in time.

use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use awc::Client;
use clap::Parser;
use confab_bench::{cpu_seconds, rss_kib};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// Base URL of the API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// PID of the API process, to sample its resident memory.
    #[arg(long)]
    api_pid: Option<u32>,
    /// Seconds per phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent `GET /v1/me` clients.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Multiple of the measured login capacity offered during the flood.
    #[arg(long, default_value_t = 10.0)]
    flood_factor: f64,
    /// Run only one group of phases.
    #[arg(long, value_enum)]
    only: Option<Scenario>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    Accounts,
    Rooms,
}

const PASSWORD: &str = "benchmark password 123";

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = Rc::new(Client::builder().timeout(Duration::from_secs(30)).finish());
    let email = format!("bench-{}@example.org", std::process::id());
    let token = login_token(&client, &args.api, &email).await?;
    if args.only != Some(Scenario::Rooms) {
        accounts(&args, &client, &email, &token).await?;
    }
    if args.only != Some(Scenario::Accounts) {
        rooms(&args, &client, &token).await?;
    }
    Ok(())
}

/// Phases 1–4: `GET /v1/me`, logins, and `GET /v1/me` under a login flood.
async fn accounts(args: &Args, client: &Rc<Client>, email: &str, token: &str) -> anyhow::Result<()> {
    let phase = Duration::from_secs(args.seconds);
    let rss_before = args.api_pid.and_then(rss_kib);
    let me_url = format!("{}/v1/me", args.api);
    let max = closed_loop(client, "GET", &me_url, token, args.concurrency, phase).await;
    println!("GET /v1/me closed loop {}", max.summary(phase));

    let logins = login_load(client, &args.api, email, 8, phase).await;
    let capacity = logins.ok as f64 / phase.as_secs_f64();
    println!("POST /v1/auth/login    {capacity:.1} logins/s ({} ok, {} refused 503)", logins.ok, logins.overloaded);
    if capacity < 0.5 {
        bail!("login capacity too low to measure; are the rate limits raised for the bench?");
    }

    let me_rate = max.0.len() as f64 / phase.as_secs_f64() / 4.0;
    let unloaded = me_at_rate(client.clone(), &args.api, token, me_rate, phase).await;
    println!("GET /v1/me at {me_rate:.0}/s   {}", unloaded.summary(phase));

    let rate = capacity * args.flood_factor;
    let (api, flood_email) = (args.api.clone(), email.to_owned());
    let flood = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let client = Rc::new(Client::builder().timeout(Duration::from_secs(30)).finish());
            login_flood(client, api, flood_email, rate, phase).await
        })
    });
    let sampler = actix_web::rt::spawn(sample_rss(args.api_pid, phase));
    let loaded = me_at_rate(client.clone(), &args.api, token, me_rate, phase).await;
    let flood = flood.join().map_err(|_| anyhow::anyhow!("the flood thread panicked"))?;
    let rss_peak = sampler.await?;
    println!("GET /v1/me at {me_rate:.0}/s, flood {}", loaded.summary(phase));
    println!(
        "login flood            offered {rate:.0}/s ({}x capacity): {} ok, {} refused 503, {} other",
        args.flood_factor, flood.ok, flood.overloaded, flood.other
    );
    println!(
        "p99 ratio flood/unloaded: {:.2} (target <= 2.0)",
        loaded.percentile(99.0).as_secs_f64() / unloaded.percentile(99.0).as_secs_f64()
    );
    if let (Some(before), Some(peak)) = (rss_before, rss_peak) {
        println!("API resident memory: {} MiB before, {} MiB peak during the flood", before / 1024, peak / 1024);
    }
    Ok(())
}

/// Phases 5–7: `GET /v1/rooms/{id}` and `POST /v1/rooms/{id}/join`, with the API's CPU time
/// per request, and the cost of one access-token verification measured in this process.
async fn rooms(args: &Args, client: &Rc<Client>, token: &str) -> anyhow::Result<()> {
    let phase = Duration::from_secs(args.seconds);
    let mut res = client
        .post(format!("{}/v1/rooms", args.api))
        .bearer_auth(token)
        .send_json(&json!({"name": "Bench room"}))
        .await
        .map_err(|e| anyhow::anyhow!("creating the room: {e}"))?;
    let room: Value = res.json().await?;
    let room_url = format!("{}/v1/rooms/{}", args.api, room["id"].as_str().context("room id")?);
    for (method, url, label) in [
        ("GET", room_url.clone(), "GET /v1/rooms/{id}       "),
        ("POST", format!("{room_url}/join"), "POST /v1/rooms/{id}/join "),
    ] {
        let cpu_before = args.api_pid.and_then(cpu_seconds);
        let latencies = closed_loop(client, method, &url, token, args.concurrency, phase).await;
        let cpu = args.api_pid.and_then(cpu_seconds).zip(cpu_before).map(|(after, before)| after - before);
        let per_request = cpu.map(|c| format!(", API CPU {:.0} µs/request", c * 1e6 / latencies.0.len().max(1) as f64));
        println!("{label}{}{}", latencies.summary(phase), per_request.unwrap_or_default());
    }
    let verify = verification_cost(client, &args.api, token).await?;
    println!("access-token verification (EdDSA, in-process): {:.1} µs each", verify.as_secs_f64() * 1e6);
    Ok(())
}

/// The time one verification of `token` takes with the API's published keys.
async fn verification_cost(client: &Client, api: &str, token: &str) -> anyhow::Result<Duration> {
    let mut res = client
        .get(format!("{api}/.well-known/jwks.json"))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("fetching the JWKS: {e}"))?;
    let jwks: confab_common::tokens::JwkSet = res.json().await?;
    let verifier = confab_common::tokens::Verifier::new(&jwks, "confab", "confab-api");
    const ROUNDS: u32 = 20_000;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        verifier.verify::<Value>(token).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(started.elapsed() / ROUNDS)
}

async fn login_token(client: &Client, api: &str, email: &str) -> anyhow::Result<String> {
    let signup = json!({"email": email, "password": PASSWORD, "display_name": "Bench"});
    let reachable = |e: awc::error::SendRequestError| anyhow::anyhow!("{api} unreachable: {e}");
    client.post(format!("{api}/v1/auth/signup")).send_json(&signup).await.map_err(reachable)?;
    let mut res = client
        .post(format!("{api}/v1/auth/login"))
        .send_json(&json!({"email": email, "password": PASSWORD}))
        .await
        .map_err(reachable)?;
    let body: Value = res.json().await.context("login reply")?;
    body["access_token"].as_str().map(str::to_owned).with_context(|| format!("login failed: {body}"))
}

struct Latencies(Vec<Duration>);

impl Latencies {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        let index = ((p / 100.0) * (sorted.len().saturating_sub(1)) as f64).round() as usize;
        sorted.get(index).copied().unwrap_or_default()
    }

    fn summary(&self, phase: Duration) -> String {
        format!(
            "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms ({} requests)",
            self.0.len() as f64 / phase.as_secs_f64(),
            self.percentile(50.0).as_secs_f64() * 1000.0,
            self.percentile(99.0).as_secs_f64() * 1000.0,
            self.0.len()
        )
    }
}

/// `concurrency` closed-loop clients sending `method url` with `token` for `phase`; the
/// latencies of successful answers.
async fn closed_loop(
    client: &Client,
    method: &str,
    url: &str,
    token: &str,
    concurrency: usize,
    phase: Duration,
) -> Latencies {
    let deadline = Instant::now() + phase;
    let method: awc::http::Method = method.parse().expect("a valid method");
    let workers = (0..concurrency).map(|_| async {
        let mut latencies = Vec::new();
        while Instant::now() < deadline {
            let started = Instant::now();
            let res = client.request(method.clone(), url).bearer_auth(token).send().await;
            if let Ok(mut res) = res {
                let _ = res.body().await;
                if res.status().is_success() {
                    latencies.push(started.elapsed());
                }
            }
        }
        latencies
    });
    Latencies(futures_util::future::join_all(workers).await.into_iter().flatten().collect())
}

/// Open loop: starts a `GET /v1/me` every 1/`rate` s regardless of answers, for `phase`.
async fn me_at_rate(client: Rc<Client>, api: &str, token: &str, rate: f64, phase: Duration) -> Latencies {
    let deadline = Instant::now() + phase;
    let mut tick = actix_web::rt::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut in_flight = Vec::new();
    while Instant::now() < deadline {
        tick.tick().await;
        let (client, url, token) = (client.clone(), format!("{api}/v1/me"), token.to_owned());
        in_flight.push(actix_web::rt::spawn(async move {
            let started = Instant::now();
            let mut res = client.get(url).bearer_auth(token).send().await.ok()?;
            let _ = res.body().await;
            res.status().is_success().then(|| started.elapsed())
        }));
    }
    let mut latencies = Vec::new();
    for request in in_flight {
        latencies.extend(request.await.ok().flatten());
    }
    Latencies(latencies)
}

#[derive(Default)]
struct Outcomes {
    ok: u64,
    overloaded: u64,
    other: u64,
}

impl Outcomes {
    fn add(&mut self, status: Option<u16>) {
        match status {
            Some(200) => self.ok += 1,
            Some(503) => self.overloaded += 1,
            _ => self.other += 1,
        }
    }
}

async fn login_once(client: &Client, api: &str, email: &str) -> Option<u16> {
    let body = json!({"email": email, "password": PASSWORD});
    let mut res = client.post(format!("{api}/v1/auth/login")).send_json(&body).await.ok()?;
    let _ = res.body().await;
    Some(res.status().as_u16())
}

/// Closed loop: `concurrency` clients logging in back to back.
async fn login_load(client: &Client, api: &str, email: &str, concurrency: usize, phase: Duration) -> Outcomes {
    let deadline = Instant::now() + phase;
    let workers = (0..concurrency).map(|_| async move {
        let mut outcomes = Outcomes::default();
        while Instant::now() < deadline {
            outcomes.add(login_once(client, api, email).await);
        }
        outcomes
    });
    let mut total = Outcomes::default();
    for o in futures_util::future::join_all(workers).await {
        total.ok += o.ok;
        total.overloaded += o.overloaded;
        total.other += o.other;
    }
    total
}

/// Open loop: starts a login every 1/`rate` s regardless of answers, for `phase`.
async fn login_flood(client: Rc<Client>, api: String, email: String, rate: f64, phase: Duration) -> Outcomes {
    let deadline = Instant::now() + phase;
    let mut tick = actix_web::rt::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut in_flight = Vec::new();
    while Instant::now() < deadline {
        tick.tick().await;
        let (client, api, email) = (client.clone(), api.clone(), email.clone());
        in_flight.push(actix_web::rt::spawn(async move { login_once(&client, &api, &email).await }));
    }
    let mut outcomes = Outcomes::default();
    for request in in_flight {
        outcomes.add(request.await.ok().flatten());
    }
    outcomes
}

/// Peak VmRSS of `pid` over `phase`, sampled every 200 ms.
async fn sample_rss(pid: Option<u32>, phase: Duration) -> Option<u64> {
    let pid = pid?;
    let deadline = Instant::now() + phase;
    let mut peak = 0;
    while Instant::now() < deadline {
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    Some(peak)
}
