//! Opus over RTP (RFC 7587) carries exactly one Opus packet per RTP packet, and G.711 (PCMU,
//! PCMA; RFC 3551) a run of 8 kHz samples, with no payload descriptor, so "depacketizing" is a
//! pass-through. It still lives behind the same shape as the video depacketizers so the track
//! pipeline treats every codec alike.

use super::{Frame, FrameData, RtpPacket};

/// Turns an audio RTP packet into a frame; `None` for an empty (padding-only) payload.
pub fn depacketize(rtp_timestamp: u64, packet: &RtpPacket) -> Option<Frame> {
    if packet.payload.is_empty() {
        return None;
    }
    Some(Frame { data: FrameData::Whole(packet.payload.clone()), keyframe: true, rtp_timestamp, dimensions: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::testing::{Rng, packet};

    #[test]
    fn each_packet_is_one_keyframe_with_its_unwrapped_timestamp() {
        let f = depacketize(1 << 32 | 960, &packet(3, 960, false, vec![0xfc, 1, 2])).unwrap();
        assert_eq!(
            f,
            Frame {
                data: FrameData::Whole(vec![0xfc, 1, 2]),
                keyframe: true,
                rtp_timestamp: 1 << 32 | 960,
                dimensions: None
            }
        );
        assert_eq!(depacketize(0, &packet(4, 1920, false, vec![])), None);
    }

    #[test]
    fn random_payloads_pass_through_unchanged() {
        let mut rng = Rng(0x0b05_0000_0000_0003);
        for i in 0..1000u64 {
            let payload = rng.bytes(64);
            let got = depacketize(i, &packet(i as u16, i as u32, false, payload.clone()));
            assert_eq!(got.map(|f| f.data), (!payload.is_empty()).then_some(FrameData::Whole(payload)));
        }
    }
}
