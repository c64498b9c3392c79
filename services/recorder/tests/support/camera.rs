//! A camera's media for the camera tests: a real H.264 clip and PCMU made by ffmpeg at test time
//! and cut into access units and 20 ms packets the way the ingest forwards them.

use std::fs;
use std::path::Path;

pub use confab_testkit::run_tool;

/// 20 ms of 8 kHz G.711.
pub const AUDIO_PACKET: usize = 160;

/// One H.264 picture as the ingest forwards it and the recorder writes it: its NAL units.
pub type AccessUnit = Vec<Vec<u8>>;

/// A camera's media, made by ffmpeg in `dir`: 320×240 access units (SPS and PPS before each
/// keyframe, a keyframe every second, no B-frames, as cameras send) at `fps`, and PCMU
/// samples, both `seconds` long.
pub fn clip(dir: &Path, fps: u64, seconds: u64) -> (Vec<AccessUnit>, Vec<u8>) {
    let video = dir.join("clip.h264");
    let audio = dir.join("clip.ul");
    let size_rate = format!("testsrc=size=320x240:rate={fps}");
    let seconds = seconds.to_string();
    let gop = fps.to_string();
    run_tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            &size_rate,
            "-t",
            &seconds,
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-bf",
            "0",
            "-g",
            &gop,
            "-bsf:v",
            "h264_mp4toannexb",
            "-f",
            "h264",
            video.to_str().unwrap(),
        ],
    );
    run_tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=8000",
            "-t",
            &seconds,
            "-ac",
            "1",
            "-f",
            "mulaw",
            audio.to_str().unwrap(),
        ],
    );
    (access_units(&fs::read(video).unwrap()), fs::read(audio).unwrap())
}

/// Cuts ffmpeg's raw H.264 file (an Annex B byte stream, the one format it writes raw H.264 in)
/// into access units: a new one starts at a parameter set, SEI or access unit delimiter after a
/// slice, or at a slice whose first_mb_in_slice is 0 after another slice.
pub fn access_units(stream: &[u8]) -> Vec<AccessUnit> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 < stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::new();
    let mut current = AccessUnit::new();
    let mut has_slice = false;
    for (n, start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(stream.len(), |next| next - 3);
        // The zero byte of a 4-byte start code belongs to neither NAL unit (none ends in zero).
        let end = stream[..end].iter().rposition(|b| *b != 0).map_or(*start, |last| last + 1).max(*start);
        let nal = &stream[*start..end];
        let nal_type = nal[0] & 0x1f;
        let slice = nal_type == 1 || nal_type == 5;
        let begins_unit = match nal_type {
            6..=9 => has_slice,
            1 | 5 => has_slice && nal[1] & 0x80 != 0,
            _ => false,
        };
        if begins_unit {
            units.push(std::mem::take(&mut current));
            has_slice = false;
        }
        current.push(nal.to_vec());
        has_slice |= slice;
    }
    units.push(current);
    units
}
