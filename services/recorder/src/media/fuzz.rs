//! Property tests over hostile and mistreated input. RTP payloads come straight from the network,
//! so the depacketizers and the participant pipeline must survive any bytes, keep the promises the
//! muxer relies on (ordered timestamps, a keyframe first), and still reassemble real frames exactly
//! whatever reordering and duplication the network did to their packets.

use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::RngAlgorithm;

use super::h264::sps_dimensions;
use super::h264::tests::{PPS, SPS_640X480, SPS_1280X720, fu_a, stap_a};
use super::testing::packet;
use super::vp8::tests::keyframe_header;
use super::vp9::tests::ss;
use super::{
    Codec, FrameData, H264Depacketizer, Output, Participant, PipelineConfig, RtpPacket, SenderReport,
    SequenceUnwrapper, TimestampUnwrapper, TrackEvent, TrackId, TrackPipeline, Vp8Depacketizer, Vp9Depacketizer,
    passthrough,
};
use confab_payload::vp8::keyframe_dimensions;

/// Enough cases to find shallow bugs while keeping the recorder's unit tests fast; XorShift
/// because unoptimised ChaCha spent most of the time generating payload bytes.
pub(super) fn config() -> ProptestConfig {
    ProptestConfig { rng_algorithm: RngAlgorithm::XorShift, ..ProptestConfig::with_cases(256) }
}

/// Starts of real VP8 and VP9 payloads with unusual descriptors (extended fields, two spatial
/// layers, flexible mode) and of H.264 aggregates and fragments, so that random tails reach past
/// the descriptor parsers.
pub(super) fn payload_prefixes() -> Vec<Vec<u8>> {
    let (b, e, p, l, f, v) = (0x08, 0x04, 0x40, 0x20, 0x10, 0x02);
    vec![
        [&[0x90, 0x80, 0x81, 0x23][..], &keyframe_header(320, 240, 1)].concat(),
        vec![0x80, 0x70, 0x05, 0x40],
        vec![b | e | v, 0x38, 0x02, 0x80, 0x01, 0x68, 0x05, 0x00, 0x02, 0xd0, 0x01, 0x08, 0x01, 0x02],
        vec![l | b | e, 0x03, 0x00],
        vec![p | f | b, 0x03, 0x02],
        stap_a(&[&SPS_640X480, &PPS]),
        vec![0x7c, 0x85],
        vec![0x7c, 0x05],
    ]
}

/// What a packet carries: arbitrary bytes, or a well-formed packet of whichever codec its track
/// has (so that streams actually yield frames, and the gating and ordering they go through).
#[derive(Debug, Clone)]
enum Payload {
    Bytes(Vec<u8>),
    Media { part: Part, body: Vec<u8> },
}

/// Which part of a frame a well-formed packet carries.
#[derive(Debug, Clone, Copy)]
enum Part {
    KeyframeStart { width: u16, height: u16 },
    DeltaStart,
    Continuation,
}

impl Payload {
    fn to_wire(&self, codec: Codec, marker: bool) -> Vec<u8> {
        let (part, body) = match self {
            Payload::Bytes(bytes) => return bytes.clone(),
            Payload::Media { part, body } => (*part, body),
        };
        // VP9 descriptor bits: P, B, E, V; E marks the packet that ends the (only) layer frame.
        let end = if marker { 0x04 } else { 0x00 };
        let descriptor = match (codec, part) {
            (Codec::Opus | Codec::Pcmu | Codec::Pcma, _) => Vec::new(),
            // H.264: parameter sets and an IDR slice, a non-IDR slice, or an FU-A middle part.
            (Codec::H264, Part::KeyframeStart { width: 640, .. }) => stap_a(&[&SPS_640X480, &PPS, &[0x65, 0x88]]),
            (Codec::H264, Part::KeyframeStart { .. }) => stap_a(&[&SPS_1280X720, &PPS, &[0x65, 0x88]]),
            (Codec::H264, Part::DeltaStart) => vec![0x41, 0x9a],
            (Codec::H264, Part::Continuation) => vec![0x7c, if marker { 0x41 } else { 0x01 }],
            (Codec::Vp8, Part::KeyframeStart { width, height }) => {
                [vec![0x10], keyframe_header(width, height, 0)].concat()
            }
            (Codec::Vp8, Part::DeltaStart) => vec![0x10, 0x01, 0x00, 0x00],
            (Codec::Vp8, Part::Continuation) => vec![0x00],
            (Codec::Vp9, Part::KeyframeStart { width, height }) => {
                [vec![0x08 | 0x02 | end], ss(width, height)].concat()
            }
            (Codec::Vp9, Part::DeltaStart) => vec![0x40 | 0x08 | end],
            (Codec::Vp9, Part::Continuation) => vec![0x40 | end],
        };
        [descriptor, body.clone()].concat()
    }
}

/// Any bytes up to an MTU (short ones as often as long, they hit the truncation paths), an
/// unusual descriptor followed by arbitrary bytes, or a well-formed packet.
fn payload() -> impl Strategy<Value = Payload> {
    let short = vec(any::<u8>(), 0..64);
    let long = vec(any::<u8>(), 0..1500);
    let odd_descriptor =
        (select(payload_prefixes()), vec(any::<u8>(), 0..64)).prop_map(|(start, tail)| [start, tail].concat());
    let keyframe_start =
        select(vec![(640, 480), (320, 240)]).prop_map(|(width, height)| Part::KeyframeStart { width, height });
    let part = prop_oneof![keyframe_start, Just(Part::DeltaStart), Just(Part::Continuation)];
    prop_oneof![
        1 => short.prop_map(Payload::Bytes),
        1 => long.prop_map(Payload::Bytes),
        1 => odd_descriptor.prop_map(Payload::Bytes),
        4 => (part, vec(any::<u8>(), 0..32)).prop_map(|(part, body)| Payload::Media { part, body }),
    ]
}

/// Mostly the next sequence number, sometimes a jump anywhere (loss, reordering, wrap).
fn sequence_step() -> impl Strategy<Value = u16> {
    prop_oneof![12 => Just(1), 1 => Just(0), 1 => Just(2), 1 => any::<u16>()]
}

/// Mostly the same or the next video frame's timestamp, sometimes a jump anywhere.
fn timestamp_step() -> impl Strategy<Value = u32> {
    prop_oneof![3 => Just(0), 2 => Just(3000), 1 => any::<u32>()]
}

#[derive(Debug, Clone)]
struct Step {
    sequence_step: u16,
    timestamp_step: u32,
    marker: bool,
    payload: Payload,
}

fn step() -> impl Strategy<Value = Step> {
    (sequence_step(), timestamp_step(), any::<bool>(), payload()).prop_map(
        |(sequence_step, timestamp_step, marker, payload)| Step { sequence_step, timestamp_step, marker, payload },
    )
}

/// Turns steps into packets of `codec` with their extended sequence numbers and timestamps, as
/// the track pipeline hands them to a depacketizer.
fn packets(codec: Codec, first_sequence: u16, first_timestamp: u32, steps: Vec<Step>) -> Vec<(u64, u64, RtpPacket)> {
    let (mut sequences, mut timestamps) = (SequenceUnwrapper::default(), TimestampUnwrapper::default());
    let (mut sequence, mut timestamp) = (first_sequence, first_timestamp);
    steps
        .into_iter()
        .map(|step| {
            sequence = sequence.wrapping_add(step.sequence_step);
            timestamp = timestamp.wrapping_add(step.timestamp_step);
            let p = packet(sequence, timestamp, step.marker, step.payload.to_wire(codec, step.marker));
            (sequences.unwrap(sequence), timestamps.unwrap(timestamp), p)
        })
        .collect()
}

/// One call on a participant, as the recorder's webrtc tasks might make it.
#[derive(Debug, Clone)]
enum Call {
    Packet {
        track: usize,
        after_ms: u64,
        step: Step,
        new_ssrc: Option<u32>,
    },
    Timeout {
        after_ms: u64,
    },
    /// `ntp_time` `None` is a plausible NTP time (the injected clock plus `jitter_ms`).
    Report {
        track: usize,
        after_ms: u64,
        ntp_time: Option<u64>,
        jitter_ms: i16,
        rtp_step: u32,
    },
}

fn calls() -> impl Strategy<Value = Vec<Call>> {
    // Track 5 is an id the participant never handed out.
    let track = prop_oneof![10 => 0..5usize, 1 => Just(5usize)];
    let new_ssrc = prop_oneof![100 => Just(None), 1 => any::<u32>().prop_map(Some)];
    let rtp_step = prop_oneof![(-90_000i32..90_000).prop_map(|d| d as u32), any::<u32>()];
    let call = prop_oneof![
        12 => (track.clone(), 0..40u64, step(), new_ssrc)
            .prop_map(|(track, after_ms, step, new_ssrc)| Call::Packet { track, after_ms, step, new_ssrc }),
        2 => (0..1000u64).prop_map(|after_ms| Call::Timeout { after_ms }),
        1 => (track, 0..40u64, proptest::option::of(any::<u64>()), any::<i16>(), rtp_step).prop_map(
            |(track, after_ms, ntp_time, jitter_ms, rtp_step)| Call::Report { track, after_ms, ntp_time, jitter_ms, rtp_step }
        ),
    ];
    vec(call, 0..200)
}

/// Where each track's stream stands: its latest sequence number, timestamp and SSRC.
#[derive(Debug, Clone, Copy)]
struct Stream {
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
}

const NTP_EPOCH: u64 = 3_970_000_000 << 32;

fn ntp_at(elapsed: Duration, jitter_ms: i16) -> u64 {
    let ms = i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX).saturating_add(i64::from(jitter_ms)).max(0);
    NTP_EPOCH + ((ms as u64) << 32) / 1000
}

/// Runs `calls` on a participant with a VP8, a VP9, an Opus, an H.264 and a PCMU track (no real
/// sender has all five, but the pipeline must not care), then finishes it.
fn run_participant(calls: Vec<Call>) -> (Vec<Output>, [TrackId; 5]) {
    let t0 = Instant::now();
    let mut now = t0;
    let mut participant = Participant::new(PipelineConfig::default());
    let codecs = [Codec::Vp8, Codec::Vp9, Codec::Opus, Codec::H264, Codec::Pcmu];
    let tracks = codecs.map(|codec| participant.add_track(codec));
    let mut streams =
        [0, 1, 2, 3, 4, 5].map(|n| Stream { sequence: n * 1000, timestamp: 0, ssrc: 0x1000 + u32::from(n) });
    let mut out = Vec::new();
    for call in calls {
        match call {
            Call::Packet { track, after_ms, step, new_ssrc } => {
                now += Duration::from_millis(after_ms);
                let stream = &mut streams[track];
                stream.ssrc = new_ssrc.unwrap_or(stream.ssrc);
                stream.sequence = stream.sequence.wrapping_add(step.sequence_step);
                stream.timestamp = stream.timestamp.wrapping_add(step.timestamp_step);
                let payload = step.payload.to_wire(codecs.get(track).copied().unwrap_or(Codec::Opus), step.marker);
                let p =
                    RtpPacket { ssrc: stream.ssrc, ..packet(stream.sequence, stream.timestamp, step.marker, payload) };
                out.extend(participant.push(TrackId(track), p, now));
            }
            Call::Timeout { after_ms } => {
                now += Duration::from_millis(after_ms);
                out.extend(participant.handle_timeout(now));
            }
            Call::Report { track, after_ms, ntp_time, jitter_ms, rtp_step } => {
                now += Duration::from_millis(after_ms);
                let ntp_time = ntp_time.unwrap_or_else(|| ntp_at(now - t0, jitter_ms));
                let rtp_timestamp = streams[track].timestamp.wrapping_add(rtp_step);
                participant.sender_report(TrackId(track), SenderReport { ntp_time, rtp_timestamp }, now);
            }
        }
    }
    out.extend(participant.finish(now + Duration::from_secs(1)));
    (out, tracks)
}

/// How a VP8 payload descriptor is written; senders differ, the depacketizer must accept all.
#[derive(Debug, Clone, Copy)]
pub(super) struct Vp8Shape {
    extended: bool,
    non_reference: bool,
    /// `Some((id, long))`: a PictureID, 15 bits when `long` (7-bit ids keep their low 7 bits).
    picture_id: Option<(u16, bool)>,
    tl0_pic_idx: bool,
    tid_or_key_idx: (bool, bool),
}

pub(super) fn vp8_shape() -> impl Strategy<Value = Vp8Shape> {
    (
        any::<bool>(),
        any::<bool>(),
        proptest::option::of((any::<u16>(), any::<bool>())),
        any::<bool>(),
        any::<(bool, bool)>(),
    )
        .prop_map(|(extended, non_reference, picture_id, tl0_pic_idx, tid_or_key_idx)| Vp8Shape {
            extended,
            non_reference,
            picture_id,
            tl0_pic_idx,
            tid_or_key_idx,
        })
}

/// The RFC 7741 payload descriptor of `shape` with the S bit and partition index given.
pub(super) fn vp8_descriptor(shape: Vp8Shape, start_of_partition: bool, partition_index: u8) -> Vec<u8> {
    let bit = |set: bool, mask: u8| if set { mask } else { 0 };
    let mut d = vec![
        bit(shape.extended, 0x80) | bit(shape.non_reference, 0x20) | bit(start_of_partition, 0x10) | partition_index,
    ];
    if shape.extended {
        let (tid, key_idx) = shape.tid_or_key_idx;
        d.push(
            bit(shape.picture_id.is_some(), 0x80) | bit(shape.tl0_pic_idx, 0x40) | bit(tid, 0x20) | bit(key_idx, 0x10),
        );
        match shape.picture_id {
            Some((id, true)) => d.extend_from_slice(&[0x80 | ((id >> 8) as u8 & 0x7f), id as u8]),
            Some((id, false)) => d.push(id as u8 & 0x7f),
            None => {}
        }
        if shape.tl0_pic_idx {
            d.push(0x2a);
        }
        if tid || key_idx {
            d.push(0xe5);
        }
    }
    d
}

/// A VP8 frame: a keyframe (a real header of any size, then arbitrary bytes) or a delta frame.
pub(super) fn vp8_frame() -> impl Strategy<Value = Vec<u8>> {
    let keyframe = (0..16384u16, 0..16384u16, 0..4u8, vec(any::<u8>(), 0..3000))
        .prop_map(|(width, height, scale, body)| [keyframe_header(width, height, scale), body].concat());
    let delta = (any::<u8>(), vec(any::<u8>(), 2..3000)).prop_map(|(tag, body)| [vec![tag | 0x01], body].concat());
    prop_oneof![keyframe, delta]
}

/// Whether the first frame `track` output is a keyframe; `None` if it output none.
fn first_frame_is_keyframe(out: &[Output], track: TrackId) -> Option<bool> {
    out.iter().find_map(|o| match o {
        Output::Frame { track: t, frame, .. } if *t == track => Some(frame.keyframe),
        _ => None,
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_vp8_depacketizer_returns_whole_frames_or_errors_for_any_payload(
        first_sequence in any::<u16>(),
        first_timestamp in any::<u32>(),
        steps in vec(step(), 0..64),
    ) {
        let mut d = Vp8Depacketizer::default();
        for (sequence, rtp_timestamp, p) in packets(Codec::Vp8, first_sequence, first_timestamp, steps) {
            if let Ok(Some(frame)) = d.push(sequence, rtp_timestamp, &p) {
                prop_assert!(p.marker, "a frame ends only at a marker packet");
                prop_assert_eq!(frame.rtp_timestamp, rtp_timestamp);
                let data = frame.data.whole().expect("a VP8 frame is one buffer");
                prop_assert_eq!(frame.keyframe, data[0] & 0x01 == 0);
                let dimensions = if frame.keyframe { keyframe_dimensions(data) } else { None };
                prop_assert!(!frame.keyframe || dimensions.is_some(), "keyframes have a valid header");
                prop_assert_eq!(frame.dimensions, dimensions);
            }
        }
    }

    #[test]
    fn the_vp9_depacketizer_returns_whole_pictures_or_errors_for_any_payload(
        first_sequence in any::<u16>(),
        first_timestamp in any::<u32>(),
        steps in vec(step(), 0..64),
    ) {
        let mut d = Vp9Depacketizer::default();
        for (sequence, rtp_timestamp, p) in packets(Codec::Vp9, first_sequence, first_timestamp, steps) {
            if let Ok(Some(frame)) = d.push(sequence, rtp_timestamp, &p) {
                prop_assert!(p.marker, "a picture ends only at a marker packet");
                prop_assert_eq!(frame.rtp_timestamp, rtp_timestamp);
                prop_assert!(frame.data.whole().is_some_and(|data| !data.is_empty()));
                prop_assert!(frame.keyframe || frame.dimensions.is_none(), "only keyframes carry a size");
            }
        }
    }

    #[test]
    fn the_h264_depacketizer_returns_whole_access_units_or_errors_for_any_payload(
        first_sequence in any::<u16>(),
        first_timestamp in any::<u32>(),
        steps in vec(step(), 0..64),
    ) {
        let mut d = H264Depacketizer::default();
        for (sequence, rtp_timestamp, p) in packets(Codec::H264, first_sequence, first_timestamp, steps) {
            if let Ok(Some(frame)) = d.push(sequence, rtp_timestamp, &p) {
                prop_assert!(p.marker, "an access unit ends only at a marker packet");
                prop_assert_eq!(frame.rtp_timestamp, rtp_timestamp);
                let units = frame.data.nal_units().expect("an access unit is NAL units");
                prop_assert!(!units.is_empty() && units.iter().all(|unit| !unit.is_empty()), "whole NAL units");
                prop_assert_eq!(frame.keyframe, frame.dimensions.is_some(), "keyframes, and only they, carry a size");
            }
        }
    }

    #[test]
    fn an_h264_access_unit_packetized_any_way_comes_out_whole(
        units in vec((select(vec![0x41u8, 0x65, 0x06, 0x09]), vec(any::<u8>(), 1..3000)), 1..6),
        // Per unit: alone, aggregated with the next ones (STAP-A), or fragmented (FU-A) in parts of this size.
        shapes in vec((0..3u8, 1..1400usize), 6),
        parameter_sets in any::<bool>(),
        first_sequence in any::<u16>(),
        first_timestamp in any::<u32>(),
    ) {
        let mut nal_units: Vec<Vec<u8>> = units.into_iter().map(|(header, body)| [vec![header], body].concat()).collect();
        if parameter_sets {
            nal_units.splice(0..0, [SPS_1280X720.to_vec(), PPS.to_vec()]);
        }
        let mut payloads = Vec::new();
        let mut i = 0;
        while i < nal_units.len() {
            let (shape, size) = shapes[i % shapes.len()];
            match shape {
                0 => payloads.push(nal_units[i].clone()),
                1 => {
                    let end = (i + 3).min(nal_units.len());
                    let group: Vec<&[u8]> = nal_units[i..end].iter().map(Vec::as_slice).collect();
                    payloads.push(stap_a(&group));
                    i = end;
                    continue;
                }
                _ if nal_units[i].len() > 2 => payloads.extend(fu_a(&nal_units[i], size)),
                _ => payloads.push(nal_units[i].clone()),
            }
            i += 1;
        }
        let mut d = H264Depacketizer::default();
        let (mut sequences, mut timestamps) = (SequenceUnwrapper::default(), TimestampUnwrapper::default());
        let rtp_timestamp = timestamps.unwrap(first_timestamp);
        let last = payloads.len() - 1;
        let mut frames = Vec::new();
        for (n, payload) in payloads.into_iter().enumerate() {
            let wire = first_sequence.wrapping_add(n as u16);
            let p = packet(wire, first_timestamp, n == last, payload);
            frames.extend(d.push(sequences.unwrap(wire), rtp_timestamp, &p).unwrap());
        }
        prop_assert_eq!(frames.len(), 1);
        prop_assert_eq!(frames[0].data.nal_units(), Some(&nal_units[..]));
        let idr = nal_units.iter().any(|unit| unit[0] & 0x1f == 5);
        prop_assert_eq!(frames[0].keyframe, idr && parameter_sets);
        prop_assert_eq!(frames[0].dimensions, (idr && parameter_sets).then(|| sps_dimensions(&SPS_1280X720)).flatten());
    }

    #[test]
    fn the_audio_depacketizer_passes_any_payload_through(
        first_sequence in any::<u16>(),
        first_timestamp in any::<u32>(),
        steps in vec(step(), 0..64),
    ) {
        for (_, rtp_timestamp, p) in packets(Codec::Opus, first_sequence, first_timestamp, steps) {
            let frame = passthrough::depacketize(rtp_timestamp, &p);
            prop_assert_eq!(frame.is_some(), !p.payload.is_empty());
            if let Some(frame) = frame {
                prop_assert!(frame.keyframe);
                prop_assert_eq!((frame.data, frame.rtp_timestamp), (FrameData::Whole(p.payload), rtp_timestamp));
            }
        }
    }

    #[test]
    fn a_participant_fed_anything_keeps_timestamps_ordered_and_starts_video_at_a_keyframe(calls in calls()) {
        let (out, [vp8, vp9, opus, h264, pcmu]) = run_participant(calls);
        let mut last_ns = 0;
        for o in &out {
            if let Output::Frame { track, timestamp_ns, .. } = o {
                prop_assert!(
                    [vp8, vp9, opus, h264, pcmu].contains(track),
                    "output for a track never added: {:?}",
                    track
                );
                prop_assert!(*timestamp_ns >= last_ns, "timestamp {} after {}", timestamp_ns, last_ns);
                last_ns = *timestamp_ns;
            }
        }
        for video in [vp8, vp9, h264] {
            prop_assert_ne!(first_frame_is_keyframe(&out, video), Some(false), "{:?} starts with a delta frame", video);
        }
    }

    #[test]
    fn a_vp8_frame_split_anywhere_reordered_and_duplicated_comes_out_whole(
        frame in vp8_frame(),
        cuts in vec(any::<Index>(), 0..40),
        shapes in vec(vp8_shape(), 1..8),
        continuation_bits in vec((any::<bool>(), 0..8u8), 1..8),
        window in 1..16usize,
        delays in vec(any::<Index>(), 1..64),
        duplicates in vec((any::<Index>(), any::<Index>()), 0..8),
        first_sequence in any::<u16>(),
        first_timestamp in any::<u32>(),
    ) {
        let config = PipelineConfig::default();
        prop_assert!(window < config.reorder_max_packets);
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(frame.len() + 1)).collect();
        bounds.extend([0, frame.len()]);
        bounds.sort_unstable();
        let parts: Vec<&[u8]> = bounds.windows(2).map(|w| &frame[w[0]..w[1]]).collect();

        // A one-packet keyframe in order first: it fixes the reorder buffer's release point.
        let priming = keyframe_header(16, 16, 0);
        let timestamp = first_timestamp.wrapping_add(3000);
        let mut packets = vec![packet(first_sequence, first_timestamp, true, [&[0x10][..], &priming].concat())];
        for (i, part) in parts.iter().enumerate() {
            let shape = shapes[i % shapes.len()];
            let (start, partition_index) = match continuation_bits[i % continuation_bits.len()] {
                _ if i == 0 => (true, 0),
                // S with PID 0 would start a new frame: later packets start partitions 1 to 7 at most.
                (true, 0) => (true, 1),
                bits => bits,
            };
            let payload = [vp8_descriptor(shape, start, partition_index), part.to_vec()].concat();
            let sequence = first_sequence.wrapping_add(1 + i as u16);
            packets.push(packet(sequence, timestamp, i + 1 == parts.len(), payload));
        }

        // Each packet arrives up to `window - 1` places late; duplicates up to `window - 1` later.
        let delay = |n: usize| delays[n % delays.len()].index(window);
        let mut arrivals: Vec<(usize, usize)> = (1..packets.len()).map(|n| (n + delay(n), n)).collect();
        for (which, extra) in &duplicates {
            let n = 1 + which.index(packets.len() - 1);
            arrivals.push((n + delay(n) + extra.index(window), n));
        }
        arrivals.sort_by_key(|(at, _)| *at);

        let t0 = Instant::now();
        let mut track = TrackPipeline::new(Codec::Vp8, &config);
        let mut events = track.push(packets[0].clone(), t0);
        for (i, (_, n)) in arrivals.into_iter().enumerate() {
            events.extend(track.push(packets[n].clone(), t0 + Duration::from_micros(i as u64)));
        }
        events.extend(track.flush(t0 + Duration::from_millis(1)));

        prop_assert!(
            !events.iter().any(|e| matches!(e, TrackEvent::Loss { .. } | TrackEvent::Malformed(_))),
            "{:?}",
            events
        );
        let frames: Vec<_> = events
            .into_iter()
            .filter_map(|e| match e {
                TrackEvent::Frame(f) => Some(f),
                _ => None,
            })
            .collect();
        prop_assert_eq!(frames.len(), 2);
        prop_assert_eq!(frames[0].data.whole(), Some(&priming[..]));
        prop_assert_eq!(frames[1].data.whole(), Some(&frame[..]));
        prop_assert_eq!(frames[1].rtp_timestamp & 0xffff_ffff, u64::from(timestamp));
        prop_assert_eq!(frames[1].dimensions, keyframe_dimensions(&frame));
    }
}
