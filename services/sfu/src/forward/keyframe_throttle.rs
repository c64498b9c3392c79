//! Keyframe requests to a publisher, rate-limited. Every subscriber that switches layers, joins or
//! lost a picture wants a keyframe, but one keyframe serves them all, and each costs the publisher
//! a burst of bits: at most one request per layer per interval goes out (Galène: 500 ms).

use std::time::{Duration, Instant};

use super::Layer;

/// The shortest time between two keyframe requests for the same layer.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// The keyframe requests sent for one published track, by layer.
#[derive(Debug, Default)]
pub struct KeyframeThrottle {
    last_sent: Vec<Option<Instant>>,
}

impl KeyframeThrottle {
    /// Whether to send the publisher a keyframe request (PLI) for `layer` now; if so, it counts
    /// as sent.
    pub fn ask(&mut self, layer: Layer, now: Instant) -> bool {
        let index = usize::from(layer);
        if self.last_sent.len() <= index {
            self.last_sent.resize(index + 1, None);
        }
        let due =
            self.last_sent[index].is_none_or(|sent| now.saturating_duration_since(sent) >= KEYFRAME_REQUEST_INTERVAL);
        if due {
            self.last_sent[index] = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_layer_per_interval() {
        let t0 = Instant::now();
        let mut throttle = KeyframeThrottle::default();
        assert!(throttle.ask(2, t0));
        assert!(!throttle.ask(2, t0 + Duration::from_millis(100)), "another subscriber, too soon");
        assert!(throttle.ask(0, t0 + Duration::from_millis(100)), "another layer is counted apart");
        assert!(throttle.ask(2, t0 + KEYFRAME_REQUEST_INTERVAL));
        assert!(!throttle.ask(2, t0 + KEYFRAME_REQUEST_INTERVAL + Duration::from_millis(499)));
    }
}
