//! Writes files from synthetic access units (a real 320x240 High-profile SPS and PPS from libx264,
//! filler slices) and G.711 packets, then reads them back twice: element by element, to check the
//! layout that makes a finished file seekable (SeekHead, Segment size, Cues pointing at keyframe
//! clusters), and with an independent Matroska reader (`matroska-demuxer`) for tracks and frames.
//! `tests/camera_mkv.rs` has FFmpeg judge files made from a real encoded clip.

use std::fs;
use std::io::Cursor;

use matroska_demuxer::{Frame as ReadFrame, MatroskaFile, TrackType};

use crate::test_dir::TempDir;

use super::ebml::{self, id};
use super::h264::{self, DecoderConfig};
use super::{CameraFile, G711};

const MS: u64 = 1_000_000;
const SPS: &str = "6764000cacb20283f60220000003002000000303c1e28549";
const PPS: &str = "68ebc3cb22c0";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// An access unit's NAL units as the depacketizer gives them: SPS and PPS before an IDR slice.
fn keyframe() -> Vec<Vec<u8>> {
    vec![hex(SPS), hex(PPS), [vec![0x65, 0x88], vec![0x11; 500]].concat()]
}

/// A non-IDR slice.
fn delta() -> Vec<Vec<u8>> {
    vec![[vec![0x41, 0x9a], vec![0x22; 100]].concat()]
}

/// The size of an access unit in a Matroska block: each NAL unit behind a 4-byte length.
fn block_size(nal_units: &[Vec<u8>]) -> usize {
    nal_units.iter().map(|unit| unit.len() + 4).sum()
}

/// An element of `bytes`: (ID, payload start, payload end), sizes known.
fn children(bytes: &[u8], from: usize, to: usize) -> Vec<(u32, usize, usize)> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let id_len = bytes[at].leading_zeros() as usize + 1;
        let element_id = bytes[at..at + id_len].iter().fold(0u32, |v, b| (v << 8) | u32::from(*b));
        at += id_len;
        let size_len = bytes[at].leading_zeros() as usize + 1;
        let size = bytes[at..at + size_len].iter().fold(0u64, |v, b| (v << 8) | u64::from(*b))
            & ((1u64 << (7 * size_len)) - 1);
        at += size_len;
        let end = at + size as usize;
        out.push((element_id, at, end));
        at = end;
    }
    out
}

fn child(bytes: &[u8], of: (usize, usize), wanted: u32) -> (usize, usize) {
    let (_, start, end) =
        *children(bytes, of.0, of.1).iter().find(|(i, _, _)| *i == wanted).unwrap_or_else(|| panic!("no {wanted:x}"));
    (start, end)
}

fn uint_at(bytes: &[u8], (start, end): (usize, usize)) -> u64 {
    bytes[start..end].iter().fold(0, |v, b| (v << 8) | u64::from(*b))
}

/// Ten seconds of a camera: a keyframe every 2 s, 10 fps, 20 ms audio packets, in time order.
fn write_camera(file: &mut CameraFile, origin_ns: u64) {
    for n in 0..500u64 {
        let ns = origin_ns + n * 20 * MS;
        if n % 5 == 0 {
            let unit = if n % 100 == 0 { keyframe() } else { delta() };
            assert!(file.write_video(ns, &unit).unwrap());
        }
        assert!(file.write_audio(ns, &[0xd5; 160]).unwrap());
    }
}

#[test]
fn sizes_use_the_shortest_form_and_voids_fill_exactly_what_they_reserve() {
    assert_eq!(ebml::size(0), [0x80]);
    assert_eq!(ebml::size(126), [0xfe]);
    assert_eq!(ebml::size(127), [0x40, 0x7f]);
    assert_eq!(ebml::sized(5, 8), [0x01, 0, 0, 0, 0, 0, 0, 5]);
    assert_eq!(ebml::uint(id::TRACK_NUMBER, 0), [0xd7, 0x81, 0]);
    assert_eq!(ebml::uint(id::TIMESTAMP_SCALE, 1_000_000), [0x2a, 0xd7, 0xb1, 0x83, 0x0f, 0x42, 0x40]);
    for total in [2, 11, 28, 128, 129, 300] {
        let void = ebml::void(total);
        assert_eq!(void.len(), total);
        assert_eq!(children(&void, 0, total), [(id::VOID, total - void_payload(total), total)]);
    }
}

fn void_payload(total: usize) -> usize {
    if total - 2 <= 126 { total - 2 } else { total - 9 }
}

#[test]
fn nal_units_become_length_prefixed_and_the_first_sps_and_pps_an_avcc_record() {
    let access_unit = [keyframe(), vec![Vec::new()], delta()].concat();
    let units = h264::non_empty(&access_unit);
    assert_eq!(units.iter().map(|u| u[0] & 0x1f).collect::<Vec<_>>(), [7, 8, 5, 1], "an empty unit is skipped");
    assert!(h264::is_keyframe(&units));
    assert!(!h264::is_keyframe(&h264::non_empty(&delta())));
    let prefixed = h264::length_prefixed(&units);
    assert_eq!(prefixed[..4], 24u32.to_be_bytes());
    assert_eq!(prefixed[4..28], hex(SPS));

    let config = DecoderConfig::from_units(&units).unwrap();
    assert_eq!((config.width, config.height), (320, 240));
    let avcc = &config.avcc;
    assert_eq!(avcc[..6], [1, 0x64, 0x00, 0x0c, 0xff, 0xe1]);
    assert_eq!(avcc[6..8], 24u16.to_be_bytes());
    assert_eq!(avcc[8..32], hex(SPS));
    assert_eq!(avcc[32..35], [1, 0, 6]);
    assert_eq!(avcc[35..41], hex(PPS));
    // High profile: 4:2:0, 8-bit, no SPS extensions.
    assert_eq!(avcc[41..], [0xfd, 0xf8, 0xf8, 0]);
    assert_eq!(DecoderConfig::from_units(&h264::non_empty(&delta())), None);
}

#[test]
fn a_finished_file_has_a_seek_head_its_segment_size_and_cues_at_each_keyframe_cluster() {
    let dir = TempDir::new("mkv-unit-layout");
    let path = dir.join("camera.mkv");
    let mut file = CameraFile::create(&path, Some(G711::MuLaw)).unwrap();
    write_camera(&mut file, 3_000 * MS);
    let finished = file.finish().unwrap().unwrap();
    assert_eq!(finished.duration_ms, 9_980);
    let bytes = fs::read(&path).unwrap();

    let top = children(&bytes, 0, bytes.len());
    assert_eq!(top.iter().map(|e| e.0).collect::<Vec<_>>(), [id::EBML, id::SEGMENT], "the Segment's size is known");
    let header = (top[0].1, top[0].2);
    let doc_type = child(&bytes, header, id::DOC_TYPE);
    assert_eq!(&bytes[doc_type.0..doc_type.1], b"matroska");
    let segment = (top[1].1, top[1].2);
    assert_eq!(segment.1, bytes.len());
    let elements = children(&bytes, segment.0, segment.1);
    let ids: Vec<u32> = elements.iter().map(|e| e.0).filter(|i| *i != id::CLUSTER).collect();
    assert_eq!(ids, [id::SEEK_HEAD, id::VOID, id::INFO, id::TRACKS, id::CUES]);
    let clusters: Vec<_> = elements.iter().filter(|e| e.0 == id::CLUSTER).collect();
    assert_eq!(clusters.len(), 5, "one cluster per keyframe");

    // Each SeekHead entry points at the element it names, counted from the Segment's payload.
    let seek_head = (elements[0].1, elements[0].2);
    for (_, start, end) in children(&bytes, seek_head.0, seek_head.1) {
        let target = child(&bytes, (start, end), id::SEEK_ID);
        let position = uint_at(&bytes, child(&bytes, (start, end), id::SEEK_POSITION)) as usize;
        assert_eq!(
            bytes[target.0..target.1],
            bytes[segment.0 + position..segment.0 + position + (target.1 - target.0)]
        );
    }

    // One cue per cluster, each at a cluster that opens with a video keyframe at the cue's time.
    let cues = elements.iter().find(|e| e.0 == id::CUES).unwrap();
    let points = children(&bytes, cues.1, cues.2);
    assert_eq!(points.len(), 5);
    for (n, (_, start, end)) in points.iter().enumerate() {
        assert_eq!(uint_at(&bytes, child(&bytes, (*start, *end), id::CUE_TIME)), n as u64 * 2_000);
        let positions = child(&bytes, (*start, *end), id::CUE_TRACK_POSITIONS);
        assert_eq!(uint_at(&bytes, child(&bytes, positions, id::CUE_TRACK)), 1);
        let at = segment.0 + uint_at(&bytes, child(&bytes, positions, id::CUE_CLUSTER_POSITION)) as usize;
        let cluster = children(&bytes, at, bytes.len())[0];
        assert_eq!(cluster.0, id::CLUSTER);
        let blocks = children(&bytes, cluster.1, cluster.2);
        assert_eq!(uint_at(&bytes, (blocks[0].1, blocks[0].2)), n as u64 * 2_000, "the cluster's time");
        let first = blocks[1];
        assert_eq!((first.0, bytes[first.1], bytes[first.1 + 3]), (id::SIMPLE_BLOCK, 0x81, 0x80), "a video keyframe");
    }
}

#[test]
fn tracks_and_frames_read_back_with_an_independent_reader() {
    let dir = TempDir::new("mkv-unit-read-back");
    let path = dir.join("camera.mkv");
    let mut file = CameraFile::create(&path, Some(G711::ALaw)).unwrap();
    write_camera(&mut file, 0);
    let finished = file.finish().unwrap().unwrap();
    assert_eq!(finished.codecs, ["h264", "pcm_alaw"]);

    let mut read = MatroskaFile::open(Cursor::new(fs::read(&path).unwrap())).unwrap();
    assert_eq!(read.info().timestamp_scale().get(), MS);
    assert_eq!(read.info().duration(), Some(9_980.0));
    let tracks = read.tracks();
    assert_eq!(tracks[0].track_type(), TrackType::Video);
    assert_eq!(tracks[0].codec_id(), "V_MPEG4/ISO/AVC");
    assert_eq!(tracks[0].codec_private().unwrap()[..4], [1, 0x64, 0x00, 0x0c]);
    let video = tracks[0].video().unwrap();
    assert_eq!((video.pixel_width().get(), video.pixel_height().get()), (320, 240));
    assert_eq!(tracks[1].track_type(), TrackType::Audio);
    assert_eq!(tracks[1].codec_id(), "A_MS/ACM");
    let wave = tracks[1].codec_private().unwrap();
    assert_eq!(wave[..8], [6, 0, 1, 0, 0x40, 0x1f, 0, 0], "A-law, mono, 8000 Hz");
    assert_eq!(tracks[1].audio().unwrap().sampling_frequency(), 8_000.0);

    let mut frame = ReadFrame::default();
    let mut video_frames = Vec::new();
    let mut audio_frames = 0;
    while read.next_frame(&mut frame).unwrap() {
        if frame.track == 1 {
            video_frames.push((frame.timestamp, frame.is_keyframe == Some(true), frame.data.len()));
        } else {
            audio_frames += 1;
            assert_eq!(frame.data, [0xd5; 160]);
        }
    }
    assert_eq!(audio_frames, 500);
    assert_eq!(video_frames.len(), 100);
    assert_eq!(video_frames[0], (0, true, block_size(&keyframe())), "each NAL unit behind a 4-byte length");
    assert_eq!(video_frames[1], (100, false, block_size(&delta())));
    assert_eq!(video_frames.iter().filter(|f| f.1).map(|f| f.0).collect::<Vec<_>>(), [0, 2_000, 4_000, 6_000, 8_000]);
}

#[test]
fn the_file_starts_at_the_first_keyframe_and_a_file_without_one_is_removed() {
    let dir = TempDir::new("mkv-unit-no-keyframe");
    let path = dir.join("camera.mkv");
    let mut file = CameraFile::create(&path, Some(G711::MuLaw)).unwrap();
    assert!(!file.write_audio(0, &[0; 160]).unwrap());
    assert!(!file.write_video(10 * MS, &delta()).unwrap());
    assert_eq!(file.dropped_frames(), 2);
    assert!(path.exists(), "created at once");
    assert_eq!(file.finish().unwrap(), None);
    assert!(!path.exists());
}

#[test]
fn without_keyframes_a_cluster_closes_after_five_seconds_and_only_keyframe_clusters_get_cues() {
    let dir = TempDir::new("mkv-unit-long-gop");
    let path = dir.join("camera.mkv");
    let mut file = CameraFile::create(&path, None).unwrap();
    for n in 0..120u64 {
        let unit = if n == 0 { keyframe() } else { delta() };
        assert!(file.write_video(n * 100 * MS, &unit).unwrap());
    }
    // Going back in time is refused.
    assert!(!file.write_video(0, &delta()).unwrap());
    file.finish().unwrap().unwrap();
    let bytes = fs::read(&path).unwrap();
    let segment = children(&bytes, 0, bytes.len())[1];
    let elements = children(&bytes, segment.1, segment.2);
    let cluster_times: Vec<u64> = elements
        .iter()
        .filter(|e| e.0 == id::CLUSTER)
        .map(|e| uint_at(&bytes, child(&bytes, (e.1, e.2), id::TIMESTAMP)))
        .collect();
    assert_eq!(cluster_times, [0, 5_100, 10_200]);
    let cues = elements.iter().find(|e| e.0 == id::CUES).unwrap();
    assert_eq!(children(&bytes, cues.1, cues.2).len(), 1);
}
