//! Real-time pacing of the clip's frames, and what was sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::Args;
use crate::clip::Clip;

/// A frame sent this much after its time went out in a burst with the ones behind it.
pub const LATE: Duration = Duration::from_millis(100);

/// When one track of one participant sends: a frame every `interval` from `first` until `end`.
#[derive(Clone, Copy)]
pub struct Pacing {
    pub first: Instant,
    pub interval: Duration,
    pub end: Instant,
    /// The RTP timestamp increment per frame, in the codec's clock.
    pub ticks: u32,
}

impl Pacing {
    pub fn new(first: Instant, interval: Duration, end: Instant, clock_rate: u32) -> Self {
        let ticks = (interval.as_secs_f64() * f64::from(clock_rate)).round() as u32;
        Self { first, interval, end, ticks }
    }

    /// A sample duration that webrtc-rs turns back into exactly `ticks` (it truncates).
    pub fn sample_duration(&self, clock_rate: u32) -> Duration {
        Duration::from_nanos((u64::from(self.ticks) * 1_000_000_000).div_ceil(u64::from(clock_rate)))
    }

    /// Calls `send` with each frame (the clip looping) at its time; behind schedule, it catches
    /// up at once, as the frames would have queued in a real sender.
    pub async fn run<'a, F, Fut>(&self, frames: &'a [Vec<u8>], counts: &Counts, mut send: F)
    where
        F: FnMut(&'a [u8], std::time::Instant) -> Fut,
        Fut: Future<Output = bool>,
    {
        let mut ticker = tokio::time::interval_at(self.first, self.interval);
        for frame in frames.iter().cycle() {
            let due = ticker.tick().await;
            if due >= self.end {
                break;
            }
            let late = Instant::now().saturating_duration_since(due);
            counts.late_us.fetch_max(late.as_micros() as u64, Ordering::Relaxed);
            if late > LATE {
                counts.late_frames.fetch_add(1, Ordering::Relaxed);
            }
            if send(frame, due.into_std()).await {
                counts.frames.fetch_add(1, Ordering::Relaxed);
            } else {
                counts.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// What one track of one participant sent.
#[derive(Default)]
pub struct Counts {
    pub frames: AtomicU64,
    /// Frames the sending stack refused.
    pub failed: AtomicU64,
    /// The latest a frame went out after its time, in µs.
    pub late_us: AtomicU64,
    /// Frames that went out more than [`LATE`] after their time.
    pub late_frames: AtomicU64,
}

/// What one participant sent.
#[derive(Default)]
pub struct Sent {
    pub video: Counts,
    pub audio: Counts,
}

/// Per-participant start times spread over one video frame, so that the participants do not
/// send in lockstep; the window opens `warmup` after the last start.
pub struct Schedule {
    pub start: Instant,
    pub end: Instant,
    pub window_start: Instant,
}

impl Schedule {
    pub fn new(args: &Args, clip: &Clip) -> Self {
        let start = Instant::now() + Duration::from_secs(1);
        let window_start = start + clip.video_interval + Duration::from_secs(args.warmup);
        Self { start, window_start, end: window_start + Duration::from_secs(args.seconds) }
    }

    pub fn pacing(&self, clip: &Clip, index: usize, of: usize) -> (Pacing, Pacing) {
        let first = self.start + clip.video_interval.mul_f64(index as f64 / of.max(1) as f64);
        (
            Pacing::new(first, clip.video_interval, self.end, 90_000),
            Pacing::new(first, clip.audio_interval, self.end, 48_000),
        )
    }
}
