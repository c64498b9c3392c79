//! The media a pulled camera produces, for whatever forwards it into the room (the camera's
//! WebRTC peer): each camera has a broadcast channel of [`MediaFrame`]s. Slow receivers lose the
//! oldest frames (`RecvError::Lagged`) and should wait for the next keyframe.

use std::time::Duration;

use bytes::Bytes;
pub use confab_call::camera_profile::G711;

/// How many frames a receiver may fall behind before it loses some.
pub const CHANNEL_CAPACITY: usize = 256;

#[derive(Debug, Clone)]
pub enum MediaFrame {
    Video(VideoFrame),
    Audio(AudioFrame),
}

/// One H.264 access unit.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    /// Annex B (start codes), with SPS and PPS in front of every keyframe, as WebRTC's H.264
    /// packetizer takes it.
    pub annex_b: Bytes,
    /// An IDR picture: a receiver can start decoding here.
    pub keyframe: bool,
    /// Presentation time from the start of the session.
    pub pts: Duration,
}

/// One G.711 frame.
#[derive(Debug, Clone)]
pub struct AudioFrame {
    pub codec: G711,
    pub payload: Bytes,
    pub pts: Duration,
    /// How long the frame plays (8 kHz, one byte per sample).
    pub duration: Duration,
}

/// The types of the NAL units of an Annex B access unit, in order (1 = non-IDR slice,
/// 5 = IDR slice, 7 = SPS, 8 = PPS, 9 = access unit delimiter).
pub fn nal_unit_types(annex_b: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 <= annex_b.len() {
        if annex_b[i..i + 3] == [0, 0, 1] {
            if let Some(header) = annex_b.get(i + 3) {
                types.push(header & 0x1f);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

/// The `profile-level-id` (six hex digits: profile_idc, constraint flags, level_idc) of the SPS
/// in an Annex B access unit, if it has one.
pub fn profile_level_id(annex_b: &[u8]) -> Option<String> {
    let mut i = 0;
    while i + 3 <= annex_b.len() {
        if annex_b[i..i + 3] == [0, 0, 1] {
            if let Some(&[header, profile, constraints, level]) = annex_b.get(i + 3..i + 7)
                && header & 0x1f == 7
            {
                return Some(format!("{profile:02x}{constraints:02x}{level:02x}"));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_level_id_comes_from_the_sps() {
        let unit = [0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f, 0xac, 0, 0, 1, 0x68, 0xce];
        assert_eq!(profile_level_id(&unit).as_deref(), Some("64001f"));
        assert_eq!(profile_level_id(&[0, 0, 1, 0x41, 0x9a, 0, 0, 0]), None);
        assert_eq!(profile_level_id(&[0, 0, 1, 0x67, 0x42]), None, "a truncated SPS");
    }

    #[test]
    fn nal_unit_types_are_read_after_three_and_four_byte_start_codes() {
        let unit = [0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88, 0x84];
        assert_eq!(nal_unit_types(&unit), [7, 8, 5]);
        assert_eq!(nal_unit_types(&[0, 0, 1, 0x41, 0x9a]), [1]);
        assert_eq!(nal_unit_types(&[0x41, 0x9a, 0, 0]), [] as [u8; 0]);
    }

    #[test]
    fn g711_is_recognised_by_its_encoding_name() {
        assert_eq!(G711::from_encoding_name("PCMU"), Some(G711::Pcmu));
        assert_eq!(G711::from_encoding_name("pcma"), Some(G711::Pcma));
        assert_eq!(G711::from_encoding_name("mpeg4-generic"), None);
    }
}
