//! H.264 over RTP (RFC 6184, packetization mode 1): a packet carries one NAL unit, several small
//! ones aggregated (STAP-A), or a fragment of a large one (FU-A); the type in the low five bits of
//! its first byte says which.

/// An IDR picture's slice: a keyframe.
pub const NAL_IDR: u8 = 5;
/// A sequence parameter set, sent before a keyframe.
pub const NAL_SPS: u8 = 7;
/// A picture parameter set.
pub const NAL_PPS: u8 = 8;
/// A single-time aggregation packet.
pub const STAP_A: u8 = 24;
/// A fragmentation unit.
pub const FU_A: u8 = 28;

/// The NAL unit type in a NAL unit header (or a STAP-A or FU-A indicator).
pub fn nal_type(header: u8) -> u8 {
    header & 0x1f
}

/// Whether `payload` begins a keyframe: it carries an SPS (senders put it first) or the start of
/// an IDR slice, alone, aggregated or as its first fragment.
pub fn starts_keyframe(payload: &[u8]) -> bool {
    let keyframe_unit = |header: u8| matches!(nal_type(header), NAL_IDR | NAL_SPS);
    match payload {
        [] => false,
        [indicator, fu_header, ..] if nal_type(*indicator) == FU_A => {
            fu_header & 0x80 != 0 && keyframe_unit(*fu_header)
        }
        [indicator, aggregated @ ..] if nal_type(*indicator) == STAP_A => {
            let mut rest = aggregated;
            while let [high, low, units @ ..] = rest {
                let size = usize::from(u16::from_be_bytes([*high, *low]));
                let Some(unit) = units.get(..size) else { return false };
                if unit.first().is_some_and(|header| keyframe_unit(*header)) {
                    return true;
                }
                rest = &units[size..];
            }
            false
        }
        [header, ..] => keyframe_unit(*header),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sps_and_idr_start_keyframes_alone_aggregated_or_as_a_first_fragment() {
        assert!(starts_keyframe(&[0x67, 0x42]), "an SPS");
        assert!(starts_keyframe(&[0x65, 0x88]), "an IDR slice");
        assert!(!starts_keyframe(&[0x41, 0x9a]), "a non-IDR slice");
        assert!(!starts_keyframe(&[0x68, 0xce]), "a PPS alone");
        // STAP-A: a PPS, then an SPS.
        assert!(starts_keyframe(&[0x78, 0x00, 0x02, 0x68, 0xce, 0x00, 0x02, 0x67, 0x42]));
        assert!(!starts_keyframe(&[0x78, 0x00, 0x02, 0x68, 0xce]), "only a PPS aggregated");
        assert!(!starts_keyframe(&[0x78, 0x00, 0x09, 0x67]), "a size past the end");
        // FU-A: indicator, header with S and type 5.
        assert!(starts_keyframe(&[0x7c, 0x85, 0x88]));
        assert!(!starts_keyframe(&[0x7c, 0x05, 0x88]), "a middle fragment");
        assert!(!starts_keyframe(&[0x7c, 0x81, 0x88]), "a non-IDR first fragment");
        assert!(!starts_keyframe(&[0x7c]), "a cut-off FU-A");
        assert!(!starts_keyframe(&[]));
    }
}
