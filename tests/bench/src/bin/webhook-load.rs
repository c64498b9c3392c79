//! Webhook delivery against a running API (`deploy/local/bench-webhooks`): a receiver on
//! loopback, an endpoint registered for `room.created`, then two phases.
//! - live: rooms are created at a steady rate and each event's latency, from the commit that
//!   wrote it (`created_at` in the body) to its arrival, is measured;
//! - backlog: the endpoint is paused while rooms are created, then resumed, and the time to
//!   drain the queue gives the delivery rate of one API instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::{Context, bail};
use clap::Parser;
use futures_util::StreamExt;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    api: String,
    #[arg(long)]
    email: String,
    #[arg(long)]
    password: String,
    /// Events per phase.
    #[arg(long, default_value_t = 2000)]
    events: usize,
    /// Room creations per second in the live phase.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Room creations in flight at once in the backlog phase.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

/// Event id → (when it arrived, when its change committed), first copy only.
type Arrivals = Arc<Mutex<HashMap<String, (SystemTime, SystemTime)>>>;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let login = call(
        &client,
        "POST",
        &format!("{}/v1/auth/login", args.api),
        None,
        json!({"email": args.email, "password": args.password}),
    )
    .await?;
    let token = login["access_token"].as_str().context("admin login")?.to_owned();
    let arrivals: Arrivals = Arc::default();
    let receiver = receiver(arrivals.clone())?;
    let webhook = call(
        &client,
        "POST",
        &format!("{}/v1/admin/webhooks", args.api),
        Some(&token),
        json!({"url": receiver, "events": ["room.created"], "description": "webhook-load"}),
    )
    .await?;
    let webhook_url = format!("{}/v1/admin/webhooks/{}", args.api, webhook["id"].as_str().context("webhook id")?);

    let started = Instant::now();
    let mut pace = tokio::time::interval(Duration::from_secs(1) / args.rate.max(1));
    for i in 0..args.events {
        pace.tick().await;
        call(&client, "POST", &format!("{}/v1/rooms", args.api), Some(&token), json!({"name": format!("live {i}")}))
            .await?;
    }
    let created_in = started.elapsed();
    wait_for(&arrivals, args.events).await?;
    let total = started.elapsed();
    let mut latencies: Vec<f64> = arrivals
        .lock()
        .unwrap()
        .values()
        .map(|(arrived, committed)| arrived.duration_since(*committed).unwrap_or_default().as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!(
        "live: {} events at {:.0}/s, all delivered {:.2} s after the first; commit→arrival ms p50 {:.1} p95 {:.1} p99 {:.1} max {:.1}",
        args.events,
        args.events as f64 / created_in.as_secs_f64(),
        total.as_secs_f64(),
        at(0.5),
        at(0.95),
        at(0.99),
        latencies[latencies.len() - 1],
    );

    arrivals.lock().unwrap().clear();
    call(&client, "PATCH", &webhook_url, Some(&token), json!({"active": false})).await?;
    create_rooms(&client, &args, &token).await?;
    let resumed = Instant::now();
    call(&client, "PATCH", &webhook_url, Some(&token), json!({"active": true})).await?;
    wait_for(&arrivals, args.events).await?;
    let drained = resumed.elapsed();
    println!(
        "backlog: {} queued deliveries drained in {:.2} s: {:.0} deliveries/s by one API instance",
        args.events,
        drained.as_secs_f64(),
        args.events as f64 / drained.as_secs_f64()
    );
    call(&client, "DELETE", &webhook_url, Some(&token), Value::Null).await?;
    Ok(())
}

/// Starts the receiver; returns its URL.
fn receiver(arrivals: Arrivals) -> anyhow::Result<String> {
    let server = HttpServer::new(move || {
        let arrivals = arrivals.clone();
        App::new().default_service(web::to(move |body: web::Bytes| {
            let arrivals = arrivals.clone();
            async move {
                let arrived = SystemTime::now();
                if let Ok(event) = serde_json::from_slice::<Value>(&body) {
                    let committed = event["created_at"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map(SystemTime::from)
                        .unwrap_or(arrived);
                    let id = event["id"].as_str().unwrap_or_default().to_owned();
                    arrivals.lock().unwrap().entry(id).or_insert((arrived, committed));
                }
                HttpResponse::NoContent().finish()
            }
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")?;
    let url = format!("http://{}/hook", server.addrs()[0]);
    actix_web::rt::spawn(server.run());
    Ok(url)
}

async fn create_rooms(client: &awc::Client, args: &Args, token: &str) -> anyhow::Result<()> {
    let url = format!("{}/v1/rooms", args.api);
    let results: Vec<anyhow::Result<Value>> = futures_util::stream::iter(0..args.events)
        .map(|i| call(client, "POST", &url, Some(token), json!({"name": format!("load {i}")})))
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    results.into_iter().find(Result::is_err).unwrap_or(Ok(Value::Null)).map(drop)
}

async fn wait_for(arrivals: &Arrivals, count: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while arrivals.lock().unwrap().len() < count {
        if Instant::now() > deadline {
            bail!("only {} of {count} events arrived within 300 s", arrivals.lock().unwrap().len());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

async fn call(
    client: &awc::Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut request = client.request(method.parse()?, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut response = if body.is_null() { request.send().await } else { request.send_json(&body).await }
        .map_err(|e| anyhow::anyhow!("{method} {url}: {e}"))?;
    let bytes = response.body().await?;
    if !response.status().is_success() {
        bail!("{method} {url}: {} {}", response.status(), String::from_utf8_lossy(&bytes));
    }
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}
