//! A camera's media for the camera tests: a real H.264 clip and PCMU made by ffmpeg at test time
//! and cut into access units and 20 ms packets the way the ingest forwards them.

use std::fs;
use std::path::Path;
use std::process::Command;

/// 20 ms of 8 kHz G.711.
pub const AUDIO_PACKET: usize = 160;

/// Runs `program` with `args`; its stdout and stderr. A missing tool fails the test: the
/// provisioning scripts install ffmpeg, so its absence is a broken setup, not a reason to skip.
pub fn run_tool(program: &str, args: &[&str]) -> (String, String) {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {program} ({e}): install ffmpeg (deploy/local/lib.sh's ensure_packages does, with apt-get)")
    });
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{program} {args:?} failed: {stderr}");
    (stdout.into_owned(), stderr.into_owned())
}

/// A camera's media, made by ffmpeg in `dir`: 320×240 access units (Annex B, SPS and PPS before
/// each keyframe, a keyframe every second, no B-frames, as cameras send) at `fps`, and PCMU
/// samples, both `seconds` long.
pub fn clip(dir: &Path, fps: u64, seconds: u64) -> (Vec<Vec<u8>>, Vec<u8>) {
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

/// Cuts an Annex B stream into access units: a new one starts at a parameter set, SEI or access
/// unit delimiter after a slice, or at a slice whose first_mb_in_slice is 0 after another slice.
pub fn access_units(stream: &[u8]) -> Vec<Vec<u8>> {
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
    let mut current: Vec<u8> = Vec::new();
    let mut has_slice = false;
    for (n, start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(stream.len(), |next| next - 3);
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
        current.extend_from_slice(&[0, 0, 0, 1]);
        current.extend_from_slice(nal);
        has_slice |= slice;
    }
    units.push(current);
    units
}
