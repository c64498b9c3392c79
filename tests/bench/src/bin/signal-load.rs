//! `signal-load`: load for the signaling gateway (or, with `--bare`, for `bare-relay`).
//!
//! Opens `--connections` WebSockets in rooms of `--room-size`, connection i to target
//! i mod (number of targets), so with two targets every neighbour in a room is on the other
//! instance. Each connection sends `signal` messages to the next peer of its room at a fixed
//! rate, with its send time inside; the receiver reads it back. For each per-connection rate in
//! `--rates` it prints offered and delivered messages/s and p50/p99/p999 relay latency. With
//! `--idle` it only holds the connections and prints the servers' resident memory per
//! connection. Results and commands: docs/benchmarks.md.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use confab_bench::signaling::{client_text, read, welcome_peer_id};
use confab_bench::{cpu_seconds, rss_kib};
use confab_common::tokens::SigningKeys;
use confab_domain::{CallRole, RoomRole};
use confab_protocol::signal::server_message::Kind;
use confab_protocol::signal::signal::Payload;
use confab_protocol::signal::{IceCandidate, Signal, client_message};
use confab_tickets::{TicketClaims, TicketHolder};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Parser)]
struct Args {
    /// WebSocket URLs, comma-separated (gateways' `/v1/signal`, or the bare relay).
    #[arg(long, value_delimiter = ',', required = true)]
    targets: Vec<String>,
    /// The targets are `bare-relay`s: no tickets, the room goes in `?room=`.
    #[arg(long)]
    bare: bool,
    /// The API's signing key (PEM), to sign join tickets the gateways accept.
    #[arg(long)]
    signing_key: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    #[arg(long, default_value_t = 4)]
    room_size: usize,
    /// Messages per second per connection, one measured step each.
    #[arg(long, value_delimiter = ',', default_value = "1,2,5,10,20")]
    rates: Vec<f64>,
    /// Seconds per step.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Server PIDs whose resident memory is reported, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pids: Vec<u32>,
    /// Hold the connections without traffic and report memory per connection.
    #[arg(long)]
    idle: bool,
    /// Padding in each `signal`, to the size of a typical ICE candidate message.
    #[arg(long, default_value_t = 120)]
    padding: usize,
}

/// Counters shared by every connection of the run.
struct Shared {
    origin: Instant,
    /// Microseconds between two sends of one connection; 0 while paused.
    interval_us: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
    stopped: AtomicBool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.room_size < 2 {
        bail!("--room-size must be at least 2");
    }
    let keys = match (&args.signing_key, args.bare) {
        (_, true) => None,
        (Some(path), false) => Some(SigningKeys::from_pem(&std::fs::read_to_string(path)?)?),
        (None, false) => bail!("--signing-key is needed to sign tickets for gateways"),
    };
    let run_id = random_hex(4);
    let rss_before = total_rss(&args.pids);
    let started = Instant::now();
    let (sockets, peer_ids) = connect_all(&args, keys.as_ref(), &run_id).await?;
    let connecting = started.elapsed();
    println!(
        "{} connections in rooms of {} over {} target(s), connected in {:.1} s",
        sockets.len(),
        args.room_size,
        args.targets.len(),
        connecting.as_secs_f64()
    );
    if args.idle {
        return report_idle(&args, sockets, rss_before).await;
    }

    let shared = Arc::new(Shared {
        origin: Instant::now(),
        interval_us: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        latencies_us: Mutex::new(Vec::new()),
        stopped: AtomicBool::new(false),
    });
    for (index, socket) in sockets.into_iter().enumerate() {
        let first_in_room = index - index % args.room_size;
        let next = first_in_room + (index + 1 - first_in_room) % args.room_size;
        let to = peer_ids.get(next).cloned().unwrap_or_default();
        let (sink, stream) = socket.split();
        let phase = Duration::from_micros((index as u64 * 7919) % 1_000_000);
        tokio::spawn(send_signals(sink, to, args.padding, phase, shared.clone()));
        tokio::spawn(read_signals(stream, shared.clone()));
    }

    // Warm-up at the first rate, then one measured step per rate.
    set_rate(&shared, args.rates[0]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("rate/conn  offered/s  delivered/s  p50 ms  p99 ms  p999 ms  server RSS MiB  server CPU µs/msg");
    let mut peak: f64 = 0.0;
    for &rate in &args.rates {
        peak = peak.max(step(&args, &shared, rate, "").await);
    }
    // The peak is the most delivered in any step; latency is judged at half of it, after the
    // overloaded steps' queues have drained.
    shared.interval_us.store(0, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    step(&args, &shared, peak / 2.0 / args.connections as f64, "  (half of peak)").await;
    shared.stopped.store(true, Ordering::Relaxed);
    Ok(())
}

/// One measured step at `rate` messages/s per connection; prints its line and returns the
/// delivered messages/s.
async fn step(args: &Args, shared: &Shared, rate: f64, label: &str) -> f64 {
    set_rate(shared, rate);
    tokio::time::sleep(Duration::from_secs(1)).await;
    shared.sent.store(0, Ordering::Relaxed);
    shared.received.store(0, Ordering::Relaxed);
    shared.latencies_us.lock().unwrap().clear();
    let cpu_before = total_cpu(&args.pids);
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let seconds = window.elapsed().as_secs_f64();
    let cpu = total_cpu(&args.pids).zip(cpu_before).map(|(after, before)| after - before);
    let offered = shared.sent.load(Ordering::Relaxed) as f64 / seconds;
    let delivered = shared.received.load(Ordering::Relaxed) as f64 / seconds;
    let mut latencies = std::mem::take(&mut *shared.latencies_us.lock().unwrap());
    latencies.sort_unstable();
    let ms = |p: f64| percentile(&latencies, p) as f64 / 1000.0;
    let rss = total_rss(&args.pids).map_or("-".into(), |kib| format!("{:.0}", kib as f64 / 1024.0));
    let received = shared.received.load(Ordering::Relaxed).max(1) as f64;
    let cpu_per_message = cpu.map_or("-".into(), |cpu| format!("{:.1}", cpu * 1e6 / received));
    println!(
        "{rate:>9.2}  {offered:>9.0}  {delivered:>11.0}  {:>6.2}  {:>6.2}  {:>7.2}  {rss:>14}  {cpu_per_message:>17}{label}",
        ms(50.0),
        ms(99.0),
        ms(99.9)
    );
    delivered
}

fn set_rate(shared: &Shared, per_second: f64) {
    shared.interval_us.store((1e6 / per_second) as u64, Ordering::Relaxed);
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    let index = ((p / 100.0) * sorted.len().saturating_sub(1) as f64).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn total_rss(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| rss_kib(pid)).sum()
}

fn total_cpu(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| cpu_seconds(pid)).sum()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens every connection (64 handshakes at a time) and reads its welcome; returns the sockets
/// and their peer ids, in connection order.
async fn connect_all(
    args: &Args,
    keys: Option<&SigningKeys>,
    run_id: &str,
) -> anyhow::Result<(Vec<Socket>, Vec<String>)> {
    let connecting = futures_util::stream::iter(0..args.connections)
        .map(|index| {
            let room = format!("bench-{run_id}-{}", index / args.room_size);
            let target = &args.targets[index % args.targets.len()];
            async move { connect(target, &room, index, args, keys).await }
        })
        .buffered(64);
    let connected: Vec<(Socket, String)> =
        connecting.collect::<Vec<_>>().await.into_iter().collect::<Result<_, _>>()?;
    Ok(connected.into_iter().unzip())
}

async fn connect(
    target: &str,
    room: &str,
    index: usize,
    args: &Args,
    keys: Option<&SigningKeys>,
) -> anyhow::Result<(Socket, String)> {
    let request = match keys {
        None => format!("{target}?room={room}").into_client_request()?,
        Some(keys) => {
            let mut request = target.into_client_request()?;
            let protocols = format!("confab.v1, confab.ticket.{}", ticket(keys, room, index, args.room_size)?);
            request.headers_mut().insert("sec-websocket-protocol", protocols.parse()?);
            request
        }
    };
    let (mut socket, _) =
        tokio_tungstenite::connect_async(request).await.with_context(|| format!("connection {index} to {target}"))?;
    while let Some(frame) = socket.next().await {
        if let Message::Text(text) = frame? {
            return Ok((socket, welcome_peer_id(&text).with_context(|| format!("connection {index}"))?));
        }
    }
    bail!("connection {index} closed before its welcome")
}

/// A join ticket as the API signs them, for a user of its own per connection.
fn ticket(keys: &SigningKeys, room: &str, index: usize, capacity: usize) -> anyhow::Result<String> {
    let holder = TicketHolder {
        user_id: format!("bench-user-{index}"),
        display_name: format!("Bench {index}"),
        room_id: room.to_owned(),
        role: CallRole::Person(RoomRole::Member),
        max_participants: capacity as u32,
        recording_id: None,
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    Ok(keys.sign(&TicketClaims::issue("confab", holder, now))?)
}

async fn report_idle(args: &Args, sockets: Vec<Socket>, rss_before: Option<u64>) -> anyhow::Result<()> {
    // Keep answering the gateways' pings while the servers settle.
    let readers: Vec<_> =
        sockets.into_iter().map(|socket| tokio::spawn(async move { socket.for_each(|_| async {}).await })).collect();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let (Some(before), Some(after)) = (rss_before, total_rss(&args.pids)) else {
        bail!("--idle needs --pids of the servers");
    };
    let alive = readers.iter().filter(|reader| !reader.is_finished()).count();
    println!(
        "idle: {alive} of {} connections open after {} s; server RSS {:.1} → {:.1} MiB, {:.1} KiB per connection",
        readers.len(),
        args.seconds,
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / readers.len() as f64
    );
    Ok(())
}

/// Sends a `signal` carrying its send time to `to` every interval, from a start offset by `phase`
/// so the connections do not send in lockstep.
async fn send_signals(
    mut sink: SplitSink<Socket, Message>,
    to: String,
    padding: usize,
    phase: Duration,
    shared: Arc<Shared>,
) {
    let pad = "x".repeat(padding);
    let mut next = tokio::time::Instant::now() + phase;
    while !shared.stopped.load(Ordering::Relaxed) {
        tokio::time::sleep_until(next).await;
        let interval = Duration::from_micros(shared.interval_us.load(Ordering::Relaxed));
        if interval.is_zero() {
            // Paused; resume from a point of this connection's own, not all at once.
            next = tokio::time::Instant::now() + phase;
            continue;
        }
        let sent_us = shared.origin.elapsed().as_micros();
        let candidate = IceCandidate {
            candidate: format!("bench {sent_us} {pad}"),
            sdp_mid: Some("0".into()),
            ..IceCandidate::default()
        };
        let signal = Signal { to: to.clone(), payload: Some(Payload::Candidate(candidate)), ..Signal::default() };
        let text = client_text(client_message::Kind::Signal(signal));
        if sink.send(Message::text(text)).await.is_err() {
            return;
        }
        shared.sent.fetch_add(1, Ordering::Relaxed);
        next += interval;
        // Behind schedule (an overloaded machine): carry on from now rather than burst.
        let now = tokio::time::Instant::now();
        if next < now {
            next = now;
        }
    }
}

/// Reads relayed signals and records how long each took since it was sent.
async fn read_signals(mut stream: SplitStream<Socket>, shared: Arc<Shared>) {
    while let Some(Ok(frame)) = stream.next().await {
        let Message::Text(text) = frame else { continue };
        let Some(Kind::Signal(Signal { payload: Some(Payload::Candidate(candidate)), .. })) = read(&text) else {
            continue;
        };
        let Some(sent_us) = candidate.candidate.strip_prefix("bench ").and_then(|rest| rest.split(' ').next()) else {
            continue;
        };
        let Ok(sent_us) = sent_us.parse::<u128>() else { continue };
        let latency = shared.origin.elapsed().as_micros().saturating_sub(sent_us);
        shared.received.fetch_add(1, Ordering::Relaxed);
        shared.latencies_us.lock().unwrap().push(latency.min(u32::MAX as u128) as u32);
    }
}
