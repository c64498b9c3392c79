//! VP8 frames larger than one MTU are split over several RTP packets (RFC 7741). The muxer wants
//! whole frames, the keyframe flag, and the picture size of keyframes (WebM needs it before the
//! first block), so this module strips the payload descriptors, reassembles frames, and drops any
//! frame missing a packet rather than emitting it partial.

use confab_payload::vp8::{Vp8Descriptor, keyframe_dimensions};

use super::{Frame, FrameData, PayloadError, RtpPacket};

#[derive(Debug)]
struct Partial {
    rtp_timestamp: u64,
    next_sequence: u64,
    data: Vec<u8>,
}

/// Reassembles VP8 frames from packets released in sequence order.
#[derive(Debug, Default)]
pub struct Vp8Depacketizer {
    partial: Option<Partial>,
}

impl Vp8Depacketizer {
    /// Takes the next packet (`sequence` and `rtp_timestamp` extended) and returns a frame when
    /// this packet completes one. Frames missing a packet are dropped silently (the reorder buffer
    /// reports the loss); a malformed payload drops the frame in progress and is an error.
    pub fn push(
        &mut self,
        sequence: u64,
        rtp_timestamp: u64,
        packet: &RtpPacket,
    ) -> Result<Option<Frame>, PayloadError> {
        if packet.payload.is_empty() {
            // Padding-only packet: it consumes a sequence number but carries nothing.
            if let Some(partial) = self.partial.as_mut().filter(|p| p.next_sequence == sequence) {
                partial.next_sequence += 1;
            }
            return Ok(None);
        }
        let descriptor = match Vp8Descriptor::parse(&packet.payload) {
            Ok(descriptor) => descriptor,
            Err(e) => {
                self.partial = None;
                return Err(e);
            }
        };
        let body = packet.payload.get(descriptor.len..).unwrap_or_default();

        if descriptor.start_of_partition && descriptor.partition_index == 0 {
            self.partial = Some(Partial { rtp_timestamp, next_sequence: sequence + 1, data: body.to_vec() });
        } else {
            match self.partial.as_mut() {
                Some(p) if p.rtp_timestamp == rtp_timestamp && p.next_sequence == sequence => {
                    p.data.extend_from_slice(body);
                    p.next_sequence += 1;
                }
                _ => {
                    self.partial = None;
                    return Ok(None);
                }
            }
        }

        if !packet.marker {
            return Ok(None);
        }
        let Some(Partial { rtp_timestamp, data, .. }) = self.partial.take() else { return Ok(None) };
        let Some(&tag) = data.first() else { return Err(PayloadError::Invalid("empty VP8 frame")) };
        let keyframe = tag & 0x01 == 0;
        let dimensions = if keyframe {
            Some(keyframe_dimensions(&data).ok_or(PayloadError::Invalid("VP8 keyframe header"))?)
        } else {
            None
        };
        Ok(Some(Frame { data: FrameData::Whole(data), keyframe, rtp_timestamp, dimensions }))
    }

    /// Forgets the frame in progress (after a loss or a stream change).
    pub fn reset(&mut self) {
        self.partial = None;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::testing::{Rng, packet};

    /// A real VP8 keyframe header for a `width`×`height` picture with the given scaling bits.
    pub fn keyframe_header(width: u16, height: u16, scale: u8) -> Vec<u8> {
        let first_partition_size: u32 = 1234;
        // Frame tag: key_frame = 0, version 0, show_frame = 1, 19-bit first partition size.
        let tag = (first_partition_size << 5) | (1 << 4);
        let mut h = tag.to_le_bytes()[..3].to_vec();
        h.extend_from_slice(&[0x9d, 0x01, 0x2a]);
        h.extend_from_slice(&(width | u16::from(scale) << 14).to_le_bytes());
        h.extend_from_slice(&(height | u16::from(scale) << 14).to_le_bytes());
        h
    }

    /// Descriptor with X=1, I=1 and a 15-bit PictureID, then `body`.
    pub fn vp8_payload(start: bool, picture_id: u16, body: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80 | if start { 0x10 } else { 0 }, 0x80, 0x80 | (picture_id >> 8) as u8, picture_id as u8];
        p.extend_from_slice(body);
        p
    }

    const DELTA: [u8; 4] = [0x01, 0xaa, 0xbb, 0xcc];

    #[test]
    fn a_keyframe_split_over_three_packets_is_reassembled() {
        let mut d = Vp8Depacketizer::default();
        let header = keyframe_header(320, 240, 0);
        let parts: [&[u8]; 3] = [&header, &[1, 2, 3], &[4, 5]];
        let mut frames = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let p = packet(i as u16, 9000, i == 2, vp8_payload(i == 0, 77, part));
            frames.extend(d.push(10 + i as u64, 1 << 32 | 9000, &p).unwrap());
        }
        let expected: Vec<u8> = parts.concat();
        assert_eq!(
            frames,
            vec![Frame {
                data: FrameData::Whole(expected),
                keyframe: true,
                rtp_timestamp: 1 << 32 | 9000,
                dimensions: Some((320, 240))
            }]
        );
    }

    #[test]
    fn a_frame_missing_its_middle_packet_is_dropped_and_the_next_one_survives() {
        let mut d = Vp8Depacketizer::default();
        assert_eq!(d.push(1, 100, &packet(1, 100, false, vp8_payload(true, 1, &DELTA))), Ok(None));
        // sequence 2 lost
        assert_eq!(d.push(3, 100, &packet(3, 100, true, vp8_payload(false, 1, &[9]))), Ok(None));
        assert_eq!(d.push(4, 200, &packet(4, 200, false, vp8_payload(true, 2, &DELTA))), Ok(None));
        let frame = d.push(5, 200, &packet(5, 200, true, vp8_payload(false, 2, &[9]))).unwrap().unwrap();
        assert_eq!(
            (frame.data, frame.keyframe, frame.dimensions),
            (FrameData::Whole([&DELTA[..], &[9]].concat()), false, None)
        );
    }

    #[test]
    fn a_frame_without_its_first_packet_or_last_packet_is_dropped() {
        let mut d = Vp8Depacketizer::default();
        assert_eq!(d.push(2, 100, &packet(2, 100, true, vp8_payload(false, 1, &[9]))), Ok(None));
        // Frame at 200 loses its marker packet; frame at 300 is a single packet.
        assert_eq!(d.push(3, 200, &packet(3, 200, false, vp8_payload(true, 2, &DELTA))), Ok(None));
        let frame = d.push(5, 300, &packet(5, 300, true, vp8_payload(true, 3, &DELTA))).unwrap().unwrap();
        assert_eq!(frame.rtp_timestamp, 300);
        assert_eq!(frame.data, FrameData::Whole(DELTA.to_vec()));
    }

    #[test]
    fn a_keyframe_with_a_broken_header_is_an_error_not_a_frame() {
        let mut d = Vp8Depacketizer::default();
        let r = d.push(1, 100, &packet(1, 100, true, vp8_payload(true, 1, &[0x00, 0x00, 0x00, 0x12])));
        assert_eq!(r, Err(PayloadError::Invalid("VP8 keyframe header")));
    }

    #[test]
    fn random_and_truncated_payloads_never_panic() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let mut d = Vp8Depacketizer::default();
        let valid = vp8_payload(true, 300, &keyframe_header(64, 48, 0));
        for cut in 0..=valid.len() {
            let _ = Vp8Descriptor::parse(&valid[..cut]);
            let _ = d.push(cut as u64, 0, &packet(cut as u16, 0, true, valid[..cut].to_vec()));
        }
        for i in 0..20_000u64 {
            let payload = rng.bytes(24);
            let marker = rng.next_u64() & 1 == 0;
            let _ = d.push(i, i / 3, &packet(i as u16, (i / 3) as u32, marker, payload));
        }
    }
}
