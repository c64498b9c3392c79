//! VP8 pictures carry numbers of their own in the payload descriptor: the PictureID (7 or 15
//! bits) and TL0PICIDX (the base temporal layer's frame index). Each simulcast layer counts its
//! pictures on its own, so a subscriber moved to another layer would see them jump, and a decoder
//! that tracks references by PictureID (libwebrtc's does) would wait for pictures that never
//! come. Like sequence numbers ([`super::Rewriter`]), they are offset per stretch of a layer so
//! that they continue where the last stretch left off.

use confab_payload::vp8::{PictureId, Vp8Descriptor, rewrite_picture_ids};

/// Half the 15-bit PictureID space: a PictureID less than this ahead of another is newer.
const HALF: u16 = 1 << 14;

/// One subscriber's VP8 picture numbering, for one track.
#[derive(Debug, Default)]
pub struct Vp8PictureIds {
    /// What to add to the layer's PictureID and TL0PICIDX in the current stretch.
    offsets: (u16, u8),
    /// The newest PictureID and TL0PICIDX sent.
    newest: Option<(u16, u8)>,
}

/// New numbers for a forwarded packet's descriptor, to write into the subscriber's copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renumbering {
    descriptor: Vp8Descriptor,
    picture_id: u16,
    tl0_pic_idx: u8,
}

impl Renumbering {
    /// Writes the numbers into `payload`, the packet's payload (or a copy of it).
    pub fn apply(&self, payload: &mut [u8]) {
        rewrite_picture_ids(payload, &self.descriptor, self.picture_id, self.tl0_pic_idx);
    }
}

impl Vp8PictureIds {
    /// The numbers a forwarded packet's picture gets in this subscriber's stream;
    /// `starts_segment` as in [`super::Forwarded`]. `None` when they are the packet's own (no
    /// copy to make: a subscriber that never changed layers) or it has no PictureID.
    pub fn renumber(&mut self, payload: &[u8], starts_segment: bool) -> Option<Renumbering> {
        let descriptor = Vp8Descriptor::parse(payload).ok()?;
        let picture_id = descriptor.picture_id?;
        let tl0_pic_idx = descriptor.tl0_pic_idx.unwrap_or_default();
        if starts_segment {
            let (next_picture_id, next_tl0_pic_idx) = match self.newest {
                Some((newest_picture_id, newest_tl0)) => {
                    (PictureId { value: newest_picture_id, wide: true }.plus(1), newest_tl0.wrapping_add(1))
                }
                None => (picture_id.value, tl0_pic_idx),
            };
            self.offsets = (next_picture_id.wrapping_sub(picture_id.value), next_tl0_pic_idx.wrapping_sub(tl0_pic_idx));
        }
        let out = (picture_id.plus(self.offsets.0), tl0_pic_idx.wrapping_add(self.offsets.1));
        let newer = self.newest.is_none_or(|(newest, _)| {
            let ahead = out.0.wrapping_sub(newest) & 0x7fff;
            ahead != 0 && ahead < HALF
        });
        if newer {
            self.newest = Some(out);
        }
        let unchanged = out == (picture_id.value, tl0_pic_idx);
        (!unchanged).then_some(Renumbering { descriptor, picture_id: out.0, tl0_pic_idx: out.1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor with a 15-bit PictureID and a TL0PICIDX, and one byte of frame.
    fn payload(picture_id: u16, tl0_pic_idx: u8) -> Vec<u8> {
        let [high, low] = (0x8000 | picture_id).to_be_bytes();
        vec![0x90, 0xc0, high, low, tl0_pic_idx, 0xee]
    }

    fn ids(payload: &[u8]) -> (u16, u8) {
        let descriptor = Vp8Descriptor::parse(payload).unwrap();
        (descriptor.picture_id.unwrap().value, descriptor.tl0_pic_idx.unwrap())
    }

    fn forward(numbering: &mut Vp8PictureIds, picture_id: u16, tl0: u8, starts_segment: bool) -> (u16, u8) {
        let mut packet = payload(picture_id, tl0);
        if let Some(renumbering) = numbering.renumber(&packet, starts_segment) {
            renumbering.apply(&mut packet);
        }
        ids(&packet)
    }

    #[test]
    fn the_first_layer_keeps_its_numbers_and_the_next_continues_them() {
        let mut numbering = Vp8PictureIds::default();
        assert_eq!(forward(&mut numbering, 1000, 50, true), (1000, 50));
        assert_eq!(forward(&mut numbering, 1001, 50, false), (1001, 50));
        assert_eq!(forward(&mut numbering, 1002, 51, false), (1002, 51));
        // Layer 2 counts from elsewhere; its keyframe becomes the next picture.
        assert_eq!(forward(&mut numbering, 20_000, 3, true), (1003, 52));
        assert_eq!(forward(&mut numbering, 20_001, 3, false), (1004, 52));
        assert_eq!(forward(&mut numbering, 20_000, 3, false), (1003, 52), "a late packet keeps its picture");
        assert_eq!(forward(&mut numbering, 7, 200, true), (1005, 53), "a late packet does not move the newest");
    }

    #[test]
    fn numbers_wrap_in_their_fields() {
        let mut numbering = Vp8PictureIds::default();
        forward(&mut numbering, 0x7fff, 255, true);
        assert_eq!(forward(&mut numbering, 5, 9, true), (0, 0));
        assert_eq!(forward(&mut numbering, 6, 10, false), (1, 1));
    }

    #[test]
    fn a_payload_without_a_picture_id_or_that_does_not_parse_is_left_alone() {
        let mut numbering = Vp8PictureIds::default();
        for mut packet in [vec![0x10, 0xee], vec![0x90], vec![]] {
            let before = packet.clone();
            if let Some(renumbering) = numbering.renumber(&packet, true) {
                renumbering.apply(&mut packet);
            }
            assert_eq!(packet, before);
        }
    }
}
