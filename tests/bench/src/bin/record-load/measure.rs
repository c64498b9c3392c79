//! What a step measures in the processes under test, and its report.

use std::sync::atomic::Ordering;
use std::time::Duration;

use confab_bench::{cpu_seconds, cpu_ticks, rss_kib, udp_socket_drops};
use tokio::time::Instant;

use crate::pacing::{LATE, Schedule, Sent};

/// What one step measured.
pub struct Step {
    pub participants: usize,
    pub rooms: usize,
    pub window: Duration,
    /// CPU seconds of the measured processes over the window.
    pub cpu: f64,
    /// Resident memory of the measured processes, summed: before the step and at its peak.
    pub rss_before_kib: u64,
    pub rss_peak_kib: u64,
    /// The peak of the summed proportional set sizes (shared pages split between processes).
    pub pss_peak_kib: u64,
    /// Processes measured: 1 recorder, or one ffmpeg per participant.
    pub processes: usize,
    /// This process's CPU seconds over the window.
    pub load_cpu: f64,
    pub video_sent: u64,
    pub audio_sent: u64,
    pub video_recorded: u64,
    pub audio_recorded: u64,
    /// Frames sent and not found in the files, summed per participant and kind.
    pub lost: u64,
    pub failed_writes: u64,
    pub late_ms: f64,
    /// Frames sent more than [`LATE`] after their time.
    pub late_frames: u64,
    pub notes: Vec<String>,
}

pub fn print_header(target: &str) {
    println!(
        "\n| {target} | N | rooms | CPU s in window | CPU-s per stream-minute | share of a core | \
         RSS MiB before → peak | memory KiB per stream | video frames sent / recorded | \
         audio frames sent / recorded | lost frames | load tool, share of a core | sender max lateness ms |"
    );
}

impl Step {
    /// A step over `processes` measured processes, before any frames are counted.
    pub fn new(participants: usize, rooms: usize, processes: usize, rss_before_kib: u64, window: &Window) -> Self {
        Self {
            participants,
            rooms,
            window: window.length,
            cpu: window.cpu,
            rss_before_kib,
            rss_peak_kib: window.rss_peak_kib,
            pss_peak_kib: window.pss_peak_kib,
            processes,
            load_cpu: window.load_cpu,
            video_sent: 0,
            audio_sent: 0,
            video_recorded: 0,
            audio_recorded: 0,
            lost: 0,
            failed_writes: 0,
            late_ms: 0.0,
            late_frames: 0,
            notes: vec![window.note()],
        }
    }

    pub fn print(&self, target: &str) {
        let window = self.window.as_secs_f64();
        let stream_minutes = self.participants as f64 * window / 60.0;
        let per_stream_minute = self.cpu / stream_minutes;
        // One recorder: what it grew by, per stream. One ffmpeg per stream: its proportional
        // share (RSS would count the shared libraries once per process).
        let per_stream_kib = if self.processes == 1 {
            self.rss_peak_kib.saturating_sub(self.rss_before_kib) as f64 / self.participants as f64
        } else {
            self.pss_peak_kib as f64 / self.processes as f64
        };
        let core = 100.0 * self.cpu / window;
        let load_core = 100.0 * self.load_cpu / window;
        println!(
            "| {target} | {} | {} | {:.2} / {:.0} s | {per_stream_minute:.3} | {core:.1} % | {:.1} → {:.1} | \
             {per_stream_kib:.0} | {} / {} | {} / {} | {} | {load_core:.1} % | {:.1} |",
            self.participants,
            self.rooms,
            self.cpu,
            window,
            self.rss_before_kib as f64 / 1024.0,
            self.rss_peak_kib as f64 / 1024.0,
            self.video_sent,
            self.video_recorded,
            self.audio_sent,
            self.audio_recorded,
            self.lost,
            self.late_ms,
        );
        if self.processes > 1 {
            println!(
                "  per process: RSS {:.0} KiB, PSS {:.0} KiB",
                self.rss_peak_kib as f64 / self.processes as f64,
                self.pss_peak_kib as f64 / self.processes as f64
            );
        }
        if self.late_frames > 0 {
            println!(
                "  {} frames went out more than {} ms late (the load tool was held up; they left in bursts)",
                self.late_frames,
                LATE.as_millis()
            );
        }
        if self.failed_writes > 0 {
            println!("  {} frames were refused by the sending stack (not counted as sent)", self.failed_writes);
        }
        for note in &self.notes {
            println!("  {note}");
        }
        println!(
            "result target={target} n={} cpu_s_per_stream_minute={per_stream_minute:.4} core_percent={core:.1} \
             kib_per_stream={per_stream_kib:.0} lost={} load_core_percent={load_core:.1}",
            self.participants, self.lost,
        );
    }
}

/// Memory of a process counting shared pages proportionally, in KiB (`/proc/PID/smaps_rollup`).
pub fn pss_kib(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = rollup.lines().find(|l| l.starts_with("Pss:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Context switches of every thread of a process so far (`/proc/PID/task/*/status`).
pub fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.starts_with("voluntary_ctxt_switches:") || l.starts_with("nonvoluntary_ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Nanoseconds the process's threads have spent waiting for a CPU so far
/// (`/proc/PID/task/*/schedstat`, second field).
fn run_queue_wait_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// UDP datagrams the kernel dropped so far because a socket's receive buffer was full, machine
/// wide (`RcvbufErrors` in `/proc/net/snmp`).
fn udp_receive_buffer_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|line| line.starts_with("Udp: "));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else { return 0 };
    let column = names.split_whitespace().position(|name| name == "RcvbufErrors");
    column.and_then(|i| values.split_whitespace().nth(i)?.parse().ok()).unwrap_or_default()
}

/// What [`measure_window`] saw.
pub struct Window {
    pub length: Duration,
    pub cpu: f64,
    pub rss_peak_kib: u64,
    pub pss_peak_kib: u64,
    pub load_cpu: f64,
    /// Context switches per second in the measured processes.
    pub switches_per_second: f64,
    /// Milliseconds per second the measured processes' threads spent waiting for a CPU.
    pub run_queue_wait_ms_per_second: f64,
    /// How busy each CPU of the machine was, in percent.
    pub cpu_busy: Vec<f64>,
    /// UDP datagrams dropped on full receive buffers of the measured processes' sockets.
    pub udp_drops: u64,
    /// The same anywhere on the machine.
    pub udp_drops_machine: u64,
}

impl Window {
    pub fn note(&self) -> String {
        let busy: Vec<String> = self.cpu_busy.iter().enumerate().map(|(i, b)| format!("CPU {i} {b:.0} %")).collect();
        format!(
            "in the window: machine busy {}; measured processes: {:.0} context switches/s, \
             {:.0} ms/s waiting for a CPU; UDP datagrams dropped on full receive buffers: {} at their \
             sockets, {} machine-wide",
            busy.join(", "),
            self.switches_per_second,
            self.run_queue_wait_ms_per_second,
            self.udp_drops,
            self.udp_drops_machine
        )
    }
}

/// Samples the processes' CPU time at the window's edges and their memory every second inside
/// it, and this process's CPU time.
pub async fn measure_window(pids: &[u32], schedule: &Schedule) -> Window {
    let cpu = || pids.iter().filter_map(|&pid| cpu_seconds(pid)).sum::<f64>();
    let memory = || {
        let rss = pids.iter().filter_map(|&pid| rss_kib(pid)).sum::<u64>();
        (rss, pids.iter().filter_map(|&pid| pss_kib(pid)).sum::<u64>())
    };
    let own = || cpu_seconds(std::process::id()).unwrap_or_default();
    let switches = || pids.iter().map(|&pid| context_switches(pid)).sum::<u64>();
    let waited = || pids.iter().map(|&pid| run_queue_wait_ns(pid)).sum::<u64>();
    tokio::time::sleep_until(schedule.window_start).await;
    let (cpu_before, own_before, switches_before, ticks_before) = (cpu(), own(), switches(), cpu_ticks());
    let (udp_drops_before, machine_drops_before) = (udp_socket_drops(pids), udp_receive_buffer_errors());
    let waited_before = waited();
    let started = Instant::now();
    let (mut rss_peak, mut pss_peak) = (0, 0);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while Instant::now() < schedule.end {
        tokio::select! {
            _ = tick.tick() => {
                let (rss, pss) = memory();
                (rss_peak, pss_peak) = (rss_peak.max(rss), pss_peak.max(pss));
            }
            () = tokio::time::sleep_until(schedule.end) => {}
        }
    }
    let (cpu_after, own_after, switches_after, ticks_after) = (cpu(), own(), switches(), cpu_ticks());
    let seconds = started.elapsed().as_secs_f64();
    let (rss, pss) = memory();
    let cpu_busy = ticks_before
        .iter()
        .zip(&ticks_after)
        .map(|((busy0, total0), (busy1, total1))| 100.0 * (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64)
        .collect();
    Window {
        length: schedule.end - schedule.window_start,
        cpu: cpu_after - cpu_before,
        rss_peak_kib: rss_peak.max(rss),
        pss_peak_kib: pss_peak.max(pss),
        load_cpu: own_after - own_before,
        switches_per_second: switches_after.saturating_sub(switches_before) as f64 / seconds,
        run_queue_wait_ms_per_second: waited().saturating_sub(waited_before) as f64 / 1e6 / seconds,
        cpu_busy,
        udp_drops: udp_socket_drops(pids).saturating_sub(udp_drops_before),
        udp_drops_machine: udp_receive_buffer_errors().saturating_sub(machine_drops_before),
    }
}

impl Step {
    /// Adds one participant: what it sent against what was found of it.
    pub fn add(&mut self, sent: &Sent, video: u64, audio: u64) {
        let (video_sent, audio_sent) =
            (sent.video.frames.load(Ordering::Relaxed), sent.audio.frames.load(Ordering::Relaxed));
        self.video_sent += video_sent;
        self.audio_sent += audio_sent;
        self.video_recorded += video;
        self.audio_recorded += audio;
        self.lost += video_sent.saturating_sub(video) + audio_sent.saturating_sub(audio);
        self.failed_writes += sent.video.failed.load(Ordering::Relaxed) + sent.audio.failed.load(Ordering::Relaxed);
        let late = sent.video.late_us.load(Ordering::Relaxed).max(sent.audio.late_us.load(Ordering::Relaxed));
        self.late_ms = self.late_ms.max(late as f64 / 1000.0);
        self.late_frames +=
            sent.video.late_frames.load(Ordering::Relaxed) + sent.audio.late_frames.load(Ordering::Relaxed);
    }
}
