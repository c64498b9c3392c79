//! VP9 pictures are split over RTP packets (RFC 9628), possibly as several spatial-layer frames
//! of one picture. The muxer wants whole pictures with the keyframe flag and, for keyframes, the
//! picture size, which VP9 senders put in the scalability structure (SS) of the payload
//! descriptor. This module parses the descriptor, reassembles pictures from the first packet (B)
//! to the marker bit, and drops any picture missing a packet rather than emitting it partial.

use confab_payload::vp9::Vp9Descriptor;

use super::{Frame, FrameData, PayloadError, RtpPacket};

#[derive(Debug)]
struct Partial {
    rtp_timestamp: u64,
    next_sequence: u64,
    data: Vec<u8>,
    keyframe: bool,
    /// Between a B packet and its E packet.
    inside_layer_frame: bool,
    highest_spatial_layer: u8,
    layer_resolutions: Vec<(u16, u16)>,
}

/// Reassembles VP9 pictures from packets released in sequence order.
#[derive(Debug, Default)]
pub struct Vp9Depacketizer {
    partial: Option<Partial>,
    /// A picture that lost a packet: its remaining packets are ignored.
    broken_timestamp: Option<u64>,
}

impl Vp9Depacketizer {
    /// Takes the next packet (`sequence` and `rtp_timestamp` extended) and returns a picture when
    /// this packet completes one. Pictures missing a packet are dropped silently (the reorder
    /// buffer reports the loss); a malformed payload drops the picture in progress and is an error.
    pub fn push(
        &mut self,
        sequence: u64,
        rtp_timestamp: u64,
        packet: &RtpPacket,
    ) -> Result<Option<Frame>, PayloadError> {
        if packet.payload.is_empty() {
            if let Some(partial) = self.partial.as_mut().filter(|p| p.next_sequence == sequence) {
                partial.next_sequence += 1;
            }
            return Ok(None);
        }
        let d = match Vp9Descriptor::parse(&packet.payload) {
            Ok(d) => d,
            Err(e) => {
                self.break_picture(rtp_timestamp);
                return Err(e);
            }
        };
        if self.broken_timestamp == Some(rtp_timestamp) {
            return Ok(None);
        }
        let body = packet.payload.get(d.len..).unwrap_or_default();
        let spatial_layer = d.layer.map_or(0, |(_, sid)| sid);

        let continues = self.partial.as_ref().is_some_and(|p| p.rtp_timestamp == rtp_timestamp);
        if !continues {
            if !d.begins_frame {
                self.break_picture(rtp_timestamp);
                return Ok(None);
            }
            self.partial = Some(Partial {
                rtp_timestamp,
                next_sequence: sequence,
                data: Vec::new(),
                keyframe: !d.inter_picture_predicted && !d.inter_layer_dependency,
                inside_layer_frame: false,
                highest_spatial_layer: spatial_layer,
                layer_resolutions: Vec::new(),
            });
        }
        let Some(p) = self.partial.as_mut() else { return Ok(None) };
        if p.next_sequence != sequence || p.inside_layer_frame == d.begins_frame {
            self.break_picture(rtp_timestamp);
            return Ok(None);
        }
        p.next_sequence += 1;
        p.data.extend_from_slice(body);
        p.inside_layer_frame = !d.ends_frame;
        p.highest_spatial_layer = p.highest_spatial_layer.max(spatial_layer);
        if !d.layer_resolutions.is_empty() {
            p.layer_resolutions = d.layer_resolutions;
        }

        if !packet.marker {
            return Ok(None);
        }
        let Some(p) = self.partial.take() else { return Ok(None) };
        if p.inside_layer_frame || p.data.is_empty() {
            return Ok(None);
        }
        let dimensions = match p.layer_resolutions.as_slice() {
            [] => None,
            layers if p.keyframe => layers.get(usize::from(p.highest_spatial_layer)).or(layers.last()).copied(),
            _ => None,
        };
        Ok(Some(Frame {
            data: FrameData::Whole(p.data),
            keyframe: p.keyframe,
            rtp_timestamp: p.rtp_timestamp,
            dimensions,
        }))
    }

    /// Forgets the picture in progress (after a loss or a stream change).
    pub fn reset(&mut self) {
        self.partial = None;
        self.broken_timestamp = None;
    }

    fn break_picture(&mut self, rtp_timestamp: u64) {
        self.partial = None;
        self.broken_timestamp = Some(rtp_timestamp);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::testing::{Rng, packet};

    use confab_payload::vp9::flags::*;

    /// A non-flexible descriptor with a 15-bit PictureID and no layer indices, then `body`.
    pub fn vp9_payload(flags: u8, ss: &[u8], body: &[u8]) -> Vec<u8> {
        let mut p = vec![flags | I, 0x81, 0x23];
        p.extend_from_slice(ss);
        p.extend_from_slice(body);
        p
    }

    /// An SS for one spatial layer of `width`×`height`, with no picture group.
    pub fn ss(width: u16, height: u16) -> Vec<u8> {
        let mut s = vec![0x10];
        s.extend_from_slice(&width.to_be_bytes());
        s.extend_from_slice(&height.to_be_bytes());
        s
    }

    #[test]
    fn a_keyframe_with_ss_spanning_two_packets_has_its_dimensions() {
        let mut d = Vp9Depacketizer::default();
        assert_eq!(d.push(1, 100, &packet(1, 100, false, vp9_payload(B | V, &ss(1280, 720), &[1, 2]))), Ok(None));
        let f = d.push(2, 100, &packet(2, 100, true, vp9_payload(E, &[], &[3]))).unwrap().unwrap();
        assert_eq!(
            f,
            Frame {
                data: FrameData::Whole(vec![1, 2, 3]),
                keyframe: true,
                rtp_timestamp: 100,
                dimensions: Some((1280, 720))
            }
        );
    }

    #[test]
    fn a_keyframe_without_ss_and_a_delta_frame_have_no_dimensions() {
        let mut d = Vp9Depacketizer::default();
        let f = d.push(1, 100, &packet(1, 100, true, vp9_payload(B | E, &[], &[7]))).unwrap().unwrap();
        assert_eq!((f.keyframe, f.dimensions), (true, None));
        let f = d.push(2, 200, &packet(2, 200, true, vp9_payload(P | B | E, &[], &[8]))).unwrap().unwrap();
        assert_eq!((f.keyframe, f.dimensions, f.data), (false, None, FrameData::Whole(vec![8])));
    }

    #[test]
    fn two_spatial_layers_form_one_picture_sized_by_the_top_layer() {
        let mut d = Vp9Depacketizer::default();
        let two_layers = [0x30, 0x01, 0x40, 0x00, 0xb4, 0x02, 0x80, 0x01, 0x68];
        let base = [L | B | E | V, 0x00, 0x00];
        let upper = [L | B | E, 0b0000_0011, 0x00];
        assert_eq!(d.push(1, 100, &packet(1, 100, false, [&base[..], &two_layers, &[1]].concat())), Ok(None));
        let f = d.push(2, 100, &packet(2, 100, true, [&upper[..], &[2]].concat())).unwrap().unwrap();
        assert_eq!((f.data, f.keyframe, f.dimensions), (FrameData::Whole(vec![1, 2]), true, Some((640, 360))));
    }

    #[test]
    fn pictures_missing_a_packet_or_their_start_are_dropped() {
        let mut d = Vp9Depacketizer::default();
        // Middle packet (sequence 2) lost.
        assert_eq!(d.push(1, 100, &packet(1, 100, false, vp9_payload(P | B, &[], &[1]))), Ok(None));
        assert_eq!(d.push(3, 100, &packet(3, 100, true, vp9_payload(P | E, &[], &[3]))), Ok(None));
        // First packet (sequence 4) lost.
        assert_eq!(d.push(5, 200, &packet(5, 200, true, vp9_payload(P | E, &[], &[5]))), Ok(None));
        // E never came before the marker.
        assert_eq!(d.push(6, 300, &packet(6, 300, true, vp9_payload(P | B, &[], &[6]))), Ok(None));
        let f = d.push(7, 400, &packet(7, 400, true, vp9_payload(P | B | E, &[], &[7]))).unwrap().unwrap();
        assert_eq!(f.rtp_timestamp, 400);
    }

    #[test]
    fn random_and_truncated_payloads_never_panic() {
        let mut rng = Rng(0x5eed_9999_0000_0002);
        let mut d = Vp9Depacketizer::default();
        let valid = vp9_payload(B | E | V | L | F | P, &ss(640, 480), &[1, 2, 3]);
        for cut in 0..=valid.len() {
            let _ = Vp9Descriptor::parse(&valid[..cut]);
            let _ = d.push(cut as u64, 0, &packet(cut as u16, 0, true, valid[..cut].to_vec()));
        }
        for i in 0..20_000u64 {
            let payload = rng.bytes(40);
            let marker = rng.next_u64() & 1 == 0;
            let _ = d.push(i, i / 3, &packet(i as u16, (i / 3) as u32, marker, payload));
        }
    }
}
