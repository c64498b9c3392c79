//! One subscriber's copy of one published video track: it forwards the layer it receives, moves to
//! the target layer at that layer's next keyframe (a decoder cannot start mid-picture-group, and
//! until then the old layer keeps playing), and forwards nothing while paused (an off-screen
//! tile). After a pause it waits for a keyframe again.

use super::{Forwarded, Incoming, Layer, Original, Rewriter};

/// What to do with one incoming packet for this subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it with these numbers.
    Forward(Forwarded),
    Drop,
}

#[derive(Debug)]
pub struct DownTrack {
    rewriter: Rewriter,
    /// The layer forwarded now, if any.
    current: Option<Layer>,
    /// The layer to forward; `None` while paused.
    target: Option<Layer>,
}

impl DownTrack {
    /// A paused copy of a track sampled at `clock_rate` Hz.
    pub fn new(clock_rate: u32) -> Self {
        Self { rewriter: Rewriter::new(clock_rate), current: None, target: None }
    }

    /// The layer to forward from now on (see [`super::target_layer`]); `None` pauses.
    pub fn set_target(&mut self, target: Option<Layer>) {
        self.target = target;
        if target.is_none() {
            self.current = None;
        }
    }

    /// The layer forwarded now.
    pub fn current(&self) -> Option<Layer> {
        self.current
    }

    /// The layer whose keyframe this subscriber waits for: its target, until that is what it
    /// receives. The caller asks the publisher for one, through its [`super::KeyframeThrottle`].
    pub fn awaits_keyframe(&self) -> Option<Layer> {
        self.target.filter(|target| self.current != Some(*target))
    }

    /// `timestamp` of `layer` in this subscriber's time, while it receives that layer.
    pub fn timestamp_of(&self, layer: Layer, timestamp: u32) -> Option<u32> {
        self.rewriter.timestamp_of(layer, timestamp)
    }

    /// Where the packet sent to this subscriber as `sequence_number` (what a NACK names) came
    /// from, for the publisher's packet cache.
    pub fn original(&self, sequence_number: u16) -> Option<Original> {
        self.rewriter.original(sequence_number)
    }

    pub fn on_packet(&mut self, packet: &Incoming) -> Verdict {
        let Some(target) = self.target else { return Verdict::Drop };
        let rewritten = if packet.layer == target && self.current != Some(target) {
            if !packet.starts_keyframe {
                return Verdict::Drop;
            }
            self.current = Some(target);
            Some(self.rewriter.switch_to(target, packet.sequence_number, packet.timestamp, packet.arrived))
        } else if Some(packet.layer) == self.current {
            self.rewriter.rewrite(packet.sequence_number, packet.timestamp, packet.arrived)
        } else {
            None
        };
        rewritten.map_or(Verdict::Drop, Verdict::Forward)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn packet(layer: Layer, sequence_number: u16, starts_keyframe: bool, arrived: Instant) -> Incoming {
        Incoming { layer, sequence_number, timestamp: u32::from(sequence_number) * 3000, starts_keyframe, arrived }
    }

    fn sequence(verdict: Verdict) -> Option<u16> {
        match verdict {
            Verdict::Forward(forwarded) => Some(forwarded.sequence_number),
            Verdict::Drop => None,
        }
    }

    #[test]
    fn a_paused_track_forwards_nothing() {
        let mut track = DownTrack::new(90_000);
        assert_eq!(track.on_packet(&packet(0, 1, true, Instant::now())), Verdict::Drop);
        assert_eq!(track.awaits_keyframe(), None);
    }

    #[test]
    fn it_starts_at_a_keyframe_of_its_target() {
        let t0 = Instant::now();
        let mut track = DownTrack::new(90_000);
        track.set_target(Some(1));
        assert_eq!(track.awaits_keyframe(), Some(1));
        assert_eq!(sequence(track.on_packet(&packet(1, 10, false, t0))), None, "mid picture group");
        assert_eq!(sequence(track.on_packet(&packet(0, 99, true, t0))), None, "another layer");
        assert_eq!(sequence(track.on_packet(&packet(1, 11, true, t0))), Some(11));
        assert_eq!(sequence(track.on_packet(&packet(1, 12, false, t0))), Some(12));
        assert_eq!(track.awaits_keyframe(), None);
    }

    #[test]
    fn the_old_layer_plays_until_the_new_one_has_a_keyframe() {
        let t0 = Instant::now();
        let mut track = DownTrack::new(90_000);
        track.set_target(Some(2));
        track.on_packet(&packet(2, 100, true, t0));
        track.set_target(Some(0));
        assert_eq!(track.awaits_keyframe(), Some(0));
        assert_eq!(sequence(track.on_packet(&packet(2, 101, false, t0))), Some(101), "still layer 2");
        assert_eq!(sequence(track.on_packet(&packet(0, 5, false, t0))), None);
        assert_eq!(sequence(track.on_packet(&packet(0, 6, true, t0 + Duration::from_millis(10)))), Some(102));
        assert_eq!(sequence(track.on_packet(&packet(2, 102, false, t0))), None, "layer 2 is done");
        assert_eq!(sequence(track.on_packet(&packet(0, 7, false, t0))), Some(103));
    }

    #[test]
    fn after_a_pause_it_waits_for_a_keyframe_and_continues_the_numbers() {
        let t0 = Instant::now();
        let mut track = DownTrack::new(90_000);
        track.set_target(Some(0));
        track.on_packet(&packet(0, 1, true, t0));
        track.set_target(None);
        assert_eq!(sequence(track.on_packet(&packet(0, 2, false, t0))), None);
        track.set_target(Some(0));
        assert_eq!(track.awaits_keyframe(), Some(0));
        assert_eq!(sequence(track.on_packet(&packet(0, 3, false, t0))), None, "not a keyframe");
        assert_eq!(sequence(track.on_packet(&packet(0, 4, true, t0))), Some(2), "one on from the last sent");
    }
}
