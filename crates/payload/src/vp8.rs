//! VP8 over RTP (RFC 7741): the payload descriptor in front of every packet's share of a frame,
//! and the keyframe header (RFC 6386 §9.1) that starts a keyframe.

use crate::PayloadError;

/// The fields of the VP8 payload descriptor that Confab reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// S: the packet starts a VP8 partition.
    pub start_of_partition: bool,
    /// PID: the partition index.
    pub partition_index: u8,
    /// PictureID, 7 or 15 bits, when present.
    pub picture_id: Option<PictureId>,
    /// TL0PICIDX, the running index of the base temporal layer's frames, when present.
    pub tl0_pic_idx: Option<u8>,
    /// N: the frame is not used as a reference by other frames.
    pub non_reference: bool,
    /// Length of the descriptor; the VP8 payload follows it.
    pub len: usize,
}

/// A PictureID as the descriptor carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PictureId {
    pub value: u16,
    /// M: 15 bits wide (else 7).
    pub wide: bool,
}

impl PictureId {
    /// The value `by` later, in the field's own width (it wraps at 2^7 or 2^15).
    pub fn plus(self, by: u16) -> u16 {
        self.value.wrapping_add(by) & if self.wide { 0x7fff } else { 0x7f }
    }
}

impl Vp8Descriptor {
    /// Parses the descriptor at the start of `payload`.
    pub fn parse(payload: &[u8]) -> Result<Self, PayloadError> {
        let mut bytes = payload.iter().copied();
        let mut next = || bytes.next().ok_or(PayloadError::Truncated);
        let first = next()?;
        let extended = first & 0x80 != 0;
        let mut descriptor = Vp8Descriptor {
            non_reference: first & 0x20 != 0,
            start_of_partition: first & 0x10 != 0,
            partition_index: first & 0x07,
            picture_id: None,
            tl0_pic_idx: None,
            len: 1,
        };
        if extended {
            let x = next()?;
            descriptor.len += 1;
            let (has_picture_id, has_tl0_pic_idx, has_tid, has_key_idx) =
                (x & 0x80 != 0, x & 0x40 != 0, x & 0x20 != 0, x & 0x10 != 0);
            if has_picture_id {
                let high = next()?;
                descriptor.len += 1;
                let wide = high & 0x80 != 0;
                let value = if wide {
                    descriptor.len += 1;
                    u16::from(high & 0x7f) << 8 | u16::from(next()?)
                } else {
                    u16::from(high)
                };
                descriptor.picture_id = Some(PictureId { value, wide });
            }
            if has_tl0_pic_idx {
                descriptor.tl0_pic_idx = Some(next()?);
                descriptor.len += 1;
            }
            if has_tid || has_key_idx {
                next()?;
                descriptor.len += 1;
            }
        }
        Ok(descriptor)
    }
}

/// Writes `picture_id` and `tl0_pic_idx` into the descriptor of `payload` (as parsed into
/// `descriptor`), each in the field's own width, where the descriptor has the field: what a
/// forwarder does so that the pictures of one layer, then another, read as one sequence.
pub fn rewrite_picture_ids(payload: &mut [u8], descriptor: &Vp8Descriptor, picture_id: u16, tl0_pic_idx: u8) {
    if payload.len() < descriptor.len {
        return; // parsed from another payload
    }
    // Both fields sit after the first two bytes (X set), the PictureID first.
    let mut at = 2;
    if let Some(PictureId { wide, .. }) = descriptor.picture_id {
        if wide {
            payload[at..at + 2].copy_from_slice(&(0x8000 | picture_id & 0x7fff).to_be_bytes());
            at += 2;
        } else {
            payload[at] = (picture_id & 0x7f) as u8;
            at += 1;
        }
    }
    if descriptor.tl0_pic_idx.is_some() {
        payload[at] = tl0_pic_idx;
    }
}

/// Reads `(width, height)` from a VP8 keyframe header (RFC 6386 §9.1): a 3-byte frame tag whose
/// lowest bit is 0, the start code `9d 01 2a`, then two little-endian 16-bit fields whose low 14
/// bits are the size (the top two bits are the scaling mode). `None` if `frame` is not a keyframe
/// or its header is malformed.
pub fn keyframe_dimensions(frame: &[u8]) -> Option<(u16, u16)> {
    match frame {
        [tag, _, _, 0x9d, 0x01, 0x2a, w0, w1, h0, h1, ..] if tag & 0x01 == 0 => {
            Some((u16::from_le_bytes([*w0, *w1]) & 0x3fff, u16::from_le_bytes([*h0, *h1]) & 0x3fff))
        }
        _ => None,
    }
}

/// Whether `payload` (descriptor included) is the first packet of a keyframe: the start of the
/// first partition, whose frame tag says key frame. A decoder can start from it.
pub fn starts_keyframe(payload: &[u8]) -> bool {
    let Ok(descriptor) = Vp8Descriptor::parse(payload) else { return false };
    descriptor.start_of_partition
        && descriptor.partition_index == 0
        && payload.get(descriptor.len).is_some_and(|tag| tag & 0x01 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keyframe header of `width`×`height` (frame tag: key frame, shown; start code; sizes).
    fn header(width: u16, height: u16) -> [u8; 10] {
        let ([w0, w1], [h0, h1]) = (width.to_le_bytes(), height.to_le_bytes());
        [0x50, 0x9a, 0x00, 0x9d, 0x01, 0x2a, w0, w1, h0, h1]
    }

    #[test]
    fn descriptor_with_all_extensions_is_parsed() {
        // X, N, S, PID=2; I L T K; 15-bit PictureID 0x1234; TL0PICIDX; TID/Y/KEYIDX.
        let d = Vp8Descriptor::parse(&[0xb2, 0xf0, 0x92, 0x34, 0x07, 0x40, 0xff]).unwrap();
        assert_eq!(
            d,
            Vp8Descriptor {
                start_of_partition: true,
                partition_index: 2,
                picture_id: Some(PictureId { value: 0x1234, wide: true }),
                tl0_pic_idx: Some(0x07),
                non_reference: true,
                len: 6,
            }
        );
        let d = Vp8Descriptor::parse(&[0x90, 0x80, 0x05, 0xff]).unwrap();
        assert_eq!((d.picture_id, d.tl0_pic_idx, d.len), (Some(PictureId { value: 5, wide: false }), None, 3));
        assert_eq!(Vp8Descriptor::parse(&[0x10, 0xff]).unwrap().len, 1);
        assert_eq!(Vp8Descriptor::parse(&[0x90, 0x80, 0x80]), Err(PayloadError::Truncated));
    }

    #[test]
    fn keyframe_dimensions_are_read_from_a_real_header() {
        assert_eq!(keyframe_dimensions(&header(640, 480)), Some((640, 480)));
        assert_eq!(
            keyframe_dimensions(&header(1920 | 3 << 14, 1080 | 3 << 14)),
            Some((1920, 1080)),
            "scale bits ignored"
        );
        assert_eq!(keyframe_dimensions(&header(16383, 1)), Some((16383, 1)));
        let mut not_key = header(640, 480);
        not_key[0] |= 1;
        assert_eq!(keyframe_dimensions(&not_key), None);
        let mut bad_start_code = header(640, 480);
        bad_start_code[4] = 0;
        assert_eq!(keyframe_dimensions(&bad_start_code), None);
        assert_eq!(keyframe_dimensions(&header(640, 480)[..9]), None);
    }

    #[test]
    fn picture_ids_are_rewritten_in_place_in_their_own_width() {
        // X; I L; 15-bit PictureID 0x1234; TL0PICIDX 7; then the frame.
        let mut wide = [0x90, 0xc0, 0x92, 0x34, 0x07, 0xee];
        let descriptor = Vp8Descriptor::parse(&wide).unwrap();
        rewrite_picture_ids(&mut wide, &descriptor, 0x7ffe, 200);
        assert_eq!(wide, [0x90, 0xc0, 0xff, 0xfe, 200, 0xee]);
        let reread = Vp8Descriptor::parse(&wide).unwrap();
        assert_eq!((reread.picture_id.map(|p| p.value), reread.tl0_pic_idx), (Some(0x7ffe), Some(200)));
        // 7-bit PictureID, no TL0PICIDX: the value wraps at 128.
        let mut narrow = [0x90, 0x80, 0x05, 0xee];
        let descriptor = Vp8Descriptor::parse(&narrow).unwrap();
        rewrite_picture_ids(&mut narrow, &descriptor, 130, 9);
        assert_eq!(narrow, [0x90, 0x80, 2, 0xee]);
        assert_eq!(descriptor.picture_id.unwrap().plus(126), 3);
        // No extension: nothing to write.
        let mut plain = [0x10, 0xee];
        let descriptor = Vp8Descriptor::parse(&plain).unwrap();
        rewrite_picture_ids(&mut plain, &descriptor, 1, 1);
        assert_eq!(plain, [0x10, 0xee]);
    }

    #[test]
    fn a_keyframe_starts_at_the_first_partition_of_a_keyframe_tag() {
        let with_descriptor = |first: u8, frame: &[u8]| [&[first][..], frame].concat();
        assert!(starts_keyframe(&with_descriptor(0x10, &header(640, 480))));
        let mut delta = header(640, 480);
        delta[0] |= 1;
        assert!(!starts_keyframe(&with_descriptor(0x10, &delta)), "a delta frame");
        assert!(!starts_keyframe(&with_descriptor(0x00, &header(640, 480))), "not the start of a partition");
        assert!(!starts_keyframe(&with_descriptor(0x11, &header(640, 480))), "partition 1");
        assert!(!starts_keyframe(&[0x10]), "no frame after the descriptor");
        assert!(!starts_keyframe(&[]), "nothing");
        // X, I with a 15-bit PictureID, then the frame.
        assert!(starts_keyframe(&[&[0x90, 0x80, 0x81, 0x23][..], &header(320, 180)].concat()));
    }
}
