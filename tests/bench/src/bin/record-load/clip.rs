//! The clip every participant sends, and counting the frames of a WebM file.

use std::io::{BufReader, Read, Seek};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use matroska_demuxer::{Frame as MkvFrame, MatroskaFile};

/// The pre-encoded media every participant sends, in decoding order.
pub struct Clip {
    pub video: Vec<Vec<u8>>,
    pub audio: Vec<Vec<u8>>,
    pub video_interval: Duration,
    pub audio_interval: Duration,
}

impl Clip {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut mkv = MatroskaFile::open(BufReader::new(file)).context("reading the clip")?;
        let (video_track, audio_track) = track_numbers(&mkv).context("the clip needs a V_VP8 and an A_OPUS track")?;
        let scale_ns = mkv.info().timestamp_scale().get();
        let (mut video, mut audio, mut video_times, mut audio_times) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut frame = MkvFrame::default();
        while mkv.next_frame(&mut frame)? {
            if frame.track == video_track {
                if video.is_empty() && frame.is_keyframe == Some(false) {
                    bail!("the clip's video must start with a keyframe");
                }
                video_times.push(frame.timestamp);
                video.push(std::mem::take(&mut frame.data));
            } else if frame.track == audio_track {
                audio_times.push(frame.timestamp);
                audio.push(std::mem::take(&mut frame.data));
            }
        }
        Ok(Self {
            video,
            audio,
            video_interval: mean_interval(&video_times, scale_ns).context("the clip's video")?,
            audio_interval: mean_interval(&audio_times, scale_ns).context("the clip's audio")?,
        })
    }

    pub fn video_bits_per_second(&self) -> f64 {
        let bytes: usize = self.video.iter().map(Vec::len).sum();
        bytes as f64 * 8.0 / (self.video.len() as f64 * self.video_interval.as_secs_f64())
    }
}

/// The numbers of the first VP8 and the first Opus track.
fn track_numbers<R: Read + Seek>(mkv: &MatroskaFile<R>) -> Option<(u64, u64)> {
    let (video, audio) = track_numbers_of_either(mkv);
    Some((video?, audio?))
}

/// The VP8 and the Opus track's numbers, each if the file has it.
fn track_numbers_of_either<R: Read + Seek>(mkv: &MatroskaFile<R>) -> (Option<u64>, Option<u64>) {
    let number = |codec: &str| {
        mkv.tracks().iter().find(|track| track.codec_id() == codec).map(|track| track.track_number().get())
    };
    (number("V_VP8"), number("A_OPUS"))
}

fn mean_interval(timestamps: &[u64], scale_ns: u64) -> anyhow::Result<Duration> {
    let (Some(first), Some(last)) = (timestamps.first(), timestamps.last()) else { bail!("no frames") };
    if timestamps.len() < 2 || last <= first {
        bail!("too few frames to tell their rate");
    }
    Ok(Duration::from_nanos((last - first) * scale_ns / (timestamps.len() as u64 - 1)))
}

/// Video and audio frames in a WebM file. A file may hold one of the two: through the SFU, a
/// participant whose video started after its audio had settled has an audio-only file first.
pub fn count_frames<R: Read + Seek>(reader: R) -> anyhow::Result<(u64, u64)> {
    let mut mkv = MatroskaFile::open(reader).context("reading a recorded file")?;
    let (video_track, audio_track) = track_numbers_of_either(&mkv);
    if video_track.is_none() && audio_track.is_none() {
        bail!("a file without a VP8 or an Opus track");
    }
    let (mut video, mut audio) = (0, 0);
    let mut frame = MkvFrame::default();
    while mkv.next_frame(&mut frame)? {
        video += u64::from(Some(frame.track) == video_track);
        audio += u64::from(Some(frame.track) == audio_track);
    }
    Ok((video, audio))
}
