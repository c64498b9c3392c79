//! A recording is one file per participant, so the participant is the unit that owns a shared
//! timeline: it runs one [`TrackPipeline`] per track, maps every frame onto the participant's
//! timeline and interleaves the tracks into the monotonic order the muxer requires. Like the rest
//! of the media core it does no IO and never reads the clock (str0m style: feed input, drain
//! output, call [`Participant::handle_timeout`] at [`Participant::poll_timeout`]).

use std::time::{Duration, Instant};

use super::clock::{SenderReport, Timeline};
use super::interleave::Interleaver;
use super::track::{Codec, PipelineConfig, TrackEvent, TrackPipeline};
use super::{Frame, PayloadError, RtpPacket, TrackId};

/// What the pipeline asks of the recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A frame for the muxer. `timestamp_ns` never decreases across all tracks of the participant.
    Frame {
        track: TrackId,
        timestamp_ns: u64,
        frame: Frame,
    },
    /// Send an RTCP PLI for `ssrc`.
    KeyframeNeeded {
        track: TrackId,
        ssrc: u32,
    },
    /// Packets given up on (a keyframe request follows for video).
    Loss {
        track: TrackId,
        packets: u64,
    },
    SsrcChanged {
        track: TrackId,
        old: u32,
        new: u32,
    },
    /// A keyframe with a new picture size (also the first size seen).
    ResolutionChanged {
        track: TrackId,
        width: u16,
        height: u16,
    },
    /// A payload that could not be parsed was dropped.
    Malformed {
        track: TrackId,
        error: PayloadError,
    },
}

/// The media pipeline of one participant.
#[derive(Debug)]
pub struct Participant {
    config: PipelineConfig,
    tracks: Vec<TrackPipeline>,
    timeline: Timeline,
    /// Latest timeline ns per track: a track's frames must keep their decode order even when a
    /// sender report moves its mapping backwards.
    last_ns: Vec<i128>,
    interleaver: Interleaver<(TrackId, Frame)>,
}

impl Participant {
    pub fn new(config: PipelineConfig) -> Self {
        let window_ns = u64::try_from(config.interleave_window.as_nanos()).unwrap_or(u64::MAX);
        Self {
            config,
            tracks: Vec::new(),
            timeline: Timeline::default(),
            last_ns: Vec::new(),
            interleaver: Interleaver::new(window_ns),
        }
    }

    /// Adds a track; the returned id is only meaningful to this participant.
    pub fn add_track(&mut self, codec: Codec) -> TrackId {
        self.tracks.push(TrackPipeline::new(codec, &self.config));
        self.last_ns.push(i128::MIN);
        self.timeline.add_track(codec.clock_rate())
    }

    /// Takes one RTP packet of `track` received at `now`. Unknown track ids are ignored.
    pub fn push(&mut self, track: TrackId, packet: RtpPacket, now: Instant) -> Vec<Output> {
        let Some(pipeline) = self.tracks.get_mut(track.0) else { return Vec::new() };
        let events = pipeline.push(packet, now);
        self.convert(track, events, now)
    }

    /// Takes an RTCP sender report of `track` received at `now`; ignored before the track's first
    /// packet (its RTP timestamps cannot be extended yet).
    pub fn sender_report(&mut self, track: TrackId, report: SenderReport, now: Instant) {
        let Some(pipeline) = self.tracks.get(track.0) else { return };
        if let Some(rtp_timestamp) = pipeline.extend_rtp_timestamp(report.rtp_timestamp) {
            self.timeline.on_sender_report(track, report.ntp_time, rtp_timestamp, now);
        }
    }

    /// Does what fell due by `now` on every track.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        for index in 0..self.tracks.len() {
            let events = self.tracks[index].handle_timeout(now);
            out.extend(self.convert(TrackId(index), events, now));
        }
        out
    }

    /// When [`Self::handle_timeout`] should be called next, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.tracks.iter().filter_map(TrackPipeline::poll_timeout).min()
    }

    /// How far audio and video would have drifted apart had sender reports not corrected the
    /// arrival-time mapping (the largest correction so far; see [`Timeline::max_correction`]).
    pub fn av_drift(&self) -> Duration {
        self.timeline.max_correction()
    }

    /// Releases everything still held (end of the recording).
    pub fn finish(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        for index in 0..self.tracks.len() {
            let events = self.tracks[index].flush(now);
            out.extend(self.convert(TrackId(index), events, now));
        }
        out.extend(self.interleaver.flush().into_iter().map(frame_output));
        out
    }

    fn convert(&mut self, track: TrackId, events: Vec<TrackEvent>, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        for event in events {
            match event {
                TrackEvent::Frame(frame) => {
                    let mapped_ns = self.timeline.to_ns(track, frame.rtp_timestamp, now);
                    let last_ns = &mut self.last_ns[track.0];
                    let timestamp_ns = mapped_ns.max(*last_ns);
                    *last_ns = timestamp_ns;
                    out.extend(self.interleaver.push(timestamp_ns, (track, frame)).into_iter().map(frame_output));
                }
                TrackEvent::KeyframeNeeded { ssrc } => out.push(Output::KeyframeNeeded { track, ssrc }),
                TrackEvent::Loss { packets } => out.push(Output::Loss { track, packets }),
                TrackEvent::SsrcChanged { old, new } => {
                    self.timeline.reset_track(track);
                    out.push(Output::SsrcChanged { track, old, new });
                }
                TrackEvent::ResolutionChanged { width, height } => {
                    out.push(Output::ResolutionChanged { track, width, height })
                }
                TrackEvent::Malformed(error) => out.push(Output::Malformed { track, error }),
            }
        }
        out
    }
}

fn frame_output((timestamp_ns, (track, frame)): (u64, (TrackId, Frame))) -> Output {
    Output::Frame { track, timestamp_ns, frame }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::testing::packet;
    use crate::media::vp8::tests::{keyframe_header, vp8_payload};
    use std::collections::HashMap;

    const NTP_EPOCH: u64 = 3_970_000_000 << 32;
    const AUDIO_RTP_OFFSET: u32 = 3_000_000_000;
    const VIDEO_RTP_OFFSET: u32 = u32::MAX - 20_000;

    enum Input {
        Packet(TrackId, RtpPacket),
        Report(TrackId, SenderReport),
    }

    /// Capture time in seconds of each (track, RTP timestamp).
    type CaptureTimes = HashMap<(TrackId, u32), f64>;

    fn ntp_at(seconds: f64) -> u64 {
        NTP_EPOCH + (seconds * 4_294_967_296.0) as u64
    }

    /// Audio (20 ms frames) from capture time 0, video (30 fps, two packets a frame, a keyframe a
    /// second) from 0.3 s; video arrives 60 ms later than audio; one sender report each.
    /// Returns the inputs in arrival order and, per (track, RTP timestamp), the capture time.
    fn call(audio: TrackId, video: TrackId) -> (Vec<(f64, Input)>, CaptureTimes) {
        let (audio_delay, video_delay) = (0.020, 0.080);
        let mut inputs = Vec::new();
        let mut capture = HashMap::new();
        for n in 0..150u32 {
            let c = f64::from(n) * 0.020;
            let ts = AUDIO_RTP_OFFSET.wrapping_add(n * 960);
            capture.insert((audio, ts), c);
            inputs.push((c + audio_delay, Input::Packet(audio, packet(1000 + n as u16, ts, false, vec![0xfc, 1]))));
        }
        for k in 0..80u32 {
            let c = 0.3 + f64::from(k) / 30.0;
            let ts = VIDEO_RTP_OFFSET.wrapping_add(k * 3000);
            capture.insert((video, ts), c);
            let first = if k % 30 == 0 { keyframe_header(640, 480, 0) } else { vec![0x01, 0, 0] };
            let seq = 65_000u16.wrapping_add(2 * k as u16);
            let packets = [
                packet(seq, ts, false, vp8_payload(true, k as u16, &first)),
                packet(seq.wrapping_add(1), ts, true, vp8_payload(false, k as u16, &[7; 8])),
            ];
            for p in packets {
                inputs.push((c + video_delay, Input::Packet(video, RtpPacket { ssrc: 0x0071_de00, ..p })));
            }
        }
        let audio_report = SenderReport { ntp_time: ntp_at(1.0), rtp_timestamp: AUDIO_RTP_OFFSET.wrapping_add(48_000) };
        inputs.push((1.0 + audio_delay, Input::Report(audio, audio_report)));
        let video_report = SenderReport { ntp_time: ntp_at(1.1), rtp_timestamp: VIDEO_RTP_OFFSET.wrapping_add(72_000) };
        inputs.push((1.1 + video_delay, Input::Report(video, video_report)));
        inputs.sort_by(|a, b| a.0.total_cmp(&b.0));
        (inputs, capture)
    }

    #[test]
    fn audio_and_video_reach_the_muxer_in_order_and_within_40_ms_of_each_other() {
        let t0 = Instant::now();
        let mut participant = Participant::new(PipelineConfig::default());
        let audio = participant.add_track(Codec::Opus);
        let video = participant.add_track(Codec::Vp8);
        let (inputs, capture) = call(audio, video);

        let mut out = Vec::new();
        for (arrival, input) in inputs {
            let now = t0 + Duration::from_secs_f64(arrival);
            while let Some(due) = participant.poll_timeout().filter(|due| *due <= now) {
                out.extend(participant.handle_timeout(due));
            }
            match input {
                Input::Packet(track, p) => out.extend(participant.push(track, p, now)),
                Input::Report(track, r) => participant.sender_report(track, r, now),
            }
        }
        out.extend(participant.finish(t0 + Duration::from_secs(4)));

        let frames: Vec<(TrackId, u64, f64)> = out
            .iter()
            .filter_map(|o| match o {
                Output::Frame { track, timestamp_ns, frame } => {
                    Some((*track, *timestamp_ns, capture[&(*track, frame.rtp_timestamp as u32)]))
                }
                _ => None,
            })
            .collect();
        assert_eq!(frames.iter().filter(|f| f.0 == audio).count(), 150);
        assert_eq!(frames.iter().filter(|f| f.0 == video).count(), 80);
        assert!(frames.windows(2).all(|w| w[0].1 <= w[1].1), "timestamps must never decrease");
        assert!(out.contains(&Output::ResolutionChanged { track: video, width: 640, height: 480 }));
        let drift_ms = participant.av_drift().as_secs_f64() * 1e3;
        assert!((drift_ms - 60.0).abs() < 1.0, "video arrived 60 ms behind audio, drift {drift_ms} ms");
        assert!(!out.iter().any(|o| matches!(o, Output::Loss { .. } | Output::Malformed { .. })));

        // Timeline minus capture time, for frames after both sender reports arrived.
        let lag_ms = |track: TrackId| -> Vec<f64> {
            frames.iter().filter(|f| f.0 == track && f.2 >= 1.2).map(|f| f.1 as f64 / 1e6 - f.2 * 1e3).collect()
        };
        let (audio_lag, video_lag) = (lag_ms(audio), lag_ms(video));
        for v in &video_lag {
            for a in &audio_lag {
                assert!((v - a).abs() < 40.0, "A/V skew {} ms", v - a);
            }
        }
        // Before the reports, arrival times (60 ms apart) were all the pipeline had.
        let early_video = frames.iter().find(|f| f.0 == video).unwrap();
        assert!((early_video.1 as f64 / 1e6 - early_video.2 * 1e3 - audio_lag[0]).abs() > 50.0);
    }

    /// Frames of `PACKETS_PER_FRAME` VP8 packets each (a keyframe every 10 frames), starting just
    /// before the sequence wrap; each frame's expected bytes, and the packets in sequence order.
    fn video_stream(frames: u16) -> (Vec<Vec<u8>>, Vec<RtpPacket>) {
        const PACKETS_PER_FRAME: u16 = 8;
        let mut expected = Vec::new();
        let mut packets = Vec::new();
        for f in 0..frames {
            let mut data = Vec::new();
            for part in 0..PACKETS_PER_FRAME {
                let body = match part {
                    0 if f % 10 == 0 => keyframe_header(640, 360, 0),
                    0 => vec![0x01, f as u8, 0xd0],
                    _ => vec![f as u8, part as u8, 0xee, 0xff],
                };
                data.extend_from_slice(&body);
                let seq = 65_400u16.wrapping_add(f * PACKETS_PER_FRAME + part);
                let marker = part + 1 == PACKETS_PER_FRAME;
                packets.push(packet(seq, u32::from(f) * 3000, marker, vp8_payload(part == 0, f, &body)));
            }
            expected.push(data);
        }
        (expected, packets)
    }

    /// Arrival order of `n` packets: the first in place (it fixes the reorder buffer's release
    /// point), then either the rest in blocks of 51 reversed, or shuffled (seeded) within
    /// consecutive blocks of 51 whose first packet comes last. Either way no packet moves more
    /// than 50 places, and a packet of each full block moves exactly 50.
    fn displaced_by_up_to_50(n: usize, shuffle_seed: Option<u64>) -> Vec<usize> {
        let mut order = vec![0];
        let rest: Vec<usize> = (1..n).collect();
        for block in rest.chunks(51) {
            let mut block = block.to_vec();
            match shuffle_seed {
                None => block.reverse(),
                Some(seed) => {
                    let lowest = block[0];
                    let mut rng = crate::media::testing::Rng(seed ^ lowest as u64);
                    for i in (1..block.len()).rev() {
                        block.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
                    }
                    // The block's first packet arrives last, so the whole block waits for it.
                    let at = block.iter().position(|&n| n == lowest).unwrap();
                    let last = block.len() - 1;
                    block.swap(at, last);
                }
            }
            order.extend(block);
        }
        order
    }

    /// Issue 5 asks for reordering to a depth of 50 packets. With the default config (64 packets,
    /// 100 ms), packets displaced by up to 50 places that arrive within the 100 ms window all come
    /// out in order: every frame whole and in timestamp order, nothing counted lost, no keyframe
    /// request besides the one at the start. A buffer that held fewer than 50 packets, or gave up
    /// on a gap before its wait ran out, would report losses and drop frames here.
    #[test]
    fn video_packets_displaced_by_up_to_50_places_within_the_wait_come_out_as_whole_frames_in_order() {
        let config = PipelineConfig::default();
        // Each block of 51 waits for its first packet, which arrives 50 arrivals after the
        // block's first one: 95 ms, just inside the buffer's wait.
        let spacing = Duration::from_micros(1900);
        assert!(spacing * 50 < config.reorder_max_wait);
        let (expected, packets) = video_stream(40);
        for shuffle_seed in [None, Some(0x5eed_0001), Some(0x5eed_0002), Some(0x5eed_0003)] {
            let order = displaced_by_up_to_50(packets.len(), shuffle_seed);
            let displacement = order.iter().enumerate().map(|(at, &n)| at.abs_diff(n)).max();
            assert_eq!(displacement, Some(50), "the order really reaches depth 50");

            let t0 = Instant::now();
            let mut participant = Participant::new(config.clone());
            let video = participant.add_track(Codec::Vp8);
            let mut out = Vec::new();
            for (i, &n) in order.iter().enumerate() {
                let now = t0 + spacing * i as u32;
                while let Some(due) = participant.poll_timeout().filter(|due| *due <= now) {
                    out.extend(participant.handle_timeout(due));
                }
                out.extend(participant.push(video, packets[n].clone(), now));
            }
            out.extend(participant.finish(t0 + spacing * order.len() as u32));

            let case = format!("order {shuffle_seed:?}");
            assert!(!out.iter().any(|o| matches!(o, Output::Loss { .. } | Output::Malformed { .. })), "{case}");
            let requests = out.iter().filter(|o| matches!(o, Output::KeyframeNeeded { .. })).count();
            assert_eq!(requests, 1, "{case}: only the request at the start");
            let frames: Vec<(u64, &Frame)> = out
                .iter()
                .filter_map(|o| match o {
                    Output::Frame { timestamp_ns, frame, .. } => Some((*timestamp_ns, frame)),
                    _ => None,
                })
                .collect();
            assert_eq!(frames.len(), expected.len(), "{case}: every frame");
            for (f, ((_, frame), data)) in frames.iter().zip(&expected).enumerate() {
                assert_eq!(frame.data.whole(), Some(&data[..]), "{case}: frame {f} whole");
                assert_eq!(frame.rtp_timestamp & 0xffff_ffff, f as u64 * 3000, "{case}: frame {f} in order");
                assert_eq!(frame.keyframe, f % 10 == 0, "{case}: frame {f}");
            }
            assert!(frames.windows(2).all(|w| w[0].0 < w[1].0), "{case}: timestamps increase");
        }
    }

    #[test]
    fn the_first_video_packet_brings_a_keyframe_request_for_its_ssrc() {
        let t0 = Instant::now();
        let mut participant = Participant::new(PipelineConfig::default());
        let video = participant.add_track(Codec::Vp9);
        let out = participant.push(video, RtpPacket { ssrc: 42, ..packet(1, 0, true, vec![0x4c, 1]) }, t0);
        assert_eq!(out, vec![Output::KeyframeNeeded { track: video, ssrc: 42 }]);
        assert_eq!(participant.poll_timeout(), Some(t0 + Duration::from_millis(500)));
    }
}
