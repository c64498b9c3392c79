//! One participant track composes the pieces in order: reorder buffer → timestamp unwrapping →
//! depacketizer → keyframe gating. Keeping this composition apart from the participant (which adds
//! the shared timeline) lets each track be tested alone with synthetic packets and a fake clock.

use std::time::{Duration, Instant};

use super::h264::H264Depacketizer;
use super::keyframes::KeyframePolicy;
use super::reorder::{Released, ReorderBuffer};
use super::unwrap::TimestampUnwrapper;
use super::vp8::Vp8Depacketizer;
use super::vp9::Vp9Depacketizer;
use super::{Frame, PayloadError, RtpPacket, passthrough};

/// The codecs the recorder accepts: participants' VP8, VP9 and Opus (written to WebM), cameras'
/// H.264 and G.711 (written to Matroska: WebM carries no H.264).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Vp8,
    Vp9,
    Opus,
    H264,
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

impl Codec {
    /// RTP clock rate in Hz.
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Vp8 | Codec::Vp9 | Codec::H264 => 90_000,
            Codec::Opus => 48_000,
            Codec::Pcmu | Codec::Pcma => 8_000,
        }
    }

    pub fn is_video(self) -> bool {
        matches!(self, Codec::Vp8 | Codec::Vp9 | Codec::H264)
    }
}

/// Tuning of the pipeline; the defaults suit a recorder on a LAN or the public internet.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Longest wait for a missing packet once a later one arrived.
    pub reorder_max_wait: Duration,
    /// Most packets held while waiting for a missing one.
    pub reorder_max_packets: usize,
    /// Fewest time between two keyframe requests.
    pub keyframe_request_min_interval: Duration,
    /// Ask for a keyframe when none arrived for this long.
    pub keyframe_max_interval: Duration,
    /// Media time frames are held so that all tracks reach the muxer in timestamp order.
    pub interleave_window: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            reorder_max_wait: Duration::from_millis(100),
            reorder_max_packets: 64,
            keyframe_request_min_interval: Duration::from_millis(500),
            keyframe_max_interval: Duration::from_secs(4),
            interleave_window: Duration::from_millis(300),
        }
    }
}

/// What one track reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackEvent {
    /// A complete frame that may be muxed.
    Frame(Frame),
    /// Send an RTCP PLI for `ssrc`.
    KeyframeNeeded {
        ssrc: u32,
    },
    /// Packets given up on.
    Loss {
        packets: u64,
    },
    SsrcChanged {
        old: u32,
        new: u32,
    },
    /// A keyframe with a new picture size (also the first size seen).
    ResolutionChanged {
        width: u16,
        height: u16,
    },
    /// A payload that could not be parsed was dropped.
    Malformed(PayloadError),
}

#[derive(Debug)]
enum Depacketizer {
    Vp8(Vp8Depacketizer),
    Vp9(Vp9Depacketizer),
    H264(H264Depacketizer),
    /// One audio frame per packet: Opus and G.711.
    Passthrough,
}

impl Depacketizer {
    fn new(codec: Codec) -> Self {
        match codec {
            Codec::Vp8 => Depacketizer::Vp8(Vp8Depacketizer::default()),
            Codec::Vp9 => Depacketizer::Vp9(Vp9Depacketizer::default()),
            Codec::H264 => Depacketizer::H264(H264Depacketizer::default()),
            Codec::Opus | Codec::Pcmu | Codec::Pcma => Depacketizer::Passthrough,
        }
    }

    fn push(&mut self, sequence: u64, rtp_timestamp: u64, packet: &RtpPacket) -> Result<Option<Frame>, PayloadError> {
        match self {
            Depacketizer::Vp8(d) => d.push(sequence, rtp_timestamp, packet),
            Depacketizer::Vp9(d) => d.push(sequence, rtp_timestamp, packet),
            Depacketizer::H264(d) => d.push(sequence, rtp_timestamp, packet),
            Depacketizer::Passthrough => Ok(passthrough::depacketize(rtp_timestamp, packet)),
        }
    }

    fn reset(&mut self) {
        match self {
            Depacketizer::Vp8(d) => d.reset(),
            Depacketizer::Vp9(d) => d.reset(),
            Depacketizer::H264(d) => d.reset(),
            Depacketizer::Passthrough => {}
        }
    }
}

/// The pipeline of one track: packets in, frames and events out.
#[derive(Debug)]
pub struct TrackPipeline {
    reorder: ReorderBuffer,
    timestamps: TimestampUnwrapper,
    depacketizer: Depacketizer,
    /// Video only.
    keyframes: Option<KeyframePolicy>,
    ssrc: Option<u32>,
    dimensions: Option<(u16, u16)>,
}

impl TrackPipeline {
    pub fn new(codec: Codec, config: &PipelineConfig) -> Self {
        Self {
            reorder: ReorderBuffer::new(config.reorder_max_wait, config.reorder_max_packets),
            timestamps: TimestampUnwrapper::default(),
            depacketizer: Depacketizer::new(codec),
            keyframes: codec
                .is_video()
                .then(|| KeyframePolicy::new(config.keyframe_request_min_interval, config.keyframe_max_interval)),
            ssrc: None,
            dimensions: None,
        }
    }

    /// Takes one packet received at `now`.
    pub fn push(&mut self, packet: RtpPacket, now: Instant) -> Vec<TrackEvent> {
        let released = self.reorder.push(packet, now);
        self.process(released, now)
    }

    /// Does what fell due by `now`: gives up on late packets, asks for keyframes.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<TrackEvent> {
        let released = self.reorder.handle_timeout(now);
        self.process(released, now)
    }

    /// When [`Self::handle_timeout`] should be called next, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let keyframe_request = self.keyframes.as_ref().filter(|_| self.ssrc.is_some()).and_then(|k| k.next_request());
        [self.reorder.deadline(), keyframe_request].into_iter().flatten().min()
    }

    /// Releases everything held, declaring the gaps lost (end of the track).
    pub fn flush(&mut self, now: Instant) -> Vec<TrackEvent> {
        let released = self.reorder.flush();
        self.process(released, now)
    }

    /// Extends an RTP timestamp from a sender report like the frames' ones; `None` before the
    /// first packet.
    pub fn extend_rtp_timestamp(&self, rtp_timestamp: u32) -> Option<u64> {
        self.timestamps.peek(rtp_timestamp)
    }

    fn process(&mut self, released: Vec<Released>, now: Instant) -> Vec<TrackEvent> {
        let mut out = Vec::new();
        for r in released {
            match r {
                Released::Packet { sequence, packet } => {
                    self.ssrc = Some(packet.ssrc);
                    let rtp_timestamp = self.timestamps.unwrap(packet.timestamp);
                    match self.depacketizer.push(sequence, rtp_timestamp, &packet) {
                        Ok(Some(frame)) => self.on_frame(frame, now, &mut out),
                        Ok(None) => {}
                        Err(e) => {
                            out.push(TrackEvent::Malformed(e));
                            self.on_loss();
                        }
                    }
                }
                Released::Lost { count, .. } => {
                    out.push(TrackEvent::Loss { packets: count });
                    self.on_loss();
                }
                Released::SsrcChanged { old, new } => {
                    out.push(TrackEvent::SsrcChanged { old, new });
                    self.timestamps = TimestampUnwrapper::default();
                    self.ssrc = Some(new);
                    self.on_loss();
                }
            }
        }
        if let (Some(ssrc), Some(keyframes)) = (self.ssrc, self.keyframes.as_mut())
            && keyframes.poll_request(now)
        {
            out.push(TrackEvent::KeyframeNeeded { ssrc });
        }
        out
    }

    fn on_loss(&mut self) {
        self.depacketizer.reset();
        if let Some(keyframes) = self.keyframes.as_mut() {
            keyframes.on_loss();
        }
    }

    fn on_frame(&mut self, frame: Frame, now: Instant, out: &mut Vec<TrackEvent>) {
        if let Some(keyframes) = self.keyframes.as_mut()
            && !keyframes.on_frame(frame.keyframe, now)
        {
            return;
        }
        if let Some((width, height)) = frame.dimensions.filter(|d| Some(*d) != self.dimensions) {
            self.dimensions = Some((width, height));
            out.push(TrackEvent::ResolutionChanged { width, height });
        }
        out.push(TrackEvent::Frame(frame));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::FrameData;
    use crate::media::testing::{Rng, packet};
    use crate::media::vp8::tests::{keyframe_header, vp8_payload};

    const SSRC: u32 = 0x1234;

    /// A VP8 frame of `parts` packets starting at `seq`: a keyframe of `size` or a delta frame.
    fn vp8_frame(seq: u16, timestamp: u32, size: Option<(u16, u16)>, parts: u16) -> Vec<RtpPacket> {
        let first = match size {
            Some((w, h)) => keyframe_header(w, h, 0),
            None => vec![0x01, 0x02, 0x03],
        };
        (0..parts)
            .map(|i| {
                let body = if i == 0 { first.clone() } else { vec![i as u8; 4] };
                let s = seq.wrapping_add(i);
                packet(s, timestamp, i + 1 == parts, vp8_payload(i == 0, seq, &body))
            })
            .collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn frames(events: &[TrackEvent]) -> Vec<(u64, bool)> {
        events
            .iter()
            .filter_map(|e| match e {
                TrackEvent::Frame(f) => Some((f.rtp_timestamp & 0xffff_ffff, f.keyframe)),
                _ => None,
            })
            .collect()
    }

    fn push_all(track: &mut TrackPipeline, packets: Vec<RtpPacket>, now: Instant) -> Vec<TrackEvent> {
        packets.into_iter().flat_map(|p| track.push(p, now)).collect()
    }

    #[test]
    fn delta_frames_before_the_first_keyframe_are_dropped_and_a_keyframe_is_requested() {
        let t = Instant::now();
        let mut track = TrackPipeline::new(Codec::Vp8, &PipelineConfig::default());
        let out = push_all(&mut track, vp8_frame(1, 0, None, 2), t);
        assert_eq!(out, vec![TrackEvent::KeyframeNeeded { ssrc: SSRC }]);
        let out = push_all(&mut track, vp8_frame(3, 3000, Some((320, 240)), 3), t + ms(40));
        assert_eq!(out[0], TrackEvent::ResolutionChanged { width: 320, height: 240 });
        assert_eq!(frames(&out), vec![(3000, true)]);
        let out = push_all(&mut track, vp8_frame(6, 6000, None, 2), t + ms(80));
        assert_eq!(frames(&out), vec![(6000, false)]);
    }

    #[test]
    fn a_lost_packet_drops_its_frame_and_the_deltas_up_to_the_next_keyframe() {
        let t = Instant::now();
        let mut track = TrackPipeline::new(Codec::Vp8, &PipelineConfig::default());
        push_all(&mut track, vp8_frame(1, 0, Some((320, 240)), 1), t);
        let mut broken = vp8_frame(2, 3000, None, 3);
        broken.remove(1);
        let out = push_all(&mut track, broken, t + ms(30));
        assert!(frames(&out).is_empty());
        assert_eq!(track.poll_timeout(), Some(t + ms(130)));
        let out = track.handle_timeout(t + ms(130));
        assert_eq!(out, vec![TrackEvent::Loss { packets: 1 }, TrackEvent::KeyframeNeeded { ssrc: SSRC }]);
        assert!(frames(&push_all(&mut track, vp8_frame(5, 6000, None, 1), t + ms(140))).is_empty());
        // The start request was at t, so this one was allowed at once; the next must wait 500 ms.
        let out = push_all(&mut track, vp8_frame(6, 9000, None, 1), t + ms(200));
        assert!(!out.contains(&TrackEvent::KeyframeNeeded { ssrc: SSRC }));
        let out = push_all(&mut track, vp8_frame(7, 12000, Some((320, 240)), 1), t + ms(220));
        assert_eq!(
            out,
            vec![TrackEvent::Frame(Frame {
                data: FrameData::Whole(keyframe_header(320, 240, 0)),
                keyframe: true,
                rtp_timestamp: (1 << 32) + 12000,
                dimensions: Some((320, 240)),
            })]
        );
    }

    #[test]
    fn reordered_and_duplicated_packets_yield_the_frames_of_an_in_order_stream() {
        let t = Instant::now();
        let mut in_order = TrackPipeline::new(Codec::Vp8, &PipelineConfig::default());
        let mut shuffled = TrackPipeline::new(Codec::Vp8, &PipelineConfig::default());
        let mut packets = vp8_frame(65530, 0, Some((640, 360)), 4);
        packets.extend(vp8_frame(65534, 3000, None, 3));
        packets.extend(vp8_frame(1, 6000, None, 2));
        let expected = frames(&push_all(&mut in_order, packets.clone(), t));
        assert_eq!(expected, vec![(0, true), (3000, false), (6000, false)]);
        let mut mixed = packets.clone();
        // The first packet fixes the release point, so reorder only after it.
        mixed.swap(1, 3);
        mixed.swap(5, 7);
        mixed.insert(4, packets[3].clone());
        mixed.push(packets[8].clone());
        assert_eq!(frames(&push_all(&mut shuffled, mixed, t)), expected);
    }

    #[test]
    fn timestamps_keep_increasing_across_the_u32_wrap() {
        let t = Instant::now();
        let mut track = TrackPipeline::new(Codec::Opus, &PipelineConfig::default());
        let mut got = Vec::new();
        for i in 0..4u16 {
            let ts = (u32::MAX - 1919).wrapping_add(u32::from(i) * 960);
            for e in track.push(packet(i, ts, false, vec![0xfc, i as u8]), t) {
                if let TrackEvent::Frame(f) = e {
                    got.push(f.rtp_timestamp);
                }
            }
        }
        assert_eq!(got.len(), 4);
        assert!(got.windows(2).all(|w| w[1] == w[0] + 960), "{got:?}");
        assert_eq!(got[2] & 0xffff_ffff, 0);
    }

    #[test]
    fn a_new_resolution_is_reported_once() {
        let t = Instant::now();
        let mut track = TrackPipeline::new(Codec::Vp8, &PipelineConfig::default());
        let sizes = [(320, 240), (320, 240), (1280, 720)];
        let mut changes = Vec::new();
        for (i, size) in sizes.into_iter().enumerate() {
            for e in push_all(&mut track, vp8_frame(i as u16, i as u32 * 3000, Some(size), 1), t) {
                if let TrackEvent::ResolutionChanged { width, height } = e {
                    changes.push((width, height));
                }
            }
        }
        assert_eq!(changes, vec![(320, 240), (1280, 720)]);
    }

    #[test]
    fn an_ssrc_change_restarts_the_stream_and_asks_the_new_ssrc_for_a_keyframe() {
        let t = Instant::now();
        let mut track = TrackPipeline::new(Codec::Vp8, &PipelineConfig::default());
        push_all(&mut track, vp8_frame(100, 50_000, Some((320, 240)), 1), t);
        push_all(&mut track, vp8_frame(101, 53_000, None, 1), t + ms(30));
        let renamed =
            |packets: Vec<RtpPacket>| packets.into_iter().map(|p| RtpPacket { ssrc: 0x5678, ..p }).collect::<Vec<_>>();
        let out = push_all(&mut track, renamed(vp8_frame(7, 1_000_000, None, 1)), t + ms(600));
        assert_eq!(
            out,
            vec![TrackEvent::SsrcChanged { old: SSRC, new: 0x5678 }, TrackEvent::KeyframeNeeded { ssrc: 0x5678 }]
        );
        let out = push_all(&mut track, renamed(vp8_frame(8, 1_003_000, Some((320, 240)), 1)), t + ms(630));
        assert_eq!(frames(&out), vec![(1_003_000, true)]);
    }

    #[test]
    fn four_seconds_without_a_keyframe_brings_a_request_at_the_announced_time() {
        let t = Instant::now();
        let mut track = TrackPipeline::new(Codec::Vp8, &PipelineConfig::default());
        push_all(&mut track, vp8_frame(1, 0, Some((320, 240)), 1), t);
        for i in 1..100u16 {
            push_all(&mut track, vp8_frame(1 + i, u32::from(i) * 3000, None, 1), t + ms(u64::from(i) * 33));
        }
        assert_eq!(track.poll_timeout(), Some(t + ms(4000)));
        assert!(track.handle_timeout(t + ms(3999)).is_empty());
        assert_eq!(track.handle_timeout(t + ms(4000)), vec![TrackEvent::KeyframeNeeded { ssrc: SSRC }]);
    }

    #[test]
    fn a_camera_stream_starts_at_its_first_keyframe_and_a_new_sps_size_is_reported() {
        use crate::media::h264::tests::{PPS, SPS_640X480, SPS_1280X720, idr, non_idr, stap_a};
        let t = Instant::now();
        let mut track = TrackPipeline::new(Codec::H264, &PipelineConfig::default());
        let out = track.push(packet(1, 0, true, non_idr(20)), t);
        assert_eq!(out, vec![TrackEvent::KeyframeNeeded { ssrc: SSRC }]);
        let keyframe = |seq: u16, ts: u32, sps: &[u8]| {
            vec![packet(seq, ts, false, stap_a(&[sps, &PPS])), packet(seq + 1, ts, true, idr(100))]
        };
        let out = push_all(&mut track, keyframe(2, 3000, &SPS_640X480), t + ms(40));
        assert_eq!(out[0], TrackEvent::ResolutionChanged { width: 640, height: 480 });
        assert_eq!(frames(&out), vec![(3000, true)]);
        assert_eq!(frames(&track.push(packet(4, 6000, true, non_idr(20)), t + ms(80))), vec![(6000, false)]);
        let out = push_all(&mut track, keyframe(5, 9000, &SPS_1280X720), t + ms(120));
        assert_eq!(out[0], TrackEvent::ResolutionChanged { width: 1280, height: 720 });
        assert_eq!(frames(&out), vec![(9000, true)]);
    }

    #[test]
    fn random_packets_never_panic_any_codec() {
        for codec in [Codec::Vp8, Codec::Vp9, Codec::Opus, Codec::H264, Codec::Pcmu] {
            let mut rng = Rng(0xfeed_0000_0000_0004 ^ codec.clock_rate() as u64);
            let mut track = TrackPipeline::new(codec, &PipelineConfig::default());
            let t = Instant::now();
            for i in 0..5_000u64 {
                let mut p =
                    packet(rng.next_u64() as u16, rng.next_u64() as u32, rng.next_u64() & 1 == 0, rng.bytes(32));
                if rng.next_u64().is_multiple_of(50) {
                    p.ssrc = rng.next_u64() as u32;
                }
                track.push(p, t + ms(i));
            }
            track.handle_timeout(t + ms(10_000));
            track.flush(t + ms(10_000));
        }
    }
}
