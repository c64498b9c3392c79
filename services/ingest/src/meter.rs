//! Frame rate and bitrate over a sliding window of received frames. Pure: the caller passes the
//! time each frame arrived and the time it asks at.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What a window of frames measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub frame_rate: f32,
    pub bitrate_kbps: i32,
}

#[derive(Debug)]
pub struct Meter {
    window: Duration,
    frames: VecDeque<(Instant, usize)>,
}

impl Meter {
    pub fn new(window: Duration) -> Self {
        Self { window, frames: VecDeque::new() }
    }

    /// A frame of `bytes` arrived `at`.
    pub fn record(&mut self, at: Instant, bytes: usize) {
        self.frames.push_back((at, bytes));
        while self.frames.front().is_some_and(|(t, _)| at.saturating_duration_since(*t) > self.window) {
            self.frames.pop_front();
        }
    }

    /// The rates over the frames of the last window before `now`; `None` until two frames of it
    /// are apart in time. The first frame only marks where the window starts: `n` frames span
    /// `n - 1` intervals.
    pub fn rates(&self, now: Instant) -> Option<Rates> {
        let recent: Vec<_> =
            self.frames.iter().filter(|(t, _)| now.saturating_duration_since(*t) <= self.window).collect();
        let (first, last) = (recent.first()?.0, recent.last()?.0);
        let span = last.saturating_duration_since(first).as_secs_f64();
        if span <= 0.0 {
            return None;
        }
        let bytes: usize = recent.iter().skip(1).map(|(_, b)| b).sum();
        Some(Rates {
            frame_rate: ((recent.len() - 1) as f64 / span) as f32,
            bitrate_kbps: (bytes as f64 * 8.0 / span / 1000.0).round() as i32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_stream_measures_its_rate_and_bitrate() {
        let start = Instant::now();
        let mut meter = Meter::new(Duration::from_secs(5));
        // 25 frames per second of 5000 bytes: 1000 kbit/s.
        for i in 0..100 {
            meter.record(start + Duration::from_millis(40 * i), 5000);
        }
        let rates = meter.rates(start + Duration::from_millis(40 * 99)).unwrap();
        assert!((rates.frame_rate - 25.0).abs() < 0.01, "{rates:?}");
        assert_eq!(rates.bitrate_kbps, 1000);
    }

    #[test]
    fn only_the_last_window_counts() {
        let start = Instant::now();
        let mut meter = Meter::new(Duration::from_secs(2));
        for i in 0..50 {
            meter.record(start + Duration::from_millis(20 * i), 100_000);
        }
        // Then 10 frames per second for 4 s.
        let later = start + Duration::from_secs(1);
        for i in 0..=40 {
            meter.record(later + Duration::from_millis(100 * i), 1000);
        }
        let rates = meter.rates(later + Duration::from_secs(4)).unwrap();
        assert!((rates.frame_rate - 10.0).abs() < 0.01, "{rates:?}");
        assert_eq!(rates.bitrate_kbps, 80);
    }

    #[test]
    fn no_rates_before_two_frames_or_after_a_silence() {
        let start = Instant::now();
        let mut meter = Meter::new(Duration::from_secs(2));
        assert_eq!(meter.rates(start), None);
        meter.record(start, 10);
        assert_eq!(meter.rates(start), None);
        meter.record(start + Duration::from_millis(100), 10);
        assert!(meter.rates(start + Duration::from_millis(100)).is_some());
        assert_eq!(meter.rates(start + Duration::from_secs(10)), None);
    }
}
