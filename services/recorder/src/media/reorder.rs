//! UDP reorders and loses packets, and NACK retransmissions arrive late. The depacketizers need
//! packets in sequence order with gaps made explicit, so this jitter buffer holds early packets
//! until the missing ones arrive — but only for a bounded time and a bounded number of packets,
//! after which the gap is declared lost so the caller can ask for a keyframe.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::RtpPacket;
use super::unwrap::SequenceUnwrapper;

/// What the buffer hands on, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// The next packet; `sequence` is its extended sequence number.
    Packet { sequence: u64, packet: RtpPacket },
    /// `count` packets starting at extended sequence number `first` will never be released.
    Lost { first: u64, count: u64 },
    /// The stream changed SSRC; what the buffer held of the old stream was released before this,
    /// and sequence numbers start afresh after it.
    SsrcChanged { old: u32, new: u32 },
}

/// A reorder buffer keyed by extended sequence number.
#[derive(Debug)]
pub struct ReorderBuffer {
    max_wait: Duration,
    max_pending: usize,
    ssrc: Option<u32>,
    sequences: SequenceUnwrapper,
    /// Extended sequence number of the next packet to release (the release point).
    next: Option<u64>,
    /// Packets waiting for an earlier one, with their arrival time.
    pending: BTreeMap<u64, (RtpPacket, Instant)>,
}

impl ReorderBuffer {
    /// Waits for a missing packet at most `max_wait` after a later packet arrived, and at most
    /// until `max_pending` later packets are waiting.
    pub fn new(max_wait: Duration, max_pending: usize) -> Self {
        Self {
            max_wait,
            max_pending: max_pending.max(1),
            ssrc: None,
            sequences: SequenceUnwrapper::default(),
            next: None,
            pending: BTreeMap::new(),
        }
    }

    /// Takes one packet received at `now` and returns what can be released. Duplicates and packets
    /// older than the release point are dropped.
    pub fn push(&mut self, packet: RtpPacket, now: Instant) -> Vec<Released> {
        let mut out = Vec::new();
        match self.ssrc {
            Some(old) if old != packet.ssrc => {
                self.flush_into(&mut out);
                out.push(Released::SsrcChanged { old, new: packet.ssrc });
                self.sequences = SequenceUnwrapper::default();
                self.next = None;
            }
            _ => {}
        }
        self.ssrc = Some(packet.ssrc);

        let sequence = self.sequences.unwrap(packet.sequence_number);
        let next = *self.next.get_or_insert(sequence);
        if sequence >= next {
            self.pending.entry(sequence).or_insert((packet, now));
        }
        self.release_into(now, &mut out);
        out
    }

    /// Releases what waited long enough; call when [`Self::deadline`] has passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Released> {
        let mut out = Vec::new();
        self.release_into(now, &mut out);
        out
    }

    /// When the oldest wait for a missing packet runs out, if one is waiting.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.values().map(|(_, arrived)| *arrived).min().map(|t| t + self.max_wait)
    }

    /// Releases everything held, declaring the gaps lost (end of stream).
    pub fn flush(&mut self) -> Vec<Released> {
        let mut out = Vec::new();
        self.flush_into(&mut out);
        out
    }

    fn flush_into(&mut self, out: &mut Vec<Released>) {
        while !self.pending.is_empty() {
            self.skip_gap(out);
            self.release_run(out);
        }
    }

    fn release_into(&mut self, now: Instant, out: &mut Vec<Released>) {
        self.release_run(out);
        while self.deadline().is_some_and(|d| now >= d) || self.pending.len() >= self.max_pending {
            self.skip_gap(out);
            self.release_run(out);
        }
    }

    /// Releases the in-order run starting at the release point.
    fn release_run(&mut self, out: &mut Vec<Released>) {
        let Some(mut next) = self.next else { return };
        while let Some((packet, _)) = self.pending.remove(&next) {
            out.push(Released::Packet { sequence: next, packet });
            next += 1;
        }
        self.next = Some(next);
    }

    /// Gives up on the packets missing before the first held one.
    fn skip_gap(&mut self, out: &mut Vec<Released>) {
        let (Some(next), Some(&first_held)) = (self.next, self.pending.keys().next()) else { return };
        if first_held > next {
            out.push(Released::Lost { first: next, count: first_held - next });
        }
        self.next = Some(first_held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::testing::packet;

    const BASE: u64 = 1 << 16;

    fn buffer() -> ReorderBuffer {
        ReorderBuffer::new(Duration::from_millis(100), 64)
    }

    fn seqs(released: &[Released]) -> Vec<u64> {
        released
            .iter()
            .filter_map(|r| match r {
                Released::Packet { sequence, .. } => Some(sequence - BASE),
                _ => None,
            })
            .collect()
    }

    fn losses(released: &[Released]) -> Vec<(u64, u64)> {
        released
            .iter()
            .filter_map(|r| match r {
                Released::Lost { first, count } => Some((first - BASE, *count)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn in_order_packets_are_released_immediately() {
        let mut b = buffer();
        let t = Instant::now();
        for s in 0..5 {
            let out = b.push(packet(s, 0, false, vec![s as u8]), t);
            assert_eq!(seqs(&out), vec![u64::from(s)]);
        }
        assert_eq!(b.deadline(), None);
    }

    #[test]
    fn reordered_packets_come_out_in_order() {
        let mut b = buffer();
        let t = Instant::now();
        assert_eq!(seqs(&b.push(packet(10, 0, false, vec![]), t)), vec![10]);
        assert!(b.push(packet(12, 0, false, vec![]), t).is_empty());
        assert!(b.push(packet(13, 0, false, vec![]), t).is_empty());
        assert_eq!(b.deadline(), Some(t + Duration::from_millis(100)));
        assert_eq!(seqs(&b.push(packet(11, 0, false, vec![]), t)), vec![11, 12, 13]);
    }

    #[test]
    fn duplicates_and_packets_behind_the_release_point_are_dropped() {
        let mut b = buffer();
        let t = Instant::now();
        b.push(packet(1, 0, false, vec![]), t);
        assert!(b.push(packet(1, 0, false, vec![]), t).is_empty());
        assert!(b.push(packet(3, 0, false, vec![]), t).is_empty());
        assert!(b.push(packet(3, 0, false, vec![9]), t).is_empty());
        let out = b.push(packet(2, 0, false, vec![]), t);
        assert_eq!(seqs(&out), vec![2, 3]);
        match &out[1] {
            Released::Packet { packet, .. } => assert!(packet.payload.is_empty(), "the first copy wins"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(b.push(packet(0, 0, false, vec![]), t).is_empty());
    }

    #[test]
    fn a_gap_is_declared_lost_after_the_wait_runs_out() {
        let mut b = buffer();
        let t = Instant::now();
        b.push(packet(1, 0, false, vec![]), t);
        b.push(packet(4, 0, false, vec![]), t + Duration::from_millis(10));
        b.push(packet(5, 0, false, vec![]), t + Duration::from_millis(50));
        assert!(b.handle_timeout(t + Duration::from_millis(109)).is_empty());
        let out = b.handle_timeout(t + Duration::from_millis(110));
        assert_eq!(losses(&out), vec![(2, 2)]);
        assert_eq!(seqs(&out), vec![4, 5]);
        assert!(b.push(packet(2, 0, false, vec![]), t + Duration::from_millis(120)).is_empty());
        assert_eq!(seqs(&b.push(packet(6, 0, false, vec![]), t + Duration::from_millis(120))), vec![6]);
    }

    #[test]
    fn a_gap_is_declared_lost_after_too_many_later_packets() {
        let mut b = ReorderBuffer::new(Duration::from_secs(10), 4);
        let t = Instant::now();
        b.push(packet(0, 0, false, vec![]), t);
        for s in 2..5 {
            assert!(b.push(packet(s, 0, false, vec![]), t).is_empty());
        }
        let out = b.push(packet(5, 0, false, vec![]), t);
        assert_eq!(losses(&out), vec![(1, 1)]);
        assert_eq!(seqs(&out), vec![2, 3, 4, 5]);
    }

    #[test]
    fn the_sequence_wrap_is_invisible_downstream() {
        let mut b = buffer();
        let t = Instant::now();
        let mut got = Vec::new();
        for s in [65533u16, 65535, 0, 65534, 1] {
            got.extend(seqs(&b.push(packet(s, 0, false, vec![]), t)));
        }
        assert_eq!(got, vec![65533, 65534, 65535, 65536, 65537]);
    }

    #[test]
    fn an_ssrc_change_flushes_the_old_stream_and_starts_afresh() {
        let mut b = buffer();
        let t = Instant::now();
        b.push(packet(100, 0, false, vec![]), t);
        b.push(packet(102, 0, false, vec![]), t);
        let mut p = packet(7, 0, false, vec![]);
        p.ssrc = 0x9999;
        let out = b.push(p, t);
        assert_eq!(losses(&out), vec![(101, 1)]);
        assert_eq!(out[1], Released::Packet { sequence: BASE + 102, packet: packet(102, 0, false, vec![]) });
        assert_eq!(out[2], Released::SsrcChanged { old: 0x1234, new: 0x9999 });
        assert_eq!(seqs(&out[3..]), vec![7]);
    }
}
