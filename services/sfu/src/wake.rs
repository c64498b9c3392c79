//! When the media loop looks for the server's next timer, and when it runs the timers. Running
//! them walks the server's connections, and each due one's stack (each interceptor's timer,
//! DTLS's, ICE's); the loop did that at every connection's timer, and looked for the next after
//! every datagram. So it looks again at most [`GRANULARITY`] after an input that may have moved a
//! timer (at once after timers ran), and runs timers at most once per [`GRANULARITY`]: those due
//! within it run together. A WebRTC connection's timers (RTCP reports, TWCC feedback,
//! NACKs, ICE checks and consent, DTLS retransmissions) are tens of milliseconds or more apart:
//! a few milliseconds late is nothing to them. Pure: the caller passes the time and how to look.

use std::time::{Duration, Instant};

/// How long a timer set by an input may go unseen, and how often timers run at most.
pub const GRANULARITY: Duration = Duration::from_millis(5);

/// The loop's view of the server's next timer.
#[derive(Debug, Default)]
pub struct Wake {
    /// The next timer as last found, and when it was looked for (`None`: look now).
    due: Option<Instant>,
    looked: Option<Instant>,
    /// An input was handled since: a timer may be earlier than `due`.
    stale: bool,
    /// When the timers last ran.
    ran: Option<Instant>,
}

impl Wake {
    /// An input was handled (a datagram, a command): it may have set a timer.
    pub fn input_handled(&mut self) {
        self.stale = true;
    }

    /// When the loop should wake next, looking for the next timer with `next_timer` if it is
    /// time to: at the next timer, or when it must look again, whichever is first.
    pub fn next(&mut self, now: Instant, next_timer: impl FnOnce() -> Option<Instant>) -> Option<Instant> {
        let look = match self.looked {
            None => true,
            Some(looked) => self.stale && now >= looked + GRANULARITY,
        };
        if look {
            self.due = next_timer();
            self.looked = Some(now);
            self.stale = false;
        }
        let look_again = self.looked.filter(|_| self.stale).map(|looked| looked + GRANULARITY);
        [self.timers_at(), look_again].into_iter().flatten().min()
    }

    /// Whether the timers are to run at `now` (else the loop woke only to look again). If so the
    /// caller runs them, and the next [`Wake::next`] looks afresh.
    pub fn timers_due(&mut self, now: Instant) -> bool {
        let due = self.timers_at().is_some_and(|at| at <= now);
        if due {
            self.looked = None;
            self.ran = Some(now);
        }
        due
    }

    /// When the timers run: at the next one, but not sooner than [`GRANULARITY`] after they last ran.
    fn timers_at(&self) -> Option<Instant> {
        let due = self.due?;
        Some(self.ran.map_or(due, |ran| due.max(ran + GRANULARITY)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timers_are_looked_for_once_until_an_input_or_their_running_may_have_moved_them() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut wake = Wake::default();
        let looks = std::cell::Cell::new(0);
        let next = |wake: &mut Wake, now: Instant, timer: u64| {
            wake.next(now, || {
                looks.set(looks.get() + 1);
                Some(at(timer))
            })
        };
        assert_eq!(next(&mut wake, t0, 100), Some(at(100)), "the first look");
        assert_eq!(next(&mut wake, at(1), 50), Some(at(100)), "nothing changed: no look");

        // Inputs keep coming: one look per GRANULARITY, and the loop wakes to make it.
        wake.input_handled();
        assert_eq!(next(&mut wake, at(2), 50), Some(t0 + GRANULARITY), "looked 2 ms ago: wait");
        wake.input_handled();
        assert_eq!(next(&mut wake, t0 + GRANULARITY, 50), Some(at(50)), "looked again");
        assert_eq!(looks.get(), 2);

        // Waking to look again is not a timer; waking at the timer is, and the next look is fresh.
        assert!(!wake.timers_due(at(20)));
        assert!(wake.timers_due(at(50)));
        assert_eq!(next(&mut wake, at(50), 150), Some(at(150)));
        assert_eq!(looks.get(), 3);
    }

    #[test]
    fn timers_due_soon_after_others_ran_wait_to_run_together() {
        let t0 = Instant::now();
        let mut wake = Wake::default();
        assert_eq!(wake.next(t0, || Some(t0)), Some(t0));
        assert!(wake.timers_due(t0));
        let soon = t0 + Duration::from_millis(1);
        assert_eq!(wake.next(t0, || Some(soon)), Some(t0 + GRANULARITY), "not before the granularity");
        assert!(!wake.timers_due(soon));
        assert!(wake.timers_due(t0 + GRANULARITY));
    }

    #[test]
    fn without_timers_the_loop_sleeps_until_an_input_needs_a_look() {
        let t0 = Instant::now();
        let mut wake = Wake::default();
        assert_eq!(wake.next(t0, || None), None);
        wake.input_handled();
        assert_eq!(wake.next(t0, || None), Some(t0 + GRANULARITY), "a timer may have been set");
        assert_eq!(wake.next(t0 + GRANULARITY, || None), None, "none was");
    }
}
