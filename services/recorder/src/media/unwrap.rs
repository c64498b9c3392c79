//! RTP sequence numbers (16 bit) and timestamps (32 bit) wrap around within minutes or hours of a
//! call. Everything downstream (reorder buffer keys, gap detection, the media clock) wants one
//! monotonic `u64` line instead, so this module extends wire values RFC 3550 style: each new value
//! becomes the candidate nearest to the previous one.

/// Extends wrapping counters of `BITS` bits (at most 32) to `u64`.
///
/// The first value is placed in the second cycle (`value + 2^BITS`), so a packet reordered from
/// just before a wrap at the very start still maps below it instead of far into the future. The
/// low `BITS` bits of every result equal the wire value.
#[derive(Debug, Clone, Default)]
struct Extender<const BITS: u32> {
    last: Option<u64>,
}

impl<const BITS: u32> Extender<BITS> {
    const MODULUS: u64 = 1 << BITS;

    fn peek(&self, value: u64) -> u64 {
        let value = value & (Self::MODULUS - 1);
        let Some(last) = self.last else { return Self::MODULUS + value };
        let forward = value.wrapping_sub(last) & (Self::MODULUS - 1);
        if forward <= Self::MODULUS / 2 {
            last.saturating_add(forward)
        } else {
            // Going back further than the start of the line is impossible in practice (it would
            // take 2^BITS steps backwards); saturate instead of underflowing.
            last.saturating_sub(Self::MODULUS - forward)
        }
    }

    fn extend(&mut self, value: u64) -> u64 {
        let extended = self.peek(value);
        self.last = Some(extended);
        extended
    }
}

/// Extends 16-bit RTP sequence numbers to a monotonic `u64`.
#[derive(Debug, Clone, Default)]
pub struct SequenceUnwrapper(Extender<16>);

impl SequenceUnwrapper {
    /// Extends `sequence_number` relative to the previous value and remembers it.
    pub fn unwrap(&mut self, sequence_number: u16) -> u64 {
        self.0.extend(u64::from(sequence_number))
    }
}

/// Extends 32-bit RTP timestamps to a monotonic `u64`.
#[derive(Debug, Clone, Default)]
pub struct TimestampUnwrapper(Extender<32>);

impl TimestampUnwrapper {
    /// Extends `timestamp` relative to the previous value and remembers it.
    pub fn unwrap(&mut self, timestamp: u32) -> u64 {
        self.0.extend(u64::from(timestamp))
    }

    /// Extends `timestamp` without remembering it (for RTCP sender reports, which must not move
    /// the reference of the packet stream). `None` before the first packet.
    pub fn peek(&self, timestamp: u32) -> Option<u64> {
        self.0.last.map(|_| self.0.peek(u64::from(timestamp)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEQ_BASE: u64 = 1 << 16;
    const TS_BASE: u64 = 1 << 32;

    #[test]
    fn in_order_sequence_numbers_increase_by_one() {
        let mut u = SequenceUnwrapper::default();
        assert_eq!(u.unwrap(10), SEQ_BASE + 10);
        assert_eq!(u.unwrap(11), SEQ_BASE + 11);
        assert_eq!(u.unwrap(12), SEQ_BASE + 12);
    }

    #[test]
    fn sequence_wrap_from_65535_to_0_keeps_counting_up() {
        let mut u = SequenceUnwrapper::default();
        assert_eq!(u.unwrap(65534), SEQ_BASE + 65534);
        assert_eq!(u.unwrap(65535), SEQ_BASE + 65535);
        assert_eq!(u.unwrap(0), 2 * SEQ_BASE);
        assert_eq!(u.unwrap(1), 2 * SEQ_BASE + 1);
    }

    #[test]
    fn reordering_across_the_wrap_maps_each_packet_to_its_place() {
        let mut u = SequenceUnwrapper::default();
        assert_eq!(u.unwrap(65534), SEQ_BASE + 65534);
        assert_eq!(u.unwrap(1), 2 * SEQ_BASE + 1);
        assert_eq!(u.unwrap(65535), SEQ_BASE + 65535);
        assert_eq!(u.unwrap(0), 2 * SEQ_BASE);
        assert_eq!(u.unwrap(2), 2 * SEQ_BASE + 2);
    }

    #[test]
    fn a_packet_from_before_a_wrap_at_the_very_start_maps_below_the_first() {
        let mut u = SequenceUnwrapper::default();
        let first = u.unwrap(2);
        let earlier = u.unwrap(65533);
        assert_eq!(first - earlier, 5);
    }

    #[test]
    fn timestamp_wrap_at_u32_max_keeps_counting_up() {
        let mut u = TimestampUnwrapper::default();
        assert_eq!(u.unwrap(u32::MAX - 2999), TS_BASE + u64::from(u32::MAX) - 2999);
        assert_eq!(u.unwrap(u32::MAX), TS_BASE + u64::from(u32::MAX));
        assert_eq!(u.unwrap(2999), 2 * TS_BASE + 2999);
        assert_eq!(u.unwrap(u32::MAX - 100), TS_BASE + u64::from(u32::MAX) - 100);
    }

    #[test]
    fn timestamp_peek_does_not_move_the_reference() {
        let mut u = TimestampUnwrapper::default();
        assert_eq!(u.peek(5), None);
        u.unwrap(u32::MAX);
        assert_eq!(u.peek(10), Some(2 * TS_BASE + 10));
        assert_eq!(u.unwrap(u32::MAX - 10), TS_BASE + u64::from(u32::MAX) - 10);
    }
}
