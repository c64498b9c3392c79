//! `record-load`: load for the recorder, and the same load for `ffmpeg -c copy` side by side.
//!
//! Every participant sends a pre-encoded clip (`--clip`: a WebM file with one VP8 and one Opus
//! track, read into memory and looped; nothing is encoded during the run) in real time: each
//! video frame and each Opus packet is one sample, paced by the clip's frame intervals.
//!
//! With `--target recorder`, for each count in `--participants`, that many accounts join rooms
//! of `--room-size` through the API and a gateway as browsers do, the first member of each room
//! starts its recording, and on `recording_started` every participant opens a send-only
//! webrtc-rs connection to the recorder (offer and trickled candidates through the gateway).
//! Once all are connected they stream for `--warmup` + `--seconds`; over the last `--seconds`
//! the recorder's CPU time and resident memory are measured (`/proc/PID`). Then the recordings
//! are stopped, every file is downloaded through the API and its frames are counted against the
//! frames sent: the difference is the lost frames.
//!
//! With `--target recorder-through-sfu` the rooms' media goes through the media server: every
//! participant publishes once to the SFU (its `publish` connection; the subscribe offers the SFU
//! makes them are left unanswered, so nothing is forwarded but to the recorder), and the recorder
//! gets everyone's tracks on the SFU's one connection per room. Measured the same way: the
//! recorder's CPU, memory and lost frames.
//!
//! With `--target ffmpeg` the same frames, packetized by the same webrtc-rs payloaders, go as
//! plain RTP over UDP (no ICE, DTLS or SRTP) to one `ffmpeg -c copy` process per participant
//! writing WebM, and the same figures are taken from those processes.
//!
//! Each step prints a table row and a `result` line for scripts. Results: docs/benchmarks.md.

mod api;
mod clip;
mod ffmpeg;
mod measure;
mod pacing;
mod peer;
mod recorder;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};

use crate::api::{Api, Fixture};
use crate::clip::Clip;
use crate::measure::print_header;
use crate::recorder::Route;

/// Between the end of the sending and the stop: what is still in flight or buffered arrives.
const DRAIN: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Recorder,
    RecorderThroughSfu,
    Ffmpeg,
}

#[derive(Parser)]
pub struct Args {
    #[arg(long, value_enum, default_value = "recorder")]
    pub target: Target,
    /// The clip: a WebM file with one VP8 and one Opus track, looped.
    #[arg(long)]
    pub clip: PathBuf,
    /// Participant counts, one measured step each.
    #[arg(long, value_delimiter = ',', default_value = "10,25,50")]
    pub participants: Vec<usize>,
    /// Seconds of the measured window.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Seconds of sending before the window opens.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Base URL of the API (`--target recorder`).
    #[arg(long, default_value = "http://127.0.0.1:8280")]
    pub api: String,
    /// PID of the recorder process (`--target recorder`).
    #[arg(long)]
    pub recorder_pid: Option<u32>,
    /// The recorder's Prometheus endpoint: its `recorder_*` counters are reported per step.
    #[arg(long)]
    pub recorder_metrics: Option<String>,
    /// Participants per room, one recording per room; at most 50 (the API's room limit).
    #[arg(long, default_value_t = 10)]
    pub room_size: usize,
    /// Names this run's accounts, so that runs with the same id reuse them.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Where the ffmpeg processes' SDP files, outputs and logs go (`--target ffmpeg`).
    #[arg(long, default_value = "/tmp/confab-record-load")]
    pub work_dir: PathBuf,
    /// Participant i's RTP goes to ports base + 4i (video) and base + 4i + 2 (audio).
    #[arg(long, default_value_t = 20000)]
    pub ffmpeg_port_base: u16,
    /// CPUs for the ffmpeg processes (`taskset -c`), to give them what the recorder gets.
    #[arg(long)]
    pub ffmpeg_cpus: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(1..=50).contains(&args.room_size) {
        bail!("--room-size must be 1 to 50");
    }
    let clip = Arc::new(Clip::read(&args.clip)?);
    println!(
        "clip: {} video frames every {:.2} ms ({:.0} kbit/s), {} Opus packets every {:.1} ms",
        clip.video.len(),
        ms(clip.video_interval),
        clip.video_bits_per_second() / 1000.0,
        clip.audio.len(),
        ms(clip.audio_interval)
    );
    let most = args.participants.iter().copied().max().unwrap_or(0);
    match args.target {
        Target::Recorder | Target::RecorderThroughSfu => {
            let pid = args.recorder_pid.context("--recorder-pid is needed with --target recorder")?;
            let api = Api::new(&args.api)?;
            let run_id = args.run_id.clone().unwrap_or_else(|| random_hex(4));
            let started = std::time::Instant::now();
            let route = if args.target == Target::Recorder { Route::Direct } else { Route::ThroughSfu };
            let fixture = Fixture::build(&api, most, args.room_size, &run_id, route).await?;
            println!(
                "{most} accounts in {} rooms of up to {} ready in {:.1} s",
                fixture.rooms.len(),
                args.room_size,
                started.elapsed().as_secs_f64()
            );
            print_header(route.target());
            for &n in &args.participants {
                let step = recorder::record_step(&args, &api, &fixture, &clip, n, pid, route).await?;
                step.print(route.target());
            }
        }
        Target::Ffmpeg => {
            print_header("ffmpeg");
            for &n in &args.participants {
                let step = ffmpeg::ffmpeg_step(&args, &clip, n).await?;
                step.print("ffmpeg");
            }
        }
    }
    Ok(())
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

pub fn unix_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
