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
    /// Its NAL units, without start codes or lengths, SPS and PPS in front of every keyframe.
    pub nal_units: Vec<Bytes>,
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

/// The NAL units of an access unit that retina wrote with 4-byte lengths (`Framing::FourByteLength`:
/// retina hands out an access unit as one buffer, and lengths, unlike start codes, say where each
/// unit ends without scanning its bytes). Slices of `access_unit`, not copies; a unit cut short
/// ends the list.
pub fn split_length_prefixed(access_unit: &Bytes) -> Vec<Bytes> {
    let mut units = Vec::new();
    let mut at = 0;
    while let Some(&[a, b, c, d]) = access_unit.get(at..at + 4) {
        let end = at + 4 + u32::from_be_bytes([a, b, c, d]) as usize;
        if end > access_unit.len() {
            break;
        }
        if end > at + 4 {
            units.push(access_unit.slice(at + 4..end));
        }
        at = end;
    }
    units
}

/// The `profile-level-id` (six hex digits: profile_idc, constraint flags, level_idc) of the SPS
/// among an access unit's NAL units, if it has one.
pub fn profile_level_id(nal_units: &[Bytes]) -> Option<String> {
    nal_units.iter().find_map(|unit| match unit[..] {
        [header, profile, constraints, level, ..] if header & 0x1f == 7 => {
            Some(format!("{profile:02x}{constraints:02x}{level:02x}"))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(units: &[&'static [u8]]) -> Vec<Bytes> {
        units.iter().map(|unit| Bytes::from_static(unit)).collect()
    }

    #[test]
    fn the_profile_level_id_comes_from_the_sps() {
        let keyframe = units(&[&[0x09, 0xf0], &[0x67, 0x64, 0x00, 0x1f, 0xac], &[0x68, 0xce], &[0x65, 0x88]]);
        assert_eq!(profile_level_id(&keyframe).as_deref(), Some("64001f"));
        assert_eq!(profile_level_id(&units(&[&[0x41, 0x9a, 0, 0, 0]])), None);
        assert_eq!(profile_level_id(&units(&[&[0x67, 0x42]])), None, "a truncated SPS");
    }

    #[test]
    fn length_prefixed_nal_units_are_split_at_their_lengths_whatever_bytes_they_hold() {
        // The IDR slice holds what would look like a start code.
        let access_unit = Bytes::from_static(&[
            0, 0, 0, 2, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0, 0, 0, 0, 0, 0, 0, 5, 0x65, 0, 0, 1, 0x84, 0, 0, 0, 9, 0x41,
        ]);
        assert_eq!(split_length_prefixed(&access_unit), units(&[&[0x67, 0x42], &[0x68], &[0x65, 0, 0, 1, 0x84]]));
        assert_eq!(split_length_prefixed(&Bytes::from_static(&[0, 0, 0])), [] as [Bytes; 0]);
    }

    #[test]
    fn g711_is_recognised_by_its_encoding_name() {
        assert_eq!(G711::from_encoding_name("PCMU"), Some(G711::Pcmu));
        assert_eq!(G711::from_encoding_name("pcma"), Some(G711::Pcma));
        assert_eq!(G711::from_encoding_name("mpeg4-generic"), None);
    }
}
