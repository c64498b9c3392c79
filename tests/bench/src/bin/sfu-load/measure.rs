//! One step's measured window, over the subscribers' counts and the server process, and its
//! report: a Markdown row for the tables, and a `result` line of key=value pairs for the script's
//! summary.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use confab_bench::{cpu_seconds, cpu_ticks, rss_kib, udp_socket_drops};

use crate::Run;
use crate::reception::{Counts, Reception};
use crate::timing::Timing;

#[derive(Default)]
pub struct Step {
    pub target: String,
    pub subscribers: usize,
    pub connected: usize,
    pub window: Duration,
    /// RTP packets the subscribers received in the window, all together.
    pub forwarded: u64,
    pub lost: u64,
    /// Packets the subscribers should have received in the window (the forwarded layer's packets
    /// sent, once per connected subscriber) and did not: counts subscribers the server stopped
    /// feeding, whose sequence numbers show no gap.
    pub short: u64,
    pub untimed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub server_cpu_s: f64,
    pub rss_before_kib: u64,
    pub rss_peak_kib: u64,
    /// This process's CPU time in the window: how busy the load tool's core was.
    pub load_cpu_s: f64,
    /// Datagrams the kernel dropped on full receive buffers in the window: the load tool's
    /// sockets (the subscribers') and the server's.
    pub client_drops: u64,
    pub server_drops: u64,
    /// How busy each CPU was in the window, measured processes and everything else included.
    pub cpu_busy_percent: Vec<f64>,
}

pub async fn window(run: &Run, receptions: &[Rc<RefCell<Reception>>], server_pid: u32, length: Duration) -> Step {
    let counts = || receptions.iter().map(|r| r.borrow().counts()).collect::<Vec<Counts>>();
    let own_pid = std::process::id();
    let drops = || (udp_socket_drops(&[own_pid]), udp_socket_drops(&[server_pid]));
    let before = counts();
    let sent_before = run.timing.borrow().forwarded_layer_sent;
    let (server_cpu, load_cpu, drops_before, ticks_before) =
        (cpu_seconds(server_pid), cpu_seconds(own_pid), drops(), cpu_ticks());
    run.timing.borrow_mut().measuring = true;
    let started = Instant::now();
    let mut rss_peak_kib = rss_kib(server_pid).unwrap_or(0);
    while started.elapsed() < length {
        tokio::time::sleep((length - started.elapsed()).min(Duration::from_secs(1))).await;
        rss_peak_kib = rss_peak_kib.max(rss_kib(server_pid).unwrap_or(0));
    }
    let mut timing = run.timing.borrow_mut();
    timing.measuring = false;
    let after = counts();
    let window = started.elapsed();
    let drops_after = drops();
    let cpu_busy_percent = cpu_ticks()
        .iter()
        .zip(&ticks_before)
        .map(|((busy, total), (busy_before, total_before))| {
            (busy - busy_before) as f64 * 100.0 / (total - total_before).max(1) as f64
        })
        .collect();
    let delta = |end: Option<f64>, start: Option<f64>| end.zip(start).map_or(f64::NAN, |(end, start)| end - start);
    let mut step = Step {
        subscribers: receptions.len(),
        connected: receptions.iter().filter(|r| r.borrow().connected && !r.borrow().failed).count(),
        window,
        server_cpu_s: delta(cpu_seconds(server_pid), server_cpu),
        load_cpu_s: delta(cpu_seconds(own_pid), load_cpu),
        client_drops: drops_after.0.saturating_sub(drops_before.0),
        server_drops: drops_after.1.saturating_sub(drops_before.1),
        cpu_busy_percent,
        rss_peak_kib,
        untimed: timing.untimed,
        ..Default::default()
    };
    let expected = (timing.forwarded_layer_sent - sent_before) * step.connected as u64;
    for (before, after) in before.iter().zip(&after) {
        let received = after.received - before.received;
        step.forwarded += received;
        step.lost += (after.expected - before.expected).saturating_sub(received);
    }
    step.short = expected.saturating_sub(step.forwarded);
    let latencies = &mut timing.latencies_us;
    latencies.sort_unstable();
    step.p50_ms = Timing::quantile_ms(latencies, 0.50);
    step.p99_ms = Timing::quantile_ms(latencies, 0.99);
    step
}

pub fn print_header() {
    println!(
        "| target | subscribers (connected) | forwarded packets/s | lost | short of sent | p50 ms | p99 ms | server CPU, share of a core | forwarded packets/s per core | server µs per forwarded packet | server RSS before → peak | KiB per subscriber | load tool CPU, share of a core | socket drops, tool / server | CPUs busy |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
}

impl Step {
    pub fn print(&self) {
        let seconds = self.window.as_secs_f64();
        let per_second = self.forwarded as f64 / seconds;
        let per_core = self.forwarded as f64 / self.server_cpu_s;
        let us_per_packet = self.server_cpu_s * 1e6 / self.forwarded as f64;
        let busy: Vec<String> = self.cpu_busy_percent.iter().map(|percent| format!("{percent:.0} %")).collect();
        let kib_per_subscriber = self.rss_peak_kib.saturating_sub(self.rss_before_kib) as f64 / self.subscribers as f64;
        println!(
            "| {} | {} ({}) | {:.0} | {} | {} | {:.2} | {:.2} | {:.1} % | {:.0} | {:.2} | {:.1} → {:.1} MiB | {:.1} | {:.1} % | {} / {} | {} |",
            self.target,
            self.subscribers,
            self.connected,
            per_second,
            self.lost,
            self.short,
            self.p50_ms,
            self.p99_ms,
            self.server_cpu_s * 100.0 / seconds,
            per_core,
            us_per_packet,
            self.rss_before_kib as f64 / 1024.0,
            self.rss_peak_kib as f64 / 1024.0,
            kib_per_subscriber,
            self.load_cpu_s * 100.0 / seconds,
            self.client_drops,
            self.server_drops,
            busy.join(" / "),
        );
        println!(
            "result target={} n={} connected={} forwarded_per_s={per_second:.0} lost={} short={} untimed={} p50_ms={:.2} p99_ms={:.2} \
             cpu_share={:.3} per_core={per_core:.0} us_per_packet={us_per_packet:.2} kib_per_subscriber={kib_per_subscriber:.1} \
             load_share={:.3} client_drops={} server_drops={}",
            self.target.replace(' ', "_"),
            self.subscribers,
            self.connected,
            self.lost,
            self.short,
            self.untimed,
            self.p50_ms,
            self.p99_ms,
            self.server_cpu_s / seconds,
            self.load_cpu_s / seconds,
            self.client_drops,
            self.server_drops,
        );
    }
}
