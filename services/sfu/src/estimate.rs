//! A subscriber connection's bandwidth estimate, for choosing the layers it receives. webrtc-rs's
//! send-side estimator (GCC over the subscriber's TWCC feedback) runs inside the connection's
//! interceptors; wrapping it is the one way to read its figure without going through the stats
//! report (docs/design/sfu-stack.md §3): after each update it stores the estimate where the
//! server reads it once per second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rtc::interceptor::{BandwidthEstimator, EstimatorStats, Gcc, PacketReport};

/// Where a subscriber's estimate starts, bits per second: enough for a middle layer and audio,
/// so a new subscriber sees a picture at once and climbs as the estimate grows.
pub const INITIAL: f64 = 1_000_000.0;
const MIN: f64 = 100_000.0;
const MAX: f64 = 20_000_000.0;

/// The estimate as the server reads it.
#[derive(Debug, Clone)]
pub struct Estimate(Arc<AtomicU64>);

impl Estimate {
    /// Bits per second.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// GCC, publishing its target after every change.
pub struct Reporting {
    gcc: Gcc,
    estimate: Arc<AtomicU64>,
}

impl Reporting {
    pub fn new() -> (Self, Estimate) {
        let estimate = Arc::new(AtomicU64::new(INITIAL as u64));
        (Self { gcc: Gcc::new(INITIAL, MIN, MAX), estimate: Arc::clone(&estimate) }, Estimate(estimate))
    }

    fn publish(&self) {
        self.estimate.store(self.gcc.target_bitrate() as u64, Ordering::Relaxed);
    }
}

impl BandwidthEstimator for Reporting {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.gcc.on_reports(now, reports);
        self.publish();
    }

    fn target_bitrate(&self) -> f64 {
        self.gcc.target_bitrate()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.gcc.handle_timeout(now);
        self.publish();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.gcc.poll_timeout()
    }

    fn stats(&self) -> EstimatorStats {
        self.gcc.stats()
    }
}
