//! The recorder depacketizes VP8, VP9 and H.264 with its own code rather than with rtc-rtp's (why:
//! docs/architecture.md, "Decisions"). These properties hold the two to the same answers: the same
//! valid packets (cut by rtc-rtp's own payloaders, or with the descriptors browsers send) give the
//! same frames from both, frame for frame, and a payload rtc-rtp rejects never becomes a frame
//! here. Where they differ, a named predicate below says exactly where, and the RFC says who is
//! right.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use rtc::rtp::codec::h264::{H264Packet, H264Payloader};
use rtc::rtp::codec::vp8::{Vp8Packet, Vp8Payloader};
use rtc::rtp::codec::vp9::{Vp9Packet, Vp9Payloader};
use rtc::rtp::packetizer::{Depacketizer, Payloader};
use rtc::shared::error::Error;

use super::fuzz::{Vp8Shape, config, payload_prefixes, vp8_descriptor, vp8_frame, vp8_shape};
use super::h264::tests::{PPS, SPS_640X480, SPS_1280X720, fu_a, stap_a};
use super::testing::packet;
use super::{
    Codec, Frame, H264Depacketizer, PayloadError, RtpPacket, SequenceUnwrapper, TimestampUnwrapper, Vp8Depacketizer,
    Vp9Depacketizer,
};
use confab_payload::vp9::Vp9Descriptor;

/// rtc-rtp's `Vp8Packet` refuses any payload under 4 bytes, though RFC 7741 §4.2 lets a packet
/// carry a 1-byte descriptor and 1 or 2 bytes of a frame (a tiny frame, or the tail of one).
fn rtc_rtp_refuses_short_vp8(payload: &[u8]) -> bool {
    payload.len() < 4
}

/// rtc-rtp's `Vp9Packet` refuses a third P_DIFF (it counts after adding one and stops at `>= 3`),
/// though RFC 9628 allows up to 3; and it refuses spatial layer ids 5 to 7, which the 3-bit
/// SID field can carry and the RFC does not forbid.
fn rtc_rtp_refuses_vp9_descriptor(payload: &[u8]) -> bool {
    Vp9Descriptor::parse(payload).is_ok_and(|d| d.p_diffs.len() == 3 || d.layer.is_some_and(|(_, sid)| sid >= 5))
}

/// rtc-rtp takes the scalability structure's G flag to be any of the bits `G|-|-`
/// (`(b >> 1) & 0x7`), so an SS with a reserved bit set makes it read a picture group description
/// that is not there (in RFC 9628, G is one bit and the three after it are reserved).
fn rtc_rtp_misreads_vp9_ss(payload: &[u8]) -> bool {
    let Ok(d) = Vp9Descriptor::parse(payload) else { return false };
    let first = payload[0];
    let (has_picture_id, has_layers, flexible, has_ss) =
        (first & 0x80 != 0, first & 0x20 != 0, first & 0x10 != 0, first & 0x02 != 0);
    let picture_id_len = match (has_picture_id, payload.get(1)) {
        (true, Some(high)) if high & 0x80 != 0 => 2,
        (true, _) => 1,
        (false, _) => 0,
    };
    let layers_len = usize::from(has_layers) * if flexible { 1 } else { 2 };
    let ss_at = 1 + picture_id_len + layers_len + d.p_diffs.len();
    has_ss && payload.get(ss_at).is_some_and(|ss| ss & 0x06 != 0)
}

/// rtc-rtp's `H264Packet` refuses payloads of 2 bytes or fewer (an AUD excepted), though RFC 6184
/// lets a NAL unit be 1 byte (end of sequence, end of stream) or 2, and an FU payload be empty
/// (§5.8).
fn rtc_rtp_refuses_short_h264(payload: &[u8]) -> bool {
    payload.len() <= 2
}

/// What rtc-rtp makes of one frame's packets, assembled the way its `SampleBuilder` does: the
/// first packet must be a partition head, the depacketized payloads are concatenated up to the
/// partition tail, and an error on any packet drops the whole frame.
#[derive(Debug)]
enum Reference {
    Frame(Vec<u8>),
    NotAHead,
    Rejected { payload: Vec<u8>, error: Error },
}

/// Whether rtc-rtp's depacketizer is made anew for each packet or kept for the stream.
/// `Vp8Packet` and `Vp9Packet` hold no reassembly state, only the last descriptor parsed, some of
/// which leaks into the next parse (see `rtc_rtp_parsers_carry_fields_from_one_packet_to_the_next`):
/// a fresh one per packet parses each descriptor the way the RFCs define. `H264Packet` buffers
/// FU-A fragments, so it lives as long as the stream, as in a `SampleBuilder`.
#[derive(Debug, Clone, Copy)]
enum Instance {
    PerPacket,
    PerStream,
}

fn rtc_rtp_frames<D: Depacketizer + Default>(instance: Instance, packets: &[RtpPacket]) -> Vec<Reference> {
    let mut stream_long = D::default();
    let mut depacketize = |payload: &Bytes| match instance {
        Instance::PerPacket => D::default().depacketize(payload),
        Instance::PerStream => stream_long.depacketize(payload),
    };
    let probe = D::default();
    let mut frames = Vec::new();
    let mut group: Vec<Bytes> = Vec::new();
    for p in packets {
        let payload = Bytes::copy_from_slice(&p.payload);
        let tail = probe.is_partition_tail(p.marker, &payload);
        group.push(payload);
        if !tail {
            continue;
        }
        let head = probe.is_partition_head(&group[0]);
        frames.push(if head { assemble(&mut depacketize, &group) } else { Reference::NotAHead });
        group.clear();
    }
    frames
}

fn assemble(depacketize: &mut impl FnMut(&Bytes) -> Result<Bytes, Error>, payloads: &[Bytes]) -> Reference {
    let mut data = Vec::new();
    for payload in payloads {
        match depacketize(payload) {
            Ok(bytes) => data.extend_from_slice(&bytes),
            Err(error) => return Reference::Rejected { payload: payload.to_vec(), error },
        }
    }
    Reference::Frame(data)
}

/// Frames given as their packets' payloads, sent one after another: consecutive sequence numbers,
/// one timestamp per frame (30 frames a second at 90 kHz), the marker bit on each frame's last
/// packet.
fn rtp_stream(first_sequence: u16, first_timestamp: u32, frames: &[Vec<Vec<u8>>]) -> Vec<RtpPacket> {
    let mut packets = Vec::new();
    for (n, payloads) in frames.iter().enumerate() {
        let timestamp = first_timestamp.wrapping_add(3000 * n as u32);
        for (i, payload) in payloads.iter().enumerate() {
            let sequence = first_sequence.wrapping_add(packets.len() as u16);
            packets.push(packet(sequence, timestamp, i + 1 == payloads.len(), payload.clone()));
        }
    }
    packets
}

/// Our frames for `packets`, pushed with extended sequence numbers and timestamps as the track
/// pipeline pushes them. Valid input must never be an error.
fn our_frames(
    mut push: impl FnMut(u64, u64, &RtpPacket) -> Result<Option<Frame>, PayloadError>,
    packets: &[RtpPacket],
) -> Result<Vec<Frame>, PayloadError> {
    let (mut sequences, mut timestamps) = (SequenceUnwrapper::default(), TimestampUnwrapper::default());
    let mut frames = Vec::new();
    for p in packets {
        frames.extend(push(sequences.unwrap(p.sequence_number), timestamps.unwrap(p.timestamp), p)?);
    }
    Ok(frames)
}

/// The NAL units of an access unit as rtc-rtp's `H264Packet` assembles it (Annex B, ours comes as
/// NAL units already). The test streams' NAL units are escaped, so `00 00 00 01` inside a frame
/// is always a start code.
fn rtc_rtp_nal_units(annex_b: &[u8]) -> Vec<Vec<u8>> {
    let mut starts: Vec<usize> =
        annex_b.windows(4).enumerate().filter(|(_, w)| *w == [0, 0, 0, 1]).map(|(i, _)| i).collect();
    starts.push(annex_b.len());
    starts.windows(2).map(|w| annex_b[w[0] + 4..w[1]].to_vec()).collect()
}

/// How a VP8 stream is cut into packets: by rtc-rtp's payloader, or with one descriptor shape for
/// the whole stream (browsers send PictureID, TL0PICIDX, TID) and partitions after the first
/// flagged as such.
#[derive(Debug, Clone)]
enum Vp8Packetization {
    Payloader { mtu: usize, picture_id: bool },
    Browser { shape: Vp8Shape, part_size: usize, partition_bits: Vec<(bool, u8)> },
}

fn vp8_packetization() -> impl Strategy<Value = Vp8Packetization> {
    let payloader =
        (8..1200usize, any::<bool>()).prop_map(|(mtu, picture_id)| Vp8Packetization::Payloader { mtu, picture_id });
    let browser = (vp8_shape(), 8..1200usize, vec((any::<bool>(), 0..8u8), 1..8))
        .prop_map(|(shape, part_size, partition_bits)| Vp8Packetization::Browser { shape, part_size, partition_bits });
    prop_oneof![payloader, browser]
}

impl Vp8Packetization {
    fn packetize(&self, frames: &[Vec<u8>]) -> Vec<Vec<Vec<u8>>> {
        let mut payloader = Vp8Payloader::default();
        payloader.enable_picture_id = matches!(self, Self::Payloader { picture_id: true, .. });
        frames
            .iter()
            .map(|frame| match self {
                Self::Payloader { mtu, .. } => payloader
                    .payload(*mtu, &Bytes::copy_from_slice(frame))
                    .unwrap()
                    .iter()
                    .map(|p| p.to_vec())
                    .collect(),
                Self::Browser { shape, part_size, partition_bits } => frame
                    .chunks(*part_size)
                    .enumerate()
                    .map(|(i, part)| {
                        let (start, partition_index) = match partition_bits[i % partition_bits.len()] {
                            _ if i == 0 => (true, 0),
                            // S with PID 0 starts a frame: later packets start partitions 1 to 7.
                            (true, 0) => (true, 1),
                            bits => bits,
                        };
                        [vp8_descriptor(*shape, start, partition_index), part.to_vec()].concat()
                    })
                    .collect(),
            })
            .collect()
    }
}

/// One VP9 picture: a frame per spatial layer, each layer's size, and its P_DIFF count in
/// flexible mode.
#[derive(Debug, Clone)]
struct Vp9Picture {
    keyframe: bool,
    layers: Vec<Vec<u8>>,
    resolutions: Vec<(u16, u16)>,
    p_diffs: usize,
}

fn vp9_picture(max_layers: usize) -> impl Strategy<Value = Vp9Picture> {
    (any::<bool>(), vec((vec(any::<u8>(), 1..1500), 1..4096u16, 1..4096u16), 1..=max_layers), 1..=3usize).prop_map(
        |(keyframe, layers, p_diffs)| Vp9Picture {
            keyframe,
            resolutions: layers.iter().map(|(_, w, h)| (*w, *h)).collect(),
            layers: layers.into_iter().map(|(frame, _, _)| frame).collect(),
            p_diffs,
        },
    )
}

/// The VP9 descriptor choices of one stream, as libwebrtc makes them: a PictureID, layer indices
/// (needed for more than one spatial layer), flexible or not, an SS with every layer's size on
/// keyframes, and a picture group description in it or not.
#[derive(Debug, Clone, Copy)]
struct Vp9Shape {
    long_picture_id: bool,
    layer_indices: bool,
    flexible: bool,
    picture_group: bool,
    packet_size: usize,
}

/// How a VP9 stream is cut into packets: by rtc-rtp's payloader (flexible mode, no P and no SS,
/// so every picture looks like a keyframe of unknown size), or as libwebrtc does.
#[derive(Debug, Clone)]
enum Vp9Packetization {
    Payloader { mtu: usize, first_picture_id: u16 },
    Browser(Vp9Shape),
}

fn vp9_stream() -> impl Strategy<Value = (Vp9Packetization, Vec<Vp9Picture>)> {
    let payloader =
        (8..1200usize, 0..0x8000u16, vec(vp9_picture(1), 1..4)).prop_map(|(mtu, first_picture_id, pictures)| {
            (Vp9Packetization::Payloader { mtu, first_picture_id }, pictures)
        });
    let browser = (any::<(bool, bool, bool, bool)>(), 8..1200usize).prop_flat_map(
        |((long_picture_id, layer_indices, flexible, picture_group), packet_size)| {
            let shape = Vp9Shape { long_picture_id, layer_indices, flexible, picture_group, packet_size };
            let max_layers = if layer_indices { 3 } else { 1 };
            vec(vp9_picture(max_layers), 1..4).prop_map(move |pictures| (Vp9Packetization::Browser(shape), pictures))
        },
    );
    prop_oneof![payloader, browser]
}

impl Vp9Packetization {
    fn packetize(&self, pictures: &[Vp9Picture]) -> Vec<Vec<Vec<u8>>> {
        match self {
            Self::Payloader { mtu, first_picture_id } => {
                let first_picture_id = *first_picture_id;
                let mut payloader = Vp9Payloader::default();
                payloader.initial_picture_id_fn = Some(Arc::new(move || first_picture_id));
                pictures
                    .iter()
                    .map(|picture| {
                        let frame = Bytes::from(picture.layers.concat());
                        payloader.payload(*mtu, &frame).unwrap().iter().map(|p| p.to_vec()).collect()
                    })
                    .collect()
            }
            Self::Browser(shape) => pictures
                .iter()
                .enumerate()
                .map(|(n, picture)| vp9_browser_payloads(*shape, n as u16, picture))
                .collect(),
        }
    }
}

/// A picture's packets, each spatial layer's frame from a B packet to an E packet.
fn vp9_browser_payloads(shape: Vp9Shape, picture_id: u16, picture: &Vp9Picture) -> Vec<Vec<u8>> {
    let bit = |set: bool, mask: u8| if set { mask } else { 0 };
    let mut payloads = Vec::new();
    for (sid, frame) in picture.layers.iter().enumerate() {
        let parts: Vec<&[u8]> = frame.chunks(shape.packet_size).collect();
        for (i, part) in parts.iter().enumerate() {
            let (begins, ends) = (i == 0, i + 1 == parts.len());
            let predicted = !picture.keyframe;
            let scalability_structure = picture.keyframe && sid == 0 && begins;
            let mut d = vec![
                0x80 | bit(predicted, 0x40)
                    | bit(shape.layer_indices, 0x20)
                    | bit(shape.flexible, 0x10)
                    | bit(begins, 0x08)
                    | bit(ends, 0x04)
                    | bit(scalability_structure, 0x02),
            ];
            if shape.long_picture_id {
                d.extend_from_slice(&[0x80 | (picture_id >> 8) as u8 & 0x7f, picture_id as u8]);
            } else {
                d.push(picture_id as u8 & 0x7f);
            }
            if shape.layer_indices {
                // TID 0, U 0, SID, D: upper layers predict from the layer below.
                d.push((sid as u8) << 1 | u8::from(sid > 0));
                if !shape.flexible {
                    d.push(picture_id as u8);
                }
            }
            if shape.flexible && predicted {
                d.extend((0..picture.p_diffs).map(|k| (k as u8 + 1) << 1 | u8::from(k + 1 < picture.p_diffs)));
            }
            if scalability_structure {
                d.push(((picture.layers.len() - 1) as u8) << 5 | 0x10 | bit(shape.picture_group, 0x08));
                for (width, height) in &picture.resolutions {
                    d.extend_from_slice(&width.to_be_bytes());
                    d.extend_from_slice(&height.to_be_bytes());
                }
                if shape.picture_group {
                    // One picture in the group, TID 0, referencing the one before it.
                    d.extend_from_slice(&[1, 0x04, 1]);
                }
            }
            payloads.push([d, part.to_vec()].concat());
        }
    }
    payloads
}

/// `rbsp` escaped as NAL unit payload (H.264 §7.4.1): an emulation prevention byte wherever two
/// zeros precede a byte of 0 to 3, then a stop bit, so no start code appears inside.
fn escaped(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + 2);
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out.push(0x80);
    out
}

/// An access unit: maybe parameter sets, then slices (IDR or not), SEI and AUD NAL units.
fn access_unit() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let parameter_sets =
        select(vec![vec![], vec![SPS_640X480.to_vec(), PPS.to_vec()], vec![SPS_1280X720.to_vec(), PPS.to_vec()]]);
    let rbsp = prop_oneof![vec(any::<u8>(), 0..4), vec(any::<u8>(), 0..3000)];
    let unit = (select(vec![0x65u8, 0x41, 0x06, 0x09]), rbsp)
        .prop_map(|(header, rbsp)| [vec![header], escaped(&rbsp)].concat());
    (parameter_sets, vec(unit, 1..5)).prop_map(|(parameter_sets, units)| [parameter_sets, units].concat())
}

/// How an H.264 stream is cut into packets: by rtc-rtp's payloader (from Annex B), or per NAL unit
/// alone, aggregated with the next ones (STAP-A) or fragmented (FU-A), as browsers do.
#[derive(Debug, Clone)]
enum H264Packetization {
    Payloader { mtu: usize },
    Browser { shapes: Vec<(u8, usize)> },
}

fn h264_packetization() -> impl Strategy<Value = H264Packetization> {
    prop_oneof![
        (40..1200usize).prop_map(|mtu| H264Packetization::Payloader { mtu }),
        vec((0..3u8, 8..1400usize), 1..8).prop_map(|shapes| H264Packetization::Browser { shapes }),
    ]
}

impl H264Packetization {
    fn packetize(&self, access_units: &[Vec<Vec<u8>>]) -> Vec<Vec<Vec<u8>>> {
        let mut payloader = H264Payloader::default();
        access_units
            .iter()
            .map(|units| match self {
                Self::Payloader { mtu } => {
                    let annex_b: Vec<u8> = units.iter().flat_map(|unit| [&[0, 0, 0, 1][..], unit].concat()).collect();
                    payloader.payload(*mtu, &Bytes::from(annex_b)).unwrap().iter().map(|p| p.to_vec()).collect()
                }
                Self::Browser { shapes } => {
                    let mut payloads = Vec::new();
                    let mut i = 0;
                    while i < units.len() {
                        match shapes[i % shapes.len()] {
                            (1, _) => {
                                let end = (i + 3).min(units.len());
                                let group: Vec<&[u8]> = units[i..end].iter().map(Vec::as_slice).collect();
                                payloads.push(stap_a(&group));
                                i = end;
                                continue;
                            }
                            (2, size) if units[i].len() > 2 => payloads.extend(fu_a(&units[i], size)),
                            _ => payloads.push(units[i].clone()),
                        }
                        i += 1;
                    }
                    payloads
                }
            })
            // rtc-rtp's payloader holds back parameter sets and drops AUDs: it may send nothing.
            .filter(|payloads: &Vec<Vec<u8>>| !payloads.is_empty())
            .collect()
    }
}

/// What rtc-rtp makes of one payload sent alone as a whole frame; `None` if it is no partition
/// head, is rejected, or makes rtc-rtp panic (a STAP-A cut inside a size field does).
fn rtc_rtp_alone(codec: Codec, payload: &[u8]) -> Option<Vec<u8>> {
    fn alone<D: Depacketizer + Default>(payload: &Bytes) -> Option<Vec<u8>> {
        let mut d = D::default();
        if !d.is_partition_head(payload) {
            return None;
        }
        catch_unwind(AssertUnwindSafe(|| d.depacketize(payload))).ok()?.ok().map(|b| b.to_vec())
    }
    let payload = Bytes::copy_from_slice(payload);
    match codec {
        Codec::Vp8 => alone::<Vp8Packet>(&payload),
        Codec::Vp9 => alone::<Vp9Packet>(&payload),
        _ => alone::<H264Packet>(&payload),
    }
}

fn ours_alone(codec: Codec, payload: &[u8]) -> Result<Option<Frame>, PayloadError> {
    let p = packet(0, 0, true, payload.to_vec());
    match codec {
        Codec::Vp8 => Vp8Depacketizer::default().push(0, 0, &p),
        Codec::Vp9 => Vp9Depacketizer::default().push(0, 0, &p),
        _ => H264Depacketizer::default().push(0, 0, &p),
    }
}

/// Arbitrary bytes, or the start of an unusual but valid payload followed by arbitrary bytes.
fn hostile_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..48),
        (select(payload_prefixes()), vec(any::<u8>(), 0..32)).prop_map(|(start, tail)| [start, tail].concat()),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn vp8_frames_come_out_of_ours_as_out_of_rtc_rtps(
        frames in vec(vp8_frame(), 1..4),
        packetization in vp8_packetization(),
        first_sequence in any::<u16>(),
        first_timestamp in any::<u32>(),
    ) {
        let packets = rtp_stream(first_sequence, first_timestamp, &packetization.packetize(&frames));
        let mut d = Vp8Depacketizer::default();
        let ours = our_frames(|sequence, timestamp, p| d.push(sequence, timestamp, p), &packets);
        prop_assert!(ours.is_ok(), "{:?}", ours);
        let ours = ours.unwrap_or_default();
        let theirs = rtc_rtp_frames::<Vp8Packet>(Instance::PerPacket, &packets);
        prop_assert_eq!((ours.len(), theirs.len()), (frames.len(), frames.len()));
        for ((frame, ours), theirs) in frames.iter().zip(&ours).zip(&theirs) {
            prop_assert_eq!(ours.data.whole(), Some(&frame[..]));
            prop_assert_eq!(ours.keyframe, frame[0] & 0x01 == 0);
            match theirs {
                Reference::Frame(data) => prop_assert_eq!(data, frame),
                Reference::Rejected { payload, error: Error::ErrShortPacket }
                    if rtc_rtp_refuses_short_vp8(payload) => {}
                other => prop_assert!(false, "rtc-rtp: {:?}", other),
            }
        }
    }

    #[test]
    fn vp9_pictures_come_out_of_ours_as_out_of_rtc_rtps(
        (packetization, pictures) in vp9_stream(),
        first_sequence in any::<u16>(),
        first_timestamp in any::<u32>(),
    ) {
        let payloads = packetization.packetize(&pictures);
        let packets = rtp_stream(first_sequence, first_timestamp, &payloads);
        let mut d = Vp9Depacketizer::default();
        let ours = our_frames(|sequence, timestamp, p| d.push(sequence, timestamp, p), &packets);
        prop_assert!(ours.is_ok(), "{:?}", ours);
        let ours = ours.unwrap_or_default();
        let theirs = rtc_rtp_frames::<Vp9Packet>(Instance::PerPacket, &packets);
        prop_assert_eq!((ours.len(), theirs.len()), (pictures.len(), pictures.len()));
        for (((picture, payloads), ours), theirs) in pictures.iter().zip(&payloads).zip(&ours).zip(&theirs) {
            prop_assert_eq!(ours.data.whole(), Some(&picture.layers.concat()[..]));
            match theirs {
                Reference::Frame(data) => prop_assert_eq!(Some(&data[..]), ours.data.whole()),
                Reference::Rejected { payload, error: Error::ErrTooManyPDiff }
                    if rtc_rtp_refuses_vp9_descriptor(payload) => {}
                other => prop_assert!(false, "rtc-rtp: {:?}", other),
            }
            // rtc-rtp exposes the head packet's P flag and SS sizes: the keyframe flag and the
            // picture size must agree with them (the size is the top layer's).
            let mut head = Vp9Packet::default();
            let head_parsed = head.depacketize(&Bytes::copy_from_slice(&payloads[0])).is_ok();
            prop_assert!(head_parsed || !picture.keyframe);
            if head.v && head.y {
                let top = picture.layers.len() - 1;
                prop_assert_eq!(ours.dimensions, Some((head.width[top], head.height[top])));
                prop_assert_eq!(ours.dimensions, Some(picture.resolutions[top]));
            } else {
                prop_assert_eq!(ours.dimensions, None);
            }
            let browser = matches!(packetization, Vp9Packetization::Browser(_));
            prop_assert_eq!(ours.keyframe, !browser || picture.keyframe);
            prop_assert_eq!(ours.keyframe, !head.p);
        }
    }

    #[test]
    fn h264_access_units_come_out_of_ours_with_the_nal_units_of_rtc_rtps(
        access_units in vec(access_unit(), 1..5),
        packetization in h264_packetization(),
        first_sequence in any::<u16>(),
        first_timestamp in any::<u32>(),
    ) {
        let payloads = packetization.packetize(&access_units);
        let packets = rtp_stream(first_sequence, first_timestamp, &payloads);
        let mut d = H264Depacketizer::default();
        let ours = our_frames(|sequence, timestamp, p| d.push(sequence, timestamp, p), &packets);
        prop_assert!(ours.is_ok(), "{:?}", ours);
        let ours = ours.unwrap_or_default();
        let theirs = rtc_rtp_frames::<H264Packet>(Instance::PerStream, &packets);
        prop_assert_eq!((ours.len(), theirs.len()), (payloads.len(), payloads.len()));
        let (mut sps, mut pps) = (None, None);
        for (n, (ours, theirs)) in ours.iter().zip(&theirs).enumerate() {
            let our_units = ours.data.nal_units().unwrap_or_default();
            match theirs {
                // Ours puts the stream's latest SPS and PPS before a keyframe that lacks them;
                // otherwise the NAL units are the same.
                Reference::Frame(data) => {
                    let their_units = rtc_rtp_nal_units(data);
                    prop_assert!(our_units.ends_with(&their_units), "access unit {}", n);
                    for added in &our_units[..our_units.len() - their_units.len()] {
                        prop_assert!(ours.keyframe);
                        prop_assert!(Some(added) == sps.as_ref() || Some(added) == pps.as_ref());
                    }
                }
                Reference::Rejected { payload, error: Error::ErrShortPacket }
                    if rtc_rtp_refuses_short_h264(payload) => {}
                other => prop_assert!(false, "rtc-rtp: {:?}", other),
            }
            for unit in our_units {
                match unit[0] & 0x1f {
                    7 => sps = Some(unit.clone()),
                    8 => pps = Some(unit.clone()),
                    _ => {}
                }
            }
            let idr = our_units.iter().any(|unit| unit[0] & 0x1f == 5);
            prop_assert_eq!(ours.keyframe, idr && sps.is_some() && pps.is_some());
        }
        // Cut by hand, every NAL unit sent arrives, in order, in its access unit.
        if let H264Packetization::Browser { .. } = packetization {
            prop_assert_eq!(ours.len(), access_units.len());
            for (ours, units) in ours.iter().zip(&access_units) {
                prop_assert!(ours.data.nal_units().unwrap_or_default().ends_with(units));
            }
        }
    }
}

proptest! {
    // A single payload is cheap, and the payloads that tell the two apart are rare.
    #![proptest_config(ProptestConfig { cases: 4096, ..config() })]

    #[test]
    fn a_payload_rtc_rtp_rejects_never_becomes_a_frame_here(
        codec in select(vec![Codec::Vp8, Codec::Vp9, Codec::H264]),
        payload in hostile_payload(),
    ) {
        let ours = ours_alone(codec, &payload);
        let theirs = rtc_rtp_alone(codec, &payload);
        let Ok(Some(ours)) = ours else { return Ok(()) };
        let documented = match codec {
            Codec::Vp8 => rtc_rtp_refuses_short_vp8(&payload),
            Codec::Vp9 => rtc_rtp_refuses_vp9_descriptor(&payload) || rtc_rtp_misreads_vp9_ss(&payload),
            _ => rtc_rtp_refuses_short_h264(&payload),
        };
        match theirs {
            None => prop_assert!(documented, "ours made a frame of a payload rtc-rtp rejects: {:?}", payload),
            Some(theirs) if codec == Codec::H264 => {
                prop_assert_eq!(ours.data.nal_units().unwrap_or_default(), &rtc_rtp_nal_units(&theirs)[..])
            }
            Some(theirs) => {
                prop_assert!(ours.data.whole() == Some(&theirs[..]) || documented, "{:?}: {:?} vs {:?}", payload, ours.data, theirs)
            }
        }
    }
}

#[test]
fn rtc_rtp_parsers_carry_fields_from_one_packet_to_the_next() {
    let upstream_fixed = "rtc-rtp fixed this: update docs/architecture.md and Instance";
    // VP8: after an extended descriptor with a PictureID, a 1-byte descriptor (X = 0) is still
    // read as if I were set, so a byte of the frame is taken for a PictureID.
    let mut vp8 = Vp8Packet::default();
    vp8.depacketize(&Bytes::from_static(&[0x90, 0x80, 0x05, 0xaa])).unwrap();
    let body = vp8.depacketize(&Bytes::from_static(&[0x10, 0x01, 0x02, 0x03])).unwrap();
    assert_eq!(&body[..], [0x02, 0x03], "{upstream_fixed}");
    assert_eq!(
        ours_alone(Codec::Vp8, &[0x10, 0x01, 0x02, 0x03]).unwrap().unwrap().data.whole(),
        Some(&[0x01, 0x02, 0x03][..])
    );
    // VP9: P_DIFFs pile up across packets, so the third inter-predicted flexible-mode packet with
    // one P_DIFF each is refused as having too many.
    let mut vp9 = Vp9Packet::default();
    let one_p_diff = Bytes::from_static(&[0x40 | 0x10 | 0x08 | 0x04, 0x02, 0xee]);
    assert!(vp9.depacketize(&one_p_diff).is_ok() && vp9.depacketize(&one_p_diff).is_ok());
    assert!(vp9.depacketize(&one_p_diff).is_err(), "{upstream_fixed}");
}
