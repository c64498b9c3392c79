//! A camera's recording as FFmpeg sees it: an H.264 clip and PCMU audio made by ffmpeg at test
//! time, cut into access units and 20 ms packets the way the ingest forwards them, written by
//! `CameraFile`, and judged by ffprobe and a full decode, independent of the writer's own code;
//! and a crashed file as `mkv_file::rebuild` finishes it.

use std::fs;
use std::path::{Path, PathBuf};

use confab_recorder::mkv_file::{self, CameraFile, G711};
use serde_json::Value;

mod support;

use support::TempDir;
use support::camera::{AUDIO_PACKET, AccessUnit, run_tool};

const FPS: u64 = 15;
const SECONDS: u64 = 3;

/// The test clip: `SECONDS` of 320×240 H.264 at `FPS` with a keyframe a second, and PCMU.
fn camera_clip(dir: &TempDir) -> (Vec<AccessUnit>, Vec<u8>) {
    support::camera::clip(&dir.0, FPS, SECONDS)
}

/// Writes the clip's first `until_ns` of media in timestamp order: video at `FPS`, audio every
/// 20 ms, video first on a tie.
fn write_clip(file: &mut CameraFile, video: &[AccessUnit], audio: &[u8], until_ns: u64) {
    enum Media<'a> {
        Video(&'a AccessUnit),
        Audio(&'a [u8]),
    }
    let mut frames: Vec<(u64, Media)> =
        video.iter().enumerate().map(|(n, unit)| (n as u64 * 1_000_000_000 / FPS, Media::Video(unit))).collect();
    frames.extend(
        audio.chunks(AUDIO_PACKET).enumerate().map(|(n, samples)| (n as u64 * 20_000_000, Media::Audio(samples))),
    );
    frames.sort_by_key(|(ns, media)| (*ns, matches!(media, Media::Audio(_))));
    // The camera's clock does not start at zero.
    let base_ns = 7_000_000_000;
    for (ns, media) in frames.into_iter().filter(|(ns, _)| *ns < until_ns) {
        let written = match media {
            Media::Video(nal_units) => file.write_video(base_ns + ns, nal_units).unwrap(),
            Media::Audio(samples) => file.write_audio(base_ns + ns, samples).unwrap(),
        };
        assert!(written, "a frame at {ns} ns was dropped");
    }
}

/// Stream and packet facts, as ffprobe reads them.
struct Probe {
    json: Value,
}

impl Probe {
    fn of(file: &Path) -> Self {
        let entries = "stream=index,codec_type,codec_name,width,height,sample_rate,channels:format=format_name,duration\
                       :packet=stream_index,pts_time,flags";
        let (json, _) =
            run_tool("ffprobe", &["-v", "error", "-show_entries", entries, "-of", "json", file.to_str().unwrap()]);
        Self { json: serde_json::from_str(&json).unwrap() }
    }

    fn stream(&self, kind: &str) -> &Value {
        let streams = self.json["streams"].as_array().expect("streams");
        streams.iter().find(|s| s["codec_type"] == kind).unwrap_or_else(|| panic!("no {kind} stream"))
    }

    /// Presentation times of the packets of the `kind` stream, in seconds.
    fn packet_times(&self, kind: &str) -> Vec<f64> {
        let index = &self.stream(kind)["index"];
        let packets = self.json["packets"].as_array().expect("packets");
        packets
            .iter()
            .filter(|p| p["stream_index"] == *index)
            .map(|p| p["pts_time"].as_str().unwrap().parse().unwrap())
            .collect()
    }
}

/// What ffmpeg prints when it decodes the whole file (nothing, for a good file).
fn decode_errors(file: &Path) -> String {
    run_tool("ffmpeg", &["-v", "error", "-i", file.to_str().unwrap(), "-f", "null", "-"]).1
}

#[test]
fn a_camera_with_pcmu_is_recorded_into_a_matroska_file_that_plays_and_seeks() {
    let dir = TempDir::new("mkv-finished");
    let (video, audio) = camera_clip(&dir);
    assert_eq!(video.len() as u64, FPS * SECONDS, "the clip's access units");
    let path = dir.join("camera.mkv");
    let mut file = CameraFile::create(&path, Some(G711::MuLaw)).unwrap();
    write_clip(&mut file, &video, &audio, u64::MAX);
    let finished = file.finish().unwrap().expect("a finished file");

    assert_eq!(finished.codecs, ["h264", "pcm_mulaw"]);
    assert_eq!(finished.dimensions, Some((320, 240)));
    assert_eq!(finished.bytes, fs::metadata(&path).unwrap().len());
    assert!((2_900..=3_000).contains(&finished.duration_ms), "duration {} ms", finished.duration_ms);

    let probe = Probe::of(&path);
    assert_eq!(probe.json["format"]["format_name"], "matroska,webm");
    let duration: f64 = probe.json["format"]["duration"].as_str().expect("a Duration").parse().unwrap();
    assert!((2.9..=3.1).contains(&duration), "duration {duration} s");
    let v = probe.stream("video");
    assert_eq!(
        (v["codec_name"].as_str(), v["width"].as_u64(), v["height"].as_u64()),
        (Some("h264"), Some(320), Some(240))
    );
    let a = probe.stream("audio");
    assert_eq!(
        (a["codec_name"].as_str(), a["sample_rate"].as_str(), a["channels"].as_u64()),
        (Some("pcm_mulaw"), Some("8000"), Some(1))
    );
    let video_times = probe.packet_times("video");
    assert_eq!(video_times.len(), video.len());
    assert_eq!(video_times[0], 0.0, "the file starts at the first keyframe");
    assert_eq!(probe.packet_times("audio").len(), audio.len() / AUDIO_PACKET);
    assert_eq!(decode_errors(&path), "");

    // Reading from 2 s starts at the keyframe there.
    let (frames, _) = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-read_intervals",
            "2%+#1",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
            path.to_str().unwrap(),
        ],
    );
    assert!(frames.starts_with("2.000000,K"), "the first packet read from 2 s: {frames}");
}

/// Writes 2.5 s of the camera clip into `camera.mkv` (the clusters starting at 0 s and 1 s are
/// complete, the one at 2 s is still open) and copies what a kill -9 would leave, whatever had
/// reached the OS, to `crashed.mkv`; then drops the writer. Both paths.
fn killed_at_2_5_s(dir: &TempDir) -> (PathBuf, PathBuf) {
    let (video, audio) = camera_clip(dir);
    let path = dir.join("camera.mkv");
    let mut file = CameraFile::create(&path, Some(G711::MuLaw)).unwrap();
    write_clip(&mut file, &video, &audio, 2_500_000_000);
    let crashed = dir.join("crashed.mkv");
    fs::copy(&path, &crashed).unwrap();
    drop(file);
    (path, crashed)
}

#[test]
fn a_recorder_killed_mid_recording_leaves_a_file_that_plays_up_to_its_last_cluster() {
    let dir = TempDir::new("mkv-crashed");
    let (path, crashed) = killed_at_2_5_s(&dir);
    // Everything the OS has is whole clusters: nothing was left in a buffer for the drop to write.
    assert!(fs::read(&path).unwrap() == fs::read(&crashed).unwrap(), "dropping the writer wrote more");

    let probe = Probe::of(&crashed);
    assert_eq!(probe.stream("video")["codec_name"], "h264");
    assert_eq!(probe.stream("audio")["codec_name"], "pcm_mulaw");
    let video_times = probe.packet_times("video");
    assert_eq!(video_times.len() as u64, 2 * FPS, "every frame of the first two seconds");
    assert!(video_times.iter().all(|t| *t < 2.0));
    assert_eq!(probe.packet_times("audio").len(), 100, "every audio packet of the first two seconds");
    assert_eq!(decode_errors(&crashed), "");
}

#[test]
fn a_crashed_file_is_rebuilt_in_place_into_a_finished_file_that_seeks() {
    let dir = TempDir::new("mkv-rebuilt");
    let (_, crashed) = killed_at_2_5_s(&dir);
    assert!(Probe::of(&crashed).json["format"]["duration"].is_null(), "a crashed file has no Duration");

    let rebuilt = mkv_file::rebuild(&crashed).unwrap().expect("frames to rebuild");
    assert_eq!(rebuilt.path, crashed, "rebuilt in place");
    assert_eq!(rebuilt.content_type, "video/x-matroska");
    assert_eq!(rebuilt.codecs, ["h264", "pcm_mulaw"]);
    assert_eq!(rebuilt.dimensions, Some((320, 240)));
    assert_eq!(rebuilt.bytes, fs::metadata(&crashed).unwrap().len());
    assert!(!dir.join("crashed.mkv.rebuilding").exists());
    let probe = Probe::of(&crashed);
    let duration: f64 = probe.json["format"]["duration"].as_str().expect("a Duration").parse().unwrap();
    assert!((1.9..=2.1).contains(&duration), "duration {duration} s");
    assert_eq!(probe.packet_times("video").len() as u64, 2 * FPS, "every frame the crash left");
    assert_eq!(probe.packet_times("audio").len(), 100);
    assert_eq!(decode_errors(&crashed), "");
    let (frames, _) = run_tool(
        "ffprobe",
        &["-v", "error", "-read_intervals", "1%+#1", "-select_streams", "v", "-show_entries", "packet=pts_time,flags"]
            .into_iter()
            .chain(["-of", "csv=p=0", crashed.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    assert!(frames.starts_with("1.000000,K"), "seeking to 1 s lands on its keyframe: {frames}");

    // A file the crash left empty (killed before its first keyframe) has no header.
    let empty = dir.join("empty.mkv");
    fs::write(&empty, b"").unwrap();
    assert!(mkv_file::rebuild(&empty).is_err(), "no header is an error, not a panic");
}

#[test]
fn a_camera_without_audio_gets_a_video_only_file() {
    let dir = TempDir::new("mkv-video-only");
    let (video, audio) = camera_clip(&dir);
    let path = dir.join("camera.mkv");
    let mut file = CameraFile::create(&path, None).unwrap();
    for (n, unit) in video.iter().enumerate() {
        let ns = n as u64 * 1_000_000_000 / FPS;
        assert!(file.write_video(ns, unit).unwrap());
        assert!(!file.write_audio(ns, &audio[..AUDIO_PACKET]).unwrap(), "no audio track");
    }
    let finished = file.finish().unwrap().unwrap();
    assert_eq!(finished.codecs, ["h264"]);
    let probe = Probe::of(&path);
    assert_eq!(probe.json["streams"].as_array().unwrap().len(), 1);
    assert_eq!(probe.packet_times("video").len(), video.len());
    assert_eq!(decode_errors(&path), "");
}
