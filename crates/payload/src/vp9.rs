//! VP9 over RTP (RFC 9628): the payload descriptor in front of every packet, with the picture's
//! layer indices and, on keyframes, the scalability structure that gives each spatial layer's size.

use crate::PayloadError;

/// The bits of the descriptor's first byte.
pub mod flags {
    /// I: a PictureID follows.
    pub const I: u8 = 0x80;
    /// P: inter-picture predicted (not a keyframe).
    pub const P: u8 = 0x40;
    /// L: layer indices follow.
    pub const L: u8 = 0x20;
    /// F: flexible mode.
    pub const F: u8 = 0x10;
    /// B: the packet begins a (layer) frame.
    pub const B: u8 = 0x08;
    /// E: the packet ends a (layer) frame.
    pub const E: u8 = 0x04;
    /// V: a scalability structure follows.
    pub const V: u8 = 0x02;
    /// Z: not used for inter-layer prediction.
    pub const Z: u8 = 0x01;
}

/// The fields of the VP9 payload descriptor that Confab reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vp9Descriptor {
    /// P: the frame references an earlier picture.
    pub inter_picture_predicted: bool,
    /// B: the packet starts a (layer) frame.
    pub begins_frame: bool,
    /// E: the packet ends a (layer) frame.
    pub ends_frame: bool,
    /// Z: the frame is not used for inter-layer prediction.
    pub not_reference_for_upper_layer: bool,
    /// PictureID, 7 or 15 bits, when present.
    pub picture_id: Option<u16>,
    /// (TID, SID) when the layer indices are present.
    pub layer: Option<(u8, u8)>,
    /// D: the spatial layer frame depends on the lower spatial layer of the same picture.
    pub inter_layer_dependency: bool,
    /// Flexible mode reference differences (at most 3).
    pub p_diffs: Vec<u8>,
    /// `(width, height)` of each spatial layer, from the SS when it carries them.
    pub layer_resolutions: Vec<(u16, u16)>,
    /// Length of the descriptor; the VP9 payload follows it.
    pub len: usize,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8, PayloadError> {
        let b = *self.bytes.get(self.pos).ok_or(PayloadError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, PayloadError> {
        Ok(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }
}

impl Vp9Descriptor {
    /// Parses the descriptor at the start of `payload`.
    pub fn parse(payload: &[u8]) -> Result<Self, PayloadError> {
        let mut r = Reader { bytes: payload, pos: 0 };
        let first = r.u8()?;
        let set = |flag: u8| first & flag != 0;
        let (has_picture_id, has_layers, flexible, has_ss) =
            (set(flags::I), set(flags::L), set(flags::F), set(flags::V));
        let mut d = Vp9Descriptor {
            inter_picture_predicted: set(flags::P),
            begins_frame: set(flags::B),
            ends_frame: set(flags::E),
            not_reference_for_upper_layer: set(flags::Z),
            ..Default::default()
        };
        if has_picture_id {
            let high = r.u8()?;
            d.picture_id =
                Some(if high & 0x80 != 0 { u16::from(high & 0x7f) << 8 | u16::from(r.u8()?) } else { u16::from(high) });
        }
        if has_layers {
            let l = r.u8()?;
            d.layer = Some((l >> 5, (l >> 1) & 0x07));
            d.inter_layer_dependency = l & 0x01 != 0;
            if !flexible {
                r.u8()?; // TL0PICIDX
            }
        }
        if flexible && d.inter_picture_predicted {
            loop {
                let p = r.u8()?;
                if d.p_diffs.len() == 3 {
                    return Err(PayloadError::Invalid("more than 3 VP9 P_DIFFs"));
                }
                d.p_diffs.push(p >> 1);
                if p & 0x01 == 0 {
                    break;
                }
            }
        }
        if has_ss {
            let ss = r.u8()?;
            let spatial_layers = (ss >> 5) + 1;
            if ss & 0x10 != 0 {
                for _ in 0..spatial_layers {
                    let (width, height) = (r.u16()?, r.u16()?);
                    d.layer_resolutions.push((width, height));
                }
            }
            if ss & 0x08 != 0 {
                let groups = r.u8()?;
                for _ in 0..groups {
                    let references = (r.u8()? >> 2) & 0x03;
                    for _ in 0..references {
                        r.u8()?;
                    }
                }
            }
        }
        d.len = r.pos;
        Ok(d)
    }
}

/// Whether `payload` (descriptor included) begins a keyframe a decoder can start from: the first
/// packet of a picture's base spatial layer, not predicted from an earlier picture.
pub fn starts_keyframe(payload: &[u8]) -> bool {
    Vp9Descriptor::parse(payload).is_ok_and(|descriptor| {
        descriptor.begins_frame
            && !descriptor.inter_picture_predicted
            && descriptor.layer.is_none_or(|(_, spatial)| spatial == 0)
    })
}

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::*;

    #[test]
    fn descriptor_with_layers_flexible_p_diffs_and_ss_is_parsed() {
        // I P L F B - V -; PictureID 7 bit; TID=2 U=1 SID=1 D=1; P_DIFFs 1 (N=1), 3 (N=0);
        // SS: N_S=1, Y=1, G=1; 640x360, 1280x720; N_G=1, one group with R=2.
        let payload = [
            I | P | L | F | B | V,
            0x05,
            0b0101_0011,
            0x03,
            0x06,
            0x38,
            0x02,
            0x80,
            0x01,
            0x68,
            0x05,
            0x00,
            0x02,
            0xd0,
            0x01,
            0x08,
            0x01,
            0x02,
            0xee,
        ];
        let d = Vp9Descriptor::parse(&payload).unwrap();
        assert_eq!(d.picture_id, Some(5));
        assert_eq!(d.layer, Some((2, 1)));
        assert!(d.inter_layer_dependency && d.inter_picture_predicted && d.begins_frame && !d.ends_frame);
        assert_eq!(d.p_diffs, vec![1, 3]);
        assert_eq!(d.layer_resolutions, vec![(640, 360), (1280, 720)]);
        assert_eq!(d.len, payload.len() - 1);
    }

    #[test]
    fn non_flexible_layer_indices_carry_tl0picidx_and_four_p_diffs_are_rejected() {
        let d = Vp9Descriptor::parse(&[L | B | E, 0b0010_0000, 0x17, 0xaa]).unwrap();
        assert_eq!((d.layer, d.len), (Some((1, 0)), 3));
        assert_eq!(
            Vp9Descriptor::parse(&[P | F | B, 0x03, 0x03, 0x03, 0x02]),
            Err(PayloadError::Invalid("more than 3 VP9 P_DIFFs"))
        );
        assert_eq!(Vp9Descriptor::parse(&[V, 0x10, 0x01]), Err(PayloadError::Truncated));
    }

    #[test]
    fn a_keyframe_starts_at_the_base_layer_of_an_unpredicted_picture() {
        assert!(starts_keyframe(&[B, 0xee]));
        assert!(!starts_keyframe(&[P | B, 0xee]), "predicted");
        assert!(!starts_keyframe(&[E, 0xee]), "not its first packet");
        assert!(starts_keyframe(&[L | B, 0b0000_0000, 0x17, 0xee]), "spatial layer 0");
        assert!(!starts_keyframe(&[L | B, 0b0000_0010, 0x17, 0xee]), "spatial layer 1");
        assert!(!starts_keyframe(&[]));
    }
}
