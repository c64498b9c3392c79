//! A video track is only decodable from a keyframe on: before the first one, and after a loss
//! until the next one, delta frames would decode to garbage. This module decides, as a pure state
//! machine over an injected clock, when to ask the sender for a keyframe (RTCP PLI) and which
//! frames to drop meanwhile.

use std::time::{Duration, Instant};

/// Keyframe-request policy and delta-frame gating for one video track.
#[derive(Debug)]
pub struct KeyframePolicy {
    min_request_interval: Duration,
    max_keyframe_interval: Duration,
    /// Delta frames are useless until the next keyframe.
    waiting_for_keyframe: bool,
    last_keyframe: Option<Instant>,
    last_request: Option<Instant>,
}

impl KeyframePolicy {
    /// Never requests more often than `min_request_interval`; requests a fresh keyframe when none
    /// arrived for `max_keyframe_interval`.
    pub fn new(min_request_interval: Duration, max_keyframe_interval: Duration) -> Self {
        Self {
            min_request_interval,
            max_keyframe_interval,
            waiting_for_keyframe: true,
            last_keyframe: None,
            last_request: None,
        }
    }

    /// A loss the pipeline cannot recover from: wait for (and ask for) a keyframe.
    pub fn on_loss(&mut self) {
        self.waiting_for_keyframe = true;
    }

    /// Records a complete frame; returns whether it may go to the muxer.
    pub fn on_frame(&mut self, keyframe: bool, now: Instant) -> bool {
        if keyframe {
            self.waiting_for_keyframe = false;
            self.last_keyframe = Some(now);
        }
        !self.waiting_for_keyframe
    }

    /// Whether to send a keyframe request now. Answering `true` counts as sending one.
    pub fn poll_request(&mut self, now: Instant) -> bool {
        let due = self.next_request().is_none_or(|at| now >= at);
        if due {
            self.last_request = Some(now);
        }
        due
    }

    /// When the next keyframe request falls due (`None`: due at once).
    pub fn next_request(&self) -> Option<Instant> {
        let rate_limit = self.last_request.map(|t| t + self.min_request_interval);
        if self.waiting_for_keyframe {
            return rate_limit;
        }
        let stale =
            self.last_keyframe.into_iter().chain(self.last_request).max().map(|t| t + self.max_keyframe_interval);
        stale.max(rate_limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> KeyframePolicy {
        KeyframePolicy::new(Duration::from_millis(500), Duration::from_secs(4))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn asks_at_start_and_retries_at_most_every_500_ms_until_a_keyframe() {
        let t = Instant::now();
        let mut p = policy();
        assert!(p.poll_request(t));
        assert!(!p.poll_request(t + ms(100)));
        assert!(!p.poll_request(t + ms(499)));
        assert_eq!(p.next_request(), Some(t + ms(500)));
        assert!(p.poll_request(t + ms(500)));
        assert!(!p.on_frame(false, t + ms(600)), "delta frames before the first keyframe are dropped");
        assert!(p.on_frame(true, t + ms(700)));
        assert!(p.on_frame(false, t + ms(733)));
        assert!(!p.poll_request(t + ms(1200)));
    }

    #[test]
    fn asks_again_when_no_keyframe_came_for_4_s() {
        let t = Instant::now();
        let mut p = policy();
        assert!(p.poll_request(t));
        p.on_frame(true, t + ms(100));
        assert_eq!(p.next_request(), Some(t + ms(4100)));
        assert!(!p.poll_request(t + ms(4099)));
        assert!(p.poll_request(t + ms(4100)));
        // Still no keyframe: the next request is 4 s after the last one, not every 500 ms.
        assert!(!p.poll_request(t + ms(4600)));
        assert!(p.poll_request(t + ms(8100)));
    }

    #[test]
    fn a_loss_asks_at_once_but_within_the_rate_limit_and_gates_delta_frames() {
        let t = Instant::now();
        let mut p = policy();
        assert!(p.poll_request(t));
        p.on_frame(true, t + ms(50));
        p.on_loss();
        assert!(!p.on_frame(false, t + ms(100)));
        assert!(!p.poll_request(t + ms(200)), "only 200 ms since the last request");
        assert!(p.poll_request(t + ms(500)));
        assert!(!p.poll_request(t + ms(600)));
        assert!(p.on_frame(true, t + ms(700)));
        assert!(p.on_frame(false, t + ms(733)));
    }
}
