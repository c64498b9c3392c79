//! Renumbering. A subscriber receives one stream per published track, whichever simulcast layer
//! each stretch of it comes from: its sequence numbers continue without a jump where the layer
//! changes (a jump would read as thousands of lost packets, and a NACK storm), and its timestamps
//! continue by the time that passed (a jump would stall the playout). Packets of a layer that
//! arrive late, from before the switch to it, are not forwarded: their numbers are taken. A
//! subscriber's NACK names its own numbers; [`Rewriter::original`] maps them back to the layer's,
//! for the publisher's packet cache, within the current stretch: one begins at a keyframe, so a
//! decoder never needs a packet from before it.

use std::time::Instant;

use super::Layer;

/// A forwarded packet's sequence number and timestamp in the subscriber's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    pub sequence_number: u16,
    pub timestamp: u32,
    /// The packet begins a stretch from another layer (or the first): codec-level numbers in the
    /// payload (VP8's PictureID) are re-based here too.
    pub starts_segment: bool,
}

/// A sent packet as its layer numbered it, for a retransmission: the layer's packet
/// `sequence_number`, whose timestamp was moved by `timestamp_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Original {
    pub layer: Layer,
    pub sequence_number: u16,
    pub timestamp_offset: u32,
}

/// Maps packets of a succession of sources into one continuous stream.
#[derive(Debug)]
pub struct Rewriter {
    clock_rate: u32,
    segment: Option<Segment>,
    /// The newest packet sent: its sequence number, its timestamp, and when it arrived.
    newest: Option<(u16, u32, Instant)>,
}

/// The stretch of the output that comes from one layer, from the switch to it on.
#[derive(Debug)]
struct Segment {
    layer: Layer,
    /// Extended sequence numbers (no wrap-around) of the switch and of the newest packet seen.
    first: i64,
    highest: i64,
    sequence_offset: u16,
    timestamp_offset: u32,
}

impl Rewriter {
    /// A stream of media sampled at `clock_rate` Hz (90 000 for video).
    pub fn new(clock_rate: u32) -> Self {
        Self { clock_rate, segment: None, newest: None }
    }

    /// The layer the stream comes from now.
    pub fn layer(&self) -> Option<Layer> {
        self.segment.as_ref().map(|segment| segment.layer)
    }

    /// Starts the next stretch of the stream at this packet of `layer` (the first packet of a
    /// keyframe): it follows the newest packet sent, one sequence number and the elapsed time on.
    pub fn switch_to(&mut self, layer: Layer, sequence_number: u16, timestamp: u32, arrived: Instant) -> Forwarded {
        let out = match self.newest {
            None => Forwarded { sequence_number, timestamp, starts_segment: true },
            Some((newest_sequence, newest_timestamp, at)) => {
                let elapsed = arrived.saturating_duration_since(at);
                let ticks = (elapsed.as_micros() * u128::from(self.clock_rate) / 1_000_000) as u32;
                // A new picture: at least one tick after the last, even within the same instant.
                Forwarded {
                    sequence_number: newest_sequence.wrapping_add(1),
                    timestamp: newest_timestamp.wrapping_add(ticks.max(1)),
                    starts_segment: true,
                }
            }
        };
        let first = EXTENDED_START + i64::from(sequence_number);
        self.segment = Some(Segment {
            layer,
            first,
            highest: first,
            sequence_offset: out.sequence_number.wrapping_sub(sequence_number),
            timestamp_offset: out.timestamp.wrapping_sub(timestamp),
        });
        self.newest = Some((out.sequence_number, out.timestamp, arrived));
        out
    }

    /// `timestamp` of `layer` in this stream's time, while the stream comes from that layer (a
    /// publisher's sender report, translated for the subscriber).
    pub fn timestamp_of(&self, layer: Layer, timestamp: u32) -> Option<u32> {
        let segment = self.segment.as_ref().filter(|segment| segment.layer == layer)?;
        Some(timestamp.wrapping_add(segment.timestamp_offset))
    }

    /// Where the packet this stream sent as `sequence_number` came from; `None` for a number it
    /// has not sent yet or sent before the current stretch began.
    pub fn original(&self, sequence_number: u16) -> Option<Original> {
        let (newest, ..) = self.newest?;
        let segment = self.segment.as_ref()?;
        let first_out = (segment.first as u16).wrapping_add(segment.sequence_offset);
        // How far back from the newest packet sent, within the stretch.
        let behind = newest.wrapping_sub(sequence_number);
        (behind <= newest.wrapping_sub(first_out)).then_some(Original {
            layer: segment.layer,
            sequence_number: sequence_number.wrapping_sub(segment.sequence_offset),
            timestamp_offset: segment.timestamp_offset,
        })
    }

    /// A packet of the current layer: its place in the stream, or `None` if it is from before
    /// the switch to the layer (or no layer is being forwarded).
    pub fn rewrite(&mut self, sequence_number: u16, timestamp: u32, arrived: Instant) -> Option<Forwarded> {
        let segment = self.segment.as_mut()?;
        let extended = extend(segment.highest, sequence_number);
        if extended < segment.first {
            return None;
        }
        let out = Forwarded {
            sequence_number: sequence_number.wrapping_add(segment.sequence_offset),
            timestamp: timestamp.wrapping_add(segment.timestamp_offset),
            starts_segment: false,
        };
        if extended > segment.highest {
            segment.highest = extended;
            self.newest = Some((out.sequence_number, out.timestamp, arrived));
        }
        Some(out)
    }
}

/// Where extended sequence numbers start, so that packets from before a switch stay positive.
const EXTENDED_START: i64 = 1 << 32;

/// `sequence_number` as an extended sequence number, taken as the one nearest to `highest`
/// (RFC 3550, A.1: a packet at most half the number space before or after the newest).
fn extend(highest: i64, sequence_number: u16) -> i64 {
    let delta = sequence_number.wrapping_sub(highest as u16) as i16;
    highest + i64::from(delta)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn forwarded(sequence_number: u16, timestamp: u32) -> Forwarded {
        Forwarded { sequence_number, timestamp, starts_segment: false }
    }

    fn first(sequence_number: u16, timestamp: u32) -> Forwarded {
        Forwarded { starts_segment: true, ..forwarded(sequence_number, timestamp) }
    }

    #[test]
    fn the_first_layer_passes_through_unchanged() {
        let t0 = Instant::now();
        let mut rewriter = Rewriter::new(90_000);
        assert_eq!(rewriter.switch_to(0, 1000, 5000, t0), first(1000, 5000));
        assert_eq!(rewriter.rewrite(1001, 5000, t0), Some(forwarded(1001, 5000)));
        assert_eq!(rewriter.rewrite(1002, 8000, t0), Some(forwarded(1002, 8000)));
    }

    #[test]
    fn a_layers_time_is_translated_only_while_the_stream_comes_from_it() {
        let t0 = Instant::now();
        let mut rewriter = Rewriter::new(90_000);
        assert_eq!(rewriter.timestamp_of(0, 7), None, "nothing sent yet");
        rewriter.switch_to(0, 100, 1_000, t0);
        rewriter.rewrite(101, 4_000, t0);
        let switched = rewriter.switch_to(2, 7_000, 500_000, t0 + Duration::from_millis(33));
        assert_eq!(rewriter.timestamp_of(2, 500_000), Some(switched.timestamp));
        assert_eq!(rewriter.timestamp_of(2, 590_000), Some(switched.timestamp.wrapping_add(90_000)));
        assert_eq!(rewriter.timestamp_of(0, 4_000), None, "layer 0 is no longer sent");
    }

    #[test]
    fn a_switch_continues_the_numbers_and_the_time() {
        let t0 = Instant::now();
        let mut rewriter = Rewriter::new(90_000);
        rewriter.switch_to(0, 100, 1_000, t0);
        rewriter.rewrite(101, 4_000, t0 + Duration::from_millis(33));
        // 20 ms later, layer 2 (numbered and timed on its own) starts at a keyframe.
        let switched = rewriter.switch_to(2, 40_000, 7_777_777, t0 + Duration::from_millis(53));
        assert_eq!(switched, first(102, 4_000 + 1_800));
        assert_eq!(rewriter.layer(), Some(2));
        assert_eq!(rewriter.rewrite(40_001, 7_777_777 + 3_000, t0), Some(forwarded(103, 4_000 + 1_800 + 3_000)));
    }

    #[test]
    fn a_late_packet_of_the_current_layer_keeps_its_place_and_one_from_before_the_switch_is_dropped() {
        let t0 = Instant::now();
        let mut rewriter = Rewriter::new(90_000);
        rewriter.switch_to(1, 500, 0, t0);
        rewriter.rewrite(502, 0, t0);
        assert_eq!(rewriter.rewrite(501, 0, t0), Some(forwarded(501, 0)), "reordered, still in the stream");
        assert_eq!(rewriter.rewrite(499, 0, t0), None, "from before the switch");
        // The newest is still 502: the next switch follows it, not the late 501.
        assert_eq!(rewriter.switch_to(0, 9, 0, t0).sequence_number, 503);
    }

    #[test]
    fn sequence_numbers_wrap_around_in_and_out() {
        let t0 = Instant::now();
        let mut rewriter = Rewriter::new(90_000);
        rewriter.switch_to(0, 65_534, 0, t0);
        assert_eq!(rewriter.rewrite(65_535, 0, t0).unwrap().sequence_number, 65_535);
        assert_eq!(rewriter.rewrite(0, 0, t0).unwrap().sequence_number, 0);
        assert_eq!(rewriter.rewrite(1, 0, t0).unwrap().sequence_number, 1);
        assert_eq!(rewriter.rewrite(65_533, 0, t0), None, "before the switch, across the wrap");
        // Long after: 100 000 packets on, the window has moved with the stream.
        let mut sequence = 1u16;
        for _ in 0..100_000 {
            sequence = sequence.wrapping_add(1);
            assert!(rewriter.rewrite(sequence, 0, t0).is_some());
        }
        assert_eq!(rewriter.switch_to(1, 7, 0, t0).sequence_number, sequence.wrapping_add(1));
    }

    #[test]
    fn a_nacked_number_maps_back_to_its_layer_and_its_own_number_within_the_current_stretch() {
        let t0 = Instant::now();
        let mut rewriter = Rewriter::new(90_000);
        rewriter.switch_to(0, 100, 1_000, t0); // out 100..=102
        rewriter.rewrite(101, 1_000, t0);
        rewriter.rewrite(102, 4_000, t0);
        let original = |layer, sequence_number, timestamp_offset| Original { layer, sequence_number, timestamp_offset };
        assert_eq!(rewriter.original(102), Some(original(0, 102, 0)));
        assert_eq!(rewriter.original(100), Some(original(0, 100, 0)));
        assert_eq!(rewriter.original(99), None, "never sent");
        assert_eq!(rewriter.original(103), None, "not sent yet");
        let later = t0 + std::time::Duration::from_millis(10);
        let first = rewriter.switch_to(2, 7_000, 50_000, later); // out 103..=104
        rewriter.rewrite(7_001, 53_000, later);
        let offset = first.timestamp.wrapping_sub(50_000);
        assert_eq!(rewriter.original(104), Some(original(2, 7_001, offset)));
        assert_eq!(rewriter.original(103), Some(original(2, 7_000, offset)));
        assert_eq!(rewriter.original(102), None, "from before the keyframe the stretch begins with");
        assert_eq!(Rewriter::new(90_000).original(1), None);
    }

    #[test]
    fn nothing_is_forwarded_before_the_first_switch() {
        assert_eq!(Rewriter::new(90_000).rewrite(1, 1, Instant::now()), None);
    }
}
