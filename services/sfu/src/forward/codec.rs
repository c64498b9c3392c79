//! The video codecs the SFU forwards, and where their keyframes start: read from each packet's
//! payload header (`confab-payload`), since a subscriber may switch layers only there.

use confab_payload::{h264, vp8, vp9};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Vp8,
    Vp9,
    H264,
}

impl Codec {
    /// Whether this packet's `payload` is the first of a keyframe (never panics, whatever it holds).
    pub fn starts_keyframe(self, payload: &[u8]) -> bool {
        match self {
            Codec::Vp8 => vp8::starts_keyframe(payload),
            Codec::Vp9 => vp9::starts_keyframe(payload),
            Codec::H264 => h264::starts_keyframe(payload),
        }
    }

    /// The picture size a keyframe's first packet states, where the codec puts it there (VP8).
    pub fn keyframe_size(self, payload: &[u8]) -> Option<(u16, u16)> {
        match self {
            Codec::Vp8 => {
                let descriptor = vp8::Vp8Descriptor::parse(payload).ok()?;
                vp8::keyframe_dimensions(payload.get(descriptor.len..)?)
            }
            Codec::Vp9 | Codec::H264 => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn each_codec_reads_its_own_payload_header() {
        let vp8_keyframe = [0x10, 0x50, 0x9a, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
        assert!(Codec::Vp8.starts_keyframe(&vp8_keyframe));
        assert!(Codec::H264.starts_keyframe(&[0x65, 0x88]));
        assert!(Codec::Vp9.starts_keyframe(&[0x08, 0xee]));
        assert!(!Codec::H264.starts_keyframe(&vp8_keyframe[1..]), "a VP8 frame tag is no IDR");
        assert_eq!(Codec::Vp8.keyframe_size(&vp8_keyframe), Some((640, 480)));
    }

    proptest! {
        #[test]
        fn any_payload_is_read_without_panicking(payload in prop::collection::vec(any::<u8>(), 0..64)) {
            for codec in [Codec::Vp8, Codec::Vp9, Codec::H264] {
                codec.starts_keyframe(&payload);
                codec.keyframe_size(&payload);
            }
        }
    }
}
