//! Climbing back to a higher layer. A subscriber's bandwidth estimate (GCC over its TWCC
//! feedback, [`crate::send_side`]) cannot grow past about 1.5 times what the server sends it, and
//! webrtc-rs does not probe (docs/design/sfu-stack.md §3): a subscriber moved down to a low layer
//! would stay there after its link recovered. So, as long as the estimate has not fallen for a
//! while, the server tries the next layer up for a few seconds (a trial, with real media instead
//! of padding probes); if the estimator does not back off meanwhile, the new level is kept as a
//! floor until it does. A failed trial doubles the wait before the next one. Pure: the estimate,
//! what an upgrade would take and the time in; the budget to share out.

use std::time::{Duration, Instant};

/// How long the estimate must hold before a trial, after a start or a success.
const SETTLE: Duration = Duration::from_secs(3);
/// The longest wait between trials after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a trial runs before its level is kept.
const TRIAL: Duration = Duration::from_secs(2);
/// A fall of the estimate by more than this share means congestion.
const FALL: f64 = 0.95;
/// A trial asks for this much more than the upgrade's measured rate needs: rates wobble.
const SLACK: f64 = 1.1;

#[derive(Debug)]
pub struct Climb {
    /// A level a trial proved the link carries; 0 after congestion.
    floor: u64,
    /// A trial's end and level.
    trial: Option<(Instant, u64)>,
    next_trial: Option<Instant>,
    backoff: Duration,
    last_estimate: u64,
}

impl Default for Climb {
    fn default() -> Self {
        Self { floor: 0, trial: None, next_trial: None, backoff: SETTLE, last_estimate: 0 }
    }
}

impl Climb {
    /// The bandwidth to share out among the subscriber's tracks, given its `estimate` and, when
    /// it could have more, the total `wanted` for one layer up.
    pub fn budget(&mut self, estimate: u64, wanted: Option<u64>, now: Instant) -> u64 {
        let fell = (estimate as f64) < self.last_estimate as f64 * FALL;
        self.last_estimate = estimate;
        if fell {
            if self.trial.take().is_some() {
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
            self.floor = 0;
            self.next_trial = Some(now + self.backoff);
            return estimate;
        }
        if let Some((until, level)) = self.trial
            && now >= until
        {
            (self.floor, self.trial, self.backoff) = (level, None, SETTLE);
            self.next_trial = Some(now + SETTLE);
        }
        let holding = estimate.max(self.floor);
        let next_trial = *self.next_trial.get_or_insert(now + SETTLE);
        if let (None, Some(wanted)) = (self.trial, wanted)
            && wanted > holding
            && now >= next_trial
        {
            self.trial = Some((now + TRIAL, (wanted as f64 * SLACK) as u64));
        }
        holding.max(self.trial.map_or(0, |(_, level)| level))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_estimate_earns_a_trial_of_the_next_layer_which_is_kept_if_nothing_falls() {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut climb = Climb::default();
        assert_eq!(climb.budget(200_000, Some(400_000), at(0.0)), 200_000, "no trial before the estimate settles");
        assert_eq!(climb.budget(200_000, Some(400_000), at(2.9)), 200_000);
        assert_eq!(climb.budget(200_000, Some(400_000), at(3.0)), 440_000, "a trial, with some slack");
        assert_eq!(climb.budget(230_000, Some(400_000), at(4.0)), 440_000, "during the trial");
        assert_eq!(climb.budget(260_000, Some(900_000), at(5.0)), 440_000, "kept after it: the floor");
        assert_eq!(climb.budget(300_000, Some(900_000), at(7.9)), 440_000);
        assert_eq!(climb.budget(300_000, Some(900_000), at(8.0)), 990_000, "the next trial, 3 s on");
        assert_eq!(climb.budget(300_000, None, at(10.0)), 990_000, "at the top: nothing more to try");
    }

    #[test]
    fn a_falling_estimate_ends_the_trial_drops_the_floor_and_doubles_the_wait() {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut climb = Climb::default();
        climb.budget(200_000, Some(400_000), at(0.0));
        assert_eq!(climb.budget(200_000, Some(400_000), at(3.0)), 440_000);
        assert_eq!(climb.budget(150_000, Some(400_000), at(3.5)), 150_000, "congestion: back to the estimate");
        assert_eq!(climb.budget(150_000, Some(400_000), at(9.0)), 150_000, "6 s after a failed trial, not 3");
        assert_eq!(climb.budget(150_000, Some(400_000), at(9.5)), 440_000);
        assert_eq!(climb.budget(100_000, Some(400_000), at(10.0)), 100_000, "failed again");
        assert_eq!(climb.budget(100_000, Some(400_000), at(21.9)), 100_000, "12 s now");
        assert_eq!(climb.budget(100_000, Some(400_000), at(22.0)), 440_000);
    }

    #[test]
    fn congestion_outside_a_trial_drops_the_floor_but_keeps_the_wait() {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut climb = Climb::default();
        climb.budget(200_000, Some(400_000), at(0.0));
        climb.budget(200_000, Some(400_000), at(3.0));
        assert_eq!(climb.budget(210_000, None, at(5.0)), 440_000, "the floor");
        assert_eq!(climb.budget(120_000, Some(400_000), at(6.0)), 120_000, "gone with congestion");
        assert_eq!(climb.budget(120_000, Some(400_000), at(9.0)), 440_000, "the usual 3 s");
    }
}
