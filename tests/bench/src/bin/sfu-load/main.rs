//! `sfu-load`: the SFU benchmark's load tool (docs/benchmarks.md, "SFU forwarding"). One process
//! holds one publisher and N subscribers of one target. The publisher sends a pre-encoded 720p
//! VP8 clip as three simulcast layers in real time; every subscriber receives the 720p layer,
//! counts its packets per SSRC, detects loss by sequence-number gaps and times each packet from
//! the publisher's send to its arrival (`timing.rs` says how packets are recognised). After the
//! warm-up, one window is measured: forwarded packets/s, lost packets, latency percentiles, and
//! the server process's CPU time and resident memory (`--server-pid`). One step (one N) per run;
//! `deploy/local/bench-sfu` runs the steps, each against a fresh server process. With
//! `--failovers N` the Confab target is measured another way: how soon media flows again when
//! the SFU serving the room is killed (`failover.rs`).
//!
//! Everything runs on one thread (the tool is pinned to the core the server does not use): the
//! WebRTC peers are webrtc-rs's sans-IO connections driven by tasks of their own.

mod clip;
mod confab;
mod failover;
mod janus;
mod measure;
mod pacing;
mod reception;
mod relay;
mod timing;
mod webrtc;

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use confab_bench::rss_kib;
use confab_bench::simulcast::LAYERS;

use crate::clip::Clip;
use crate::reception::Reception;
use crate::timing::Timing;

#[derive(Parser)]
struct Args {
    #[arg(long, value_enum)]
    target: TargetKind,
    #[arg(long)]
    subscribers: usize,
    /// The directory holding the three layers' IVF files (`simulcast::LAYERS`).
    #[arg(long)]
    clip_dir: PathBuf,
    /// The server process measured (Janus, the relay, our SFU).
    #[arg(long)]
    server_pid: u32,
    #[arg(long, default_value = "http://127.0.0.1:8088/janus")]
    janus_url: String,
    #[arg(long, default_value = "127.0.0.1:5004")]
    relay: SocketAddr,
    /// Confab: the gateway the participants join through.
    #[arg(long, default_value = "ws://127.0.0.1:8181/v1/signal")]
    gateway: String,
    /// Confab: the deployment's signing key (PEM file), to sign join tickets.
    #[arg(long)]
    signing_key: Option<PathBuf>,
    /// Confab: the port the tool serves the key's JWKS on (`/jwks`), for the gateway.
    #[arg(long, default_value_t = 8189)]
    jwks_port: u16,
    /// The address the tool's sockets bind to (and its ICE candidates name).
    #[arg(long, default_value = "127.0.0.1")]
    local_ip: IpAddr,
    /// Seconds between the last subscriber connecting and the window.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Space each layer's packets at this multiple of its average packet rate, as a browser's
    /// pacer does (libwebrtc: 2.5); 0 sends each frame's packets together.
    #[arg(long, default_value_t = 0.0)]
    pacing_factor: f64,
    /// Print the Markdown table's header first.
    #[arg(long)]
    header: bool,
    /// Confab: instead of a forwarding step, kill the SFU serving the room this many times and
    /// time how soon media flows again through the other (`failover.rs`).
    #[arg(long, default_value_t = 0)]
    failovers: usize,
    /// Confab, `--failovers`: the directory of the SFU instances' PID files (`<instance id>.pid`).
    #[arg(long)]
    sfu_pid_dir: Option<PathBuf>,
    /// Confab, `--failovers`: the deployment's Redis and key prefix, where the room's SFU is read.
    #[arg(long, default_value = "redis://127.0.0.1:6379/")]
    redis_url: String,
    #[arg(long, default_value = "confab")]
    redis_prefix: String,
}

/// The systems measured: Janus and the bare relay, the anchors, and our SFU.
#[derive(Clone, Copy, ValueEnum)]
enum TargetKind {
    Janus,
    Relay,
    Confab,
}

/// How one system under test takes a publisher and subscribers: the one part of the tool that
/// differs per system. Both methods spawn the peer's task on the tool's thread and return once
/// the server has taken it (the connection itself comes up in the task).
pub(crate) trait Target {
    /// Starts the publisher, which sends the clip from when it is connected.
    async fn publish(&mut self, run: &Rc<Run>) -> anyhow::Result<()>;
    /// Adds one subscriber of the publisher's 720p layer; its counts fill the returned value.
    async fn subscribe(&mut self, run: &Rc<Run>) -> anyhow::Result<Rc<RefCell<Reception>>>;
}

/// What the publisher and the subscribers of one run share.
pub(crate) struct Run {
    pub local_ip: IpAddr,
    pub pacing_factor: f64,
    pub clip: Clip,
    pub timing: RefCell<Timing>,
    pub publisher_connected: Cell<bool>,
    pub publisher_failed: Cell<bool>,
    /// Subscribers started so far (which of them time their packets, [`webrtc::Subscriber`]).
    pub subscribers: Cell<usize>,
}

/// How long the publisher and the subscribers may take to connect.
const CONNECT_WAIT: Duration = Duration::from_secs(60);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let clip = Clip::read(&args.clip_dir)?;
    let timing = Timing::new(clip.payloads());
    let rates: Vec<String> = (0..LAYERS.len()).map(|layer| format!("{:.0}", clip.packets_per_second(layer))).collect();
    eprintln!(
        "sfu-load: the clip loops every {:.1} s; packets/s per layer (q, h, f): {}; {} packet keys occur twice and are not timed",
        clip.period.as_secs_f64(),
        rates.join(", "),
        timing.ambiguous_keys(),
    );
    let timing = RefCell::new(timing);
    let run = Rc::new(Run {
        local_ip: args.local_ip,
        pacing_factor: args.pacing_factor,
        clip,
        timing,
        publisher_connected: Cell::new(false),
        publisher_failed: Cell::new(false),
        subscribers: Cell::new(0),
    });
    actix_web::rt::System::new().block_on(async {
        let step = match args.target {
            TargetKind::Janus => step(janus::Janus::connect(&args.janus_url).await?, "Janus", &args, &run).await?,
            TargetKind::Relay => step(relay::Relay { address: args.relay }, "bare relay", &args, &run).await?,
            TargetKind::Confab => {
                let key = args.signing_key.as_ref().context("--signing-key is needed for Confab")?;
                let mut confab = confab::Confab::new(&args.gateway, &std::fs::read_to_string(key)?, args.jwks_port)?;
                if args.failovers > 0 {
                    return failovers(&mut confab, &args, &run).await;
                }
                step(confab, "Confab", &args, &run).await?
            }
        };
        if args.header {
            measure::print_header();
        }
        step.print();
        Ok(())
    })
}

async fn step<T: Target>(mut target: T, name: &str, args: &Args, run: &Rc<Run>) -> anyhow::Result<measure::Step> {
    target.publish(run).await?;
    wait_for(|| run.publisher_connected.get() || run.publisher_failed.get()).await;
    if !run.publisher_connected.get() {
        bail!("the publisher did not connect to {name}");
    }
    let rss_before = rss_kib(args.server_pid).unwrap_or(0);
    let mut receptions = Vec::with_capacity(args.subscribers);
    for _ in 0..args.subscribers {
        receptions.push(target.subscribe(run).await?);
    }
    wait_for(|| receptions.iter().all(|r| r.borrow().connected || r.borrow().failed)).await;
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let mut step = measure::window(run, &receptions, args.server_pid, Duration::from_secs(args.seconds)).await;
    step.target = name.to_owned();
    step.rss_before_kib = rss_before;
    Ok(step)
}

/// `--failovers`: the times from each kill to media through the next SFU, and their summary
/// (nearest-rank percentiles).
async fn failovers(confab: &mut confab::Confab, args: &Args, run: &Rc<Run>) -> anyhow::Result<()> {
    let settings = failover::Settings {
        kills: args.failovers,
        pid_dir: args.sfu_pid_dir.clone().context("--sfu-pid-dir is needed for --failovers")?,
        redis_url: args.redis_url.clone(),
        redis_prefix: args.redis_prefix.clone(),
    };
    let times = failover::measure(confab, run, &settings).await?;
    let (mut connected, mut media): (Vec<Duration>, Vec<Duration>) = times.into_iter().unzip();
    let ms = |times: &mut [Duration], p| failover::percentile(times, p).as_millis();
    let (c50, c99) = (ms(&mut connected, 50), ms(&mut connected, 99));
    let (m50, m99, max) = (ms(&mut media, 50), ms(&mut media, 99), ms(&mut media, 100));
    println!(
        "| Confab failover | {} kills | connected p50 {c50} ms, p99 {c99} ms | media p50 {m50} ms, p99 {m99} ms, max {max} ms |",
        media.len()
    );
    println!(
        "result target=Confab_failover kills={} connected_p50_ms={c50} connected_p99_ms={c99} p50_ms={m50} p99_ms={m99} max_ms={max}",
        media.len()
    );
    Ok(())
}

pub(crate) async fn wait_for(done: impl Fn() -> bool) {
    let give_up = Instant::now() + CONNECT_WAIT;
    while !done() && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
