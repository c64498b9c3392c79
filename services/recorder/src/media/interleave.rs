//! libwebm requires block timestamps that never decrease across all tracks of a file, but frames
//! of different tracks leave their jitter buffers out of timeline order (video waits longer than
//! audio). This module holds frames for a short window of media time and releases them in
//! timestamp order, moving the rare frame that is later than the window to just after the last one
//! released (a millisecond, the files' resolution, so that no two frames of a track share a time:
//! players and ffmpeg take that for a broken file). Frames come late like that when a sender's
//! video falls behind its audio by more than the window (an encoder starved of CPU).

use std::collections::BTreeMap;

/// How far after the last frame released a late one is placed.
const LATE_STEP_NS: u64 = 1_000_000;

/// Sorts items by timeline ns within a window; output timestamps are non-negative and never
/// decrease.
#[derive(Debug)]
pub struct Interleaver<T> {
    window_ns: i128,
    /// Keyed by (timestamp, arrival counter) so equal timestamps keep their arrival order.
    pending: BTreeMap<(i128, u64), T>,
    counter: u64,
    newest_ns: Option<i128>,
    last_released_ns: u64,
}

impl<T> Interleaver<T> {
    /// Holds each item until one `window_ns` newer has been pushed.
    pub fn new(window_ns: u64) -> Self {
        Self {
            window_ns: i128::from(window_ns),
            pending: BTreeMap::new(),
            counter: 0,
            newest_ns: None,
            last_released_ns: 0,
        }
    }

    /// Adds an item at `timestamp_ns` and returns the items now due, in order.
    pub fn push(&mut self, timestamp_ns: i128, item: T) -> Vec<(u64, T)> {
        self.pending.insert((timestamp_ns, self.counter), item);
        self.counter += 1;
        let newest = self.newest_ns.map_or(timestamp_ns, |n| n.max(timestamp_ns));
        self.newest_ns = Some(newest);
        self.release_until(newest - self.window_ns)
    }

    /// Releases everything held (end of recording).
    pub fn flush(&mut self) -> Vec<(u64, T)> {
        self.release_until(i128::MAX)
    }

    fn release_until(&mut self, limit_ns: i128) -> Vec<(u64, T)> {
        let mut out = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > limit_ns {
                break;
            }
            let ((timestamp_ns, _), item) = entry.remove_entry();
            let timestamp_ns = u64::try_from(timestamp_ns.max(0)).unwrap_or(u64::MAX);
            let clamped = if timestamp_ns < self.last_released_ns {
                self.last_released_ns.saturating_add(LATE_STEP_NS)
            } else {
                timestamp_ns
            };
            self.last_released_ns = clamped;
            out.push((clamped, item));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i128 = 1_000_000;

    #[test]
    fn items_from_two_tracks_come_out_in_timestamp_order() {
        let mut i = Interleaver::new(300_000_000);
        let mut out = Vec::new();
        // Audio runs 80 ms ahead of video in arrival order.
        for n in 0..40i128 {
            out.extend(i.push(n * 20 * MS, "audio"));
            if n >= 4 && n % 2 == 0 {
                out.extend(i.push((n - 4) * 20 * MS, "video"));
            }
        }
        out.extend(i.flush());
        assert_eq!(out.len(), 40 + 18);
        assert!(out.windows(2).all(|w| w[0].0 <= w[1].0), "{out:?}");
        assert_eq!(out.iter().filter(|(ts, what)| *what == "video" && *ts == 40_000_000).count(), 1);
    }

    #[test]
    fn frames_later_than_the_window_follow_the_last_one_a_millisecond_apart_and_negative_times_become_zero() {
        let mut i = Interleaver::new(100_000_000);
        assert!(i.push(-5 * MS, 'a').is_empty());
        assert_eq!(i.push(200 * MS, 'b'), vec![(0, 'a')]);
        assert_eq!(i.push(400 * MS, 'c'), vec![(200_000_000, 'b')]);
        assert_eq!(i.push(150 * MS, 'd'), vec![(201_000_000, 'd')]);
        assert_eq!(i.push(160 * MS, 'e'), vec![(202_000_000, 'e')]);
        assert_eq!(i.flush(), vec![(400_000_000, 'c')]);
    }
}
