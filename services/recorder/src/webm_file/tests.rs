//! Writes files from synthetic VP8 and Opus frames and reads them back with an independent
//! Matroska reader (`matroska-demuxer`), so the checks are about the files, not about libwebm calls.

use std::fs;
use std::io::Cursor;
use std::path::Path;

use matroska_demuxer::{Frame as ReadFrame, MatroskaFile, TrackType};
use sha2::{Digest, Sha256};

use crate::test_dir::TempDir;

use super::{ParticipantFile, VideoCodec, rebuild};
use crate::media::{Frame, FrameData};
use crate::recording_file::{FileError, FinishedFile, MediaKind};

const MS: u64 = 1_000_000;
/// EBML ID of the Cues element.
const CUES_ID: [u8; 4] = [0x1c, 0x53, 0xbb, 0x6b];

/// A VP8 keyframe: frame tag (key_frame bit 0 = key, show_frame), start code, 14-bit sizes, filler.
fn vp8_keyframe(width: u16, height: u16) -> Frame {
    let tag: u32 = (1500 << 5) | (1 << 4);
    let mut data = tag.to_le_bytes()[..3].to_vec();
    data.extend_from_slice(&[0x9d, 0x01, 0x2a]);
    data.extend_from_slice(&width.to_le_bytes());
    data.extend_from_slice(&height.to_le_bytes());
    data.extend_from_slice(&[0x55; 1500]);
    Frame { data: FrameData::Whole(data), keyframe: true, rtp_timestamp: 0, dimensions: Some((width, height)) }
}

fn vp8_delta() -> Frame {
    let tag: u32 = (300 << 5) | (1 << 4) | 1;
    let mut data = tag.to_le_bytes()[..3].to_vec();
    data.extend_from_slice(&[0x33; 300]);
    Frame { data: FrameData::Whole(data), keyframe: false, rtp_timestamp: 0, dimensions: None }
}

/// A 20 ms Opus packet (TOC 0xfc: CELT fullband 20 ms, stereo) with filler.
fn opus_frame() -> Frame {
    let mut data = vec![0xfc];
    data.extend_from_slice(&[0x11; 80]);
    Frame { data: FrameData::Whole(data), keyframe: true, rtp_timestamp: 0, dimensions: None }
}

/// Frames of a call in the participant pipeline's order: audio every 20 ms from `audio_from_ns`,
/// video at 30 fps from `video_from_ns` with a keyframe every second, up to `until_ns`.
fn call(audio_from_ns: Option<u64>, video: Option<(u64, (u16, u16))>, until_ns: u64) -> Vec<(MediaKind, u64, Frame)> {
    let mut frames = Vec::new();
    if let Some(from) = audio_from_ns {
        frames.extend(
            (0..)
                .map(|n| from + n * 20 * MS)
                .take_while(|ns| *ns < until_ns)
                .map(|ns| (MediaKind::Audio, ns, opus_frame())),
        );
    }
    if let Some((from, (width, height))) = video {
        for k in (0..).take_while(|k| from + k * 1_000_000_000 / 30 < until_ns) {
            let frame = if k % 30 == 0 { vp8_keyframe(width, height) } else { vp8_delta() };
            frames.push((MediaKind::Video, from + k * 1_000_000_000 / 30, frame));
        }
    }
    frames.sort_by_key(|(_, ns, _)| *ns);
    frames
}

fn write_all(file: &mut ParticipantFile, frames: &[(MediaKind, u64, Frame)]) -> Vec<FinishedFile> {
    frames.iter().filter_map(|(kind, ns, frame)| file.write(*kind, *ns, frame).unwrap()).collect()
}

struct ReadTrack {
    codec_id: String,
    kind: TrackType,
    video_size: Option<(u64, u64)>,
    /// (sampling frequency, channels)
    audio: Option<(f64, u64)>,
    codec_private: Option<Vec<u8>>,
}

struct ReadBack {
    doc_type: String,
    tracks: Vec<ReadTrack>,
    /// (track number, timestamp ms, keyframe), in file order.
    blocks: Vec<(u64, u64, Option<bool>)>,
    duration_ms: Option<f64>,
    has_cues: bool,
}

impl ReadBack {
    fn track(&self, codec_id: &str) -> &ReadTrack {
        self.tracks.iter().find(|t| t.codec_id == codec_id).unwrap()
    }

    fn track_number(&self, codec_id: &str) -> u64 {
        let index = self.tracks.iter().position(|t| t.codec_id == codec_id).unwrap();
        index as u64 + 1
    }
}

/// Reads what can be read; a truncated last block ends the reading rather than failing it.
fn read_back(bytes: Vec<u8>) -> ReadBack {
    let has_cues = bytes.windows(4).any(|w| w == CUES_ID);
    let mut mkv = MatroskaFile::open(Cursor::new(bytes)).expect("the header and tracks must parse");
    let tracks = mkv
        .tracks()
        .iter()
        .map(|t| ReadTrack {
            codec_id: t.codec_id().to_string(),
            kind: t.track_type(),
            video_size: t.video().map(|v| (v.pixel_width().get(), v.pixel_height().get())),
            audio: t.audio().map(|a| (a.sampling_frequency(), a.channels().get())),
            codec_private: t.codec_private().map(<[u8]>::to_vec),
        })
        .collect();
    let mut blocks = Vec::new();
    let mut frame = ReadFrame::default();
    while let Ok(true) = mkv.next_frame(&mut frame) {
        blocks.push((frame.track, frame.timestamp, frame.is_keyframe));
    }
    ReadBack {
        doc_type: mkv.ebml_header().doc_type().to_string(),
        tracks,
        blocks,
        duration_ms: mkv.info().duration(),
        has_cues,
    }
}

fn sha256_hex(path: &Path) -> String {
    Sha256::digest(fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

fn assert_monotonic(blocks: &[(u64, u64, Option<bool>)]) {
    assert!(blocks.windows(2).all(|w| w[0].1 <= w[1].1), "block timestamps must never decrease");
}

#[test]
fn a_three_second_call_reads_back_as_webm_with_both_tracks_cues_and_duration() {
    let dir = TempDir::new("webm-call");
    let path = dir.join("alice.webm");
    let mut file = ParticipantFile::create(&path, VideoCodec::Vp8, true).unwrap();
    // Two delta frames before the first keyframe cannot be decoded and are dropped.
    file.write(MediaKind::Video, 0, &vp8_delta()).unwrap();
    file.write(MediaKind::Video, 0, &vp8_delta()).unwrap();
    let frames = call(Some(0), Some((100 * MS, (640, 480))), 3_070 * MS);
    assert!(write_all(&mut file, &frames).is_empty());
    assert_eq!(file.dropped_frames(), 2);
    let finished = file.finish().unwrap().unwrap();

    let read = read_back(fs::read(&path).unwrap());
    assert_eq!(read.doc_type, "webm");
    assert_eq!(read.tracks.len(), 2);
    let (vp8, opus) = (read.track_number("V_VP8"), read.track_number("A_OPUS"));
    let video = read.track("V_VP8");
    assert_eq!((video.kind, video.video_size), (TrackType::Video, Some((640, 480))));
    let audio = read.track("A_OPUS");
    assert_eq!((audio.kind, audio.audio), (TrackType::Audio, Some((48_000.0, 2))));
    let opus_head = audio.codec_private.as_deref().unwrap();
    assert_eq!((opus_head.len(), &opus_head[..8], opus_head[9]), (19, &b"OpusHead"[..], 2));

    assert_eq!(read.blocks.iter().filter(|b| b.0 == opus).count(), 154);
    assert_eq!(read.blocks.iter().filter(|b| b.0 == vp8).count(), 90);
    assert_eq!(read.blocks.iter().filter(|b| b.0 == vp8 && b.2 == Some(true)).count(), 3);
    assert_eq!(read.blocks.iter().find(|b| b.0 == vp8).unwrap().2, Some(true), "video starts at a keyframe");
    assert_eq!(read.blocks[0].1, 0, "the file starts at zero");
    assert_monotonic(&read.blocks);
    assert!(read.has_cues);
    let duration_ms = read.duration_ms.unwrap();
    assert!((2_950.0..3_100.0).contains(&duration_ms), "Duration {duration_ms} ms");

    assert_eq!(finished.path, path);
    assert_eq!(finished.codecs, ["vp8", "opus"]);
    assert_eq!(finished.dimensions, Some((640, 480)));
    assert!((2_950..3_100).contains(&finished.duration_ms), "duration_ms {}", finished.duration_ms);
    assert_eq!(finished.bytes, fs::metadata(&path).unwrap().len());
    assert_eq!(finished.sha256, sha256_hex(&path));
}

#[test]
fn a_file_cut_off_as_by_a_crash_still_reads_up_to_its_last_second() {
    let dir = TempDir::new("webm-crash");
    let path = dir.join("bob.webm");
    let mut file = ParticipantFile::create(&path, VideoCodec::Vp8, true).unwrap();
    // One keyframe only: libwebm then keeps a single open cluster, so only the writer's own
    // flushes (not cluster ends) put bytes on disk.
    let mut frames = call(Some(0), Some((0, (320, 240))), 3_500 * MS);
    for (kind, ns, frame) in &mut frames {
        if *kind == MediaKind::Video && *ns > 0 {
            *frame = vp8_delta();
        }
    }
    write_all(&mut file, &frames);
    // What a `kill -9` would leave: only the bytes handed to the OS so far.
    let crashed = fs::read(&path).unwrap();
    drop(file);

    let read = read_back(crashed);
    assert_eq!(read.doc_type, "webm");
    assert_eq!(read.tracks.len(), 2);
    assert!(!read.has_cues);
    assert_monotonic(&read.blocks);
    let last_ms = read.blocks.last().unwrap().1;
    assert!(last_ms >= 2_400, "only {last_ms} ms of 3500 ms survived");
    assert!(read.blocks.iter().any(|b| b.1 >= 2_000 && b.0 == read.track_number("V_VP8")));
}

#[test]
fn a_crashed_file_is_rebuilt_in_place_with_cues_and_duration_and_every_frame_it_held() {
    let dir = TempDir::new("webm-rebuild");
    let path = dir.join("dave.webm");
    let mut file = ParticipantFile::create(&path, VideoCodec::Vp8, true).unwrap();
    write_all(&mut file, &call(Some(0), Some((0, (320, 240))), 3_500 * MS));
    // What a `kill -9` leaves: the bytes handed to the OS so far, no Cues, no Duration.
    let crashed = fs::read(&path).unwrap();
    drop(file);
    fs::write(&path, &crashed).unwrap();
    let before = read_back(crashed);
    assert!(!before.has_cues && before.blocks.len() > 100);

    let rebuilt = rebuild(&path).unwrap().unwrap();
    let after = read_back(fs::read(&path).unwrap());
    assert!(after.has_cues);
    assert_eq!(after.blocks, before.blocks, "the same frames, at the same times");
    assert_eq!(after.track("V_VP8").video_size, Some((320, 240)));
    let last_ms = before.blocks.last().unwrap().1;
    let duration_ms = after.duration_ms.unwrap();
    assert!((last_ms as f64..last_ms as f64 + 40.0).contains(&duration_ms), "{duration_ms} vs {last_ms}");
    assert_eq!((rebuilt.path.clone(), rebuilt.codecs.clone()), (path.clone(), vec!["vp8", "opus"]));
    assert_eq!(rebuilt.sha256, sha256_hex(&path));
    assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 1, "no temporary file is left");
}

#[test]
fn a_crashed_file_whose_header_never_reached_the_disk_is_refused() {
    let dir = TempDir::new("webm-rebuild-headless");
    let path = dir.join("erin.webm");
    let mut file = ParticipantFile::create(&path, VideoCodec::Vp8, true).unwrap();
    file.write(MediaKind::Video, 0, &vp8_keyframe(320, 240)).unwrap();
    let crashed = fs::read(&path).unwrap();
    drop(file);
    fs::write(&path, crashed).unwrap();
    assert!(matches!(rebuild(&path), Err(FileError::Mux(_))));
    fs::write(&path, b"not a webm file").unwrap();
    assert!(matches!(rebuild(&path), Err(FileError::Mux(_))));
}

#[test]
fn a_new_resolution_finishes_the_file_and_continues_in_a_numbered_one() {
    let dir = TempDir::new("webm-resize");
    let path = dir.join("carol.webm");
    let mut file = ParticipantFile::create(&path, VideoCodec::Vp8, true).unwrap();
    let mut frames = call(Some(0), Some((0, (640, 480))), 1_500 * MS);
    frames.extend(call(Some(1_500 * MS), Some((1_500 * MS, (320, 240))), 2_500 * MS));

    let finished = write_all(&mut file, &frames);
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].path, path);
    assert_eq!(finished[0].dimensions, Some((640, 480)));
    assert_eq!(file.current_path(), dir.join("carol-2.webm"));
    let second = file.finish().unwrap().unwrap();
    assert_eq!((second.path.clone(), second.dimensions), (dir.join("carol-2.webm"), Some((320, 240))));

    let first_read = read_back(fs::read(&path).unwrap());
    assert_eq!(first_read.track("V_VP8").video_size, Some((640, 480)));
    // The audio frame at 1.5 s comes before the new keyframe, so it still goes to the first file.
    assert_eq!(first_read.blocks.len(), 75 + 45 + 1);
    let second_read = read_back(fs::read(&second.path).unwrap());
    assert_eq!(second_read.track("V_VP8").video_size, Some((320, 240)));
    assert_eq!(second_read.blocks.len(), 49 + 30);
    assert_eq!(second_read.blocks[0].1, 0);
    assert!(second_read.has_cues);
    assert_eq!(second.sha256, sha256_hex(&second.path));
    assert!((950..1_050).contains(&second.duration_ms));
}

#[test]
fn a_participant_without_video_gets_an_audio_only_file() {
    let dir = TempDir::new("webm-audio");
    let path = dir.join("dave.webm");
    let mut file = ParticipantFile::create(&path, VideoCodec::Vp9, true).unwrap();
    write_all(&mut file, &call(Some(500 * MS), None, 4_500 * MS));
    let finished = file.finish().unwrap().unwrap();
    assert_eq!((finished.codecs.clone(), finished.dimensions), (vec!["opus"], None));

    let read = read_back(fs::read(&path).unwrap());
    assert_eq!(read.tracks.len(), 1);
    assert_eq!((read.tracks[0].codec_id.as_str(), read.tracks[0].kind), ("A_OPUS", TrackType::Audio));
    assert_eq!(read.blocks.len(), 200, "audio held while waiting for video is kept");
    assert_monotonic(&read.blocks);
    assert!((3_950..4_000).contains(&finished.duration_ms), "duration_ms {}", finished.duration_ms);
}

#[test]
fn a_participant_who_sent_nothing_leaves_no_file() {
    let dir = TempDir::new("webm-empty");
    let path = dir.join("erin.webm");
    let file = ParticipantFile::create(&path, VideoCodec::Vp8, true).unwrap();
    assert!(file.finish().unwrap().is_none());
    assert!(!path.exists());
}

#[test]
fn an_unwritable_path_is_an_error() {
    let dir = TempDir::new("webm-unwritable");
    let result = ParticipantFile::create(dir.join("missing-dir").join("frank.webm"), VideoCodec::Vp8, true);
    assert!(matches!(result, Err(FileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound));
}

#[test]
fn a_full_disk_is_an_error_not_a_panic() {
    let Ok(mut file) = ParticipantFile::create("/dev/full", VideoCodec::Vp8, true) else { return };
    let error = call(Some(0), Some((0, (640, 480))), 3_000 * MS)
        .iter()
        .find_map(|(kind, ns, frame)| file.write(*kind, *ns, frame).err())
        .expect("writing to a full disk must fail");
    assert!(matches!(&error, FileError::Io(e) if e.kind() == std::io::ErrorKind::StorageFull), "{error}");
}
