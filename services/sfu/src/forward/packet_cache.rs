//! The recent packets of one published stream (one simulcast layer), kept for retransmission: a
//! packet's payload, timestamp and marker, all a retransmission needs beside the subscriber's own
//! numbers. A subscriber's NACK is answered from here — one copy for all subscribers — rather
//! than from a copy in every subscriber's connection (webrtc-rs's responder keeps a header and a
//! payload reference per packet, stream and subscriber: ~28 KiB a video copy at 256 packets).
//! Its memory is allocated once: keeping or reading a packet allocates nothing.

use std::time::{Duration, Instant};

/// The largest packet kept: an Ethernet MTU, more than any WebRTC sender puts in one datagram.
pub const MAX_PACKET: usize = 1500;

/// How long a packet is worth retransmitting: beyond about a second the receiver has given it up
/// (its jitter buffer has moved on) and a keyframe request is the remedy.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// Packets by sequence number, in a ring of fixed size.
pub struct PacketCache {
    slots: Box<[Slot]>,
    bytes: Box<[u8]>,
}

#[derive(Clone, Copy)]
struct Slot {
    sequence_number: u16,
    timestamp: u32,
    marker: bool,
    len: u16,
    kept_at: Option<Instant>,
}

/// A kept packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cached<'a> {
    pub timestamp: u32,
    pub marker: bool,
    pub payload: &'a [u8],
}

impl PacketCache {
    /// A cache of `capacity` packets (rounded up to a power of two): 512 keep about two seconds
    /// of a 720p layer at 1.5 Mbit/s (~150 packets a second).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1).next_power_of_two();
        Self {
            slots: vec![Slot { sequence_number: 0, timestamp: 0, marker: false, len: 0, kept_at: None }; capacity]
                .into_boxed_slice(),
            bytes: vec![0; capacity * MAX_PACKET].into_boxed_slice(),
        }
    }

    /// Keeps packet `sequence_number` in place of the packet 'capacity' numbers before it. A
    /// payload over [`MAX_PACKET`] is not kept (`false`).
    pub fn keep(&mut self, sequence_number: u16, packet: Cached, now: Instant) -> bool {
        let Cached { timestamp, marker, payload } = packet;
        if payload.len() > MAX_PACKET {
            return false;
        }
        let index = self.index(sequence_number);
        self.bytes[index * MAX_PACKET..][..payload.len()].copy_from_slice(payload);
        let len = payload.len() as u16;
        self.slots[index] = Slot { sequence_number, timestamp, marker, len, kept_at: Some(now) };
        true
    }

    /// The packet kept as `sequence_number`, if it is still here and not older than [`MAX_AGE`].
    pub fn get(&self, sequence_number: u16, now: Instant) -> Option<Cached<'_>> {
        let index = self.index(sequence_number);
        let slot = self.slots[index];
        let fresh = slot.kept_at.is_some_and(|at| now.saturating_duration_since(at) <= MAX_AGE);
        (fresh && slot.sequence_number == sequence_number).then(|| Cached {
            timestamp: slot.timestamp,
            marker: slot.marker,
            payload: &self.bytes[index * MAX_PACKET..][..usize::from(slot.len)],
        })
    }

    fn index(&self, sequence_number: u16) -> usize {
        usize::from(sequence_number) & (self.slots.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(payload: &[u8]) -> Cached<'_> {
        Cached { timestamp: 9_000, marker: true, payload }
    }

    fn payload(cache: &PacketCache, sequence_number: u16, now: Instant) -> Option<&[u8]> {
        cache.get(sequence_number, now).map(|cached| cached.payload)
    }

    #[test]
    fn a_kept_packet_is_found_by_its_number_until_overwritten_or_stale() {
        let t0 = Instant::now();
        let mut cache = PacketCache::new(500);
        assert!(cache.keep(65_535, packet(b"last before the wrap"), t0));
        assert!(cache.keep(0, Cached { timestamp: 12_000, marker: false, payload: b"first after" }, t0));
        assert_eq!(cache.get(65_535, t0), Some(packet(b"last before the wrap")));
        assert_eq!(cache.get(0, t0), Some(Cached { timestamp: 12_000, marker: false, payload: b"first after" }));
        assert_eq!(cache.get(1, t0), None, "never kept");
        assert_eq!(cache.get(65_535 - 512, t0), None, "the same slot, another number");
        assert!(cache.keep(511, packet(b"512 on"), t0));
        assert_eq!(cache.get(65_535, t0), None, "overwritten by the packet 512 numbers on");
        assert_eq!(payload(&cache, 0, t0 + MAX_AGE), Some(&b"first after"[..]));
        assert_eq!(cache.get(0, t0 + MAX_AGE + Duration::from_millis(1)), None, "too old to help");
    }

    #[test]
    fn a_packet_larger_than_an_mtu_is_refused_and_a_full_size_one_kept() {
        let t0 = Instant::now();
        let mut cache = PacketCache::new(4);
        assert!(!cache.keep(1, packet(&[7; MAX_PACKET + 1]), t0));
        assert_eq!(cache.get(1, t0), None);
        assert!(cache.keep(2, packet(&[7; MAX_PACKET]), t0));
        assert_eq!(payload(&cache, 2, t0).map(<[u8]>::len), Some(MAX_PACKET));
        assert!(cache.keep(3, packet(&[]), t0), "an empty packet is a packet");
        assert_eq!(payload(&cache, 3, t0), Some(&[][..]));
    }
}
