//! One WebM file being written: a libwebm segment whose tracks are fixed when it is built. It
//! rebases timestamps so that the file starts at zero, drops frames that would go back in time
//! (libwebm rejects them across all tracks), flushes to the OS every second of media, and on
//! `finish` adds Cues and Duration, fsyncs and hashes the result.

use std::fs::File;
use std::path::PathBuf;

use webm::mux::{AudioCodecId, AudioTrack, Segment, SegmentBuilder, SegmentMode, VideoCodecId, VideoTrack, Writer};

use super::VideoCodec;
use super::sink::SharedFile;
use crate::recording_file::{FileError, FinishedFile, MediaKind, hash_file};

/// Media time between two flushes to the OS: at most this much is lost when the process dies.
const FLUSH_EVERY_NS: u64 = 1_000_000_000;
const OPUS_SAMPLE_RATE: u32 = 48_000;
const OPUS_CHANNELS: u8 = 2;

/// The tracks of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    pub video: Option<(VideoCodec, (u16, u16))>,
    pub audio: bool,
}

pub(super) struct OpenFile {
    path: PathBuf,
    sink: SharedFile,
    segment: Segment<SharedFile>,
    layout: Layout,
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    origin_ns: u64,
    last_ns: u64,
    flushed_at_ns: u64,
}

impl OpenFile {
    /// Builds the segment in `file` (just created at `path`); `origin_ns` becomes time zero.
    pub fn build(path: PathBuf, file: File, layout: Layout, origin_ns: u64) -> Result<Self, FileError> {
        let sink = SharedFile::new(file);
        let mut builder = SegmentBuilder::new(Writer::new(sink.clone()))
            .and_then(|b| b.set_mode(SegmentMode::File))
            .and_then(|b| b.set_writing_app("confab-recorder"))
            .map_err(|_| mux_error(&sink, "start the segment"))?;
        let mut video = None;
        if let Some((codec, (width, height))) = layout.video {
            let codec = match codec {
                VideoCodec::Vp8 => VideoCodecId::VP8,
                VideoCodec::Vp9 => VideoCodecId::VP9,
            };
            let (b, track) = builder
                .add_video_track(width.into(), height.into(), codec, None)
                .map_err(|_| mux_error(&sink, "add the video track"))?;
            builder = b;
            video = Some(track);
        }
        let mut audio = None;
        if layout.audio {
            let (b, track) = builder
                .add_audio_track(OPUS_SAMPLE_RATE, OPUS_CHANNELS.into(), AudioCodecId::Opus, None)
                .map_err(|_| mux_error(&sink, "add the audio track"))?;
            builder = b.set_codec_private(track, &opus_head()).map_err(|_| mux_error(&sink, "set the OpusHead"))?;
            audio = Some(track);
        }
        Ok(Self {
            path,
            segment: builder.build(),
            sink,
            layout,
            video,
            audio,
            origin_ns,
            last_ns: origin_ns,
            flushed_at_ns: origin_ns,
        })
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Writes one frame. Returns false if it was dropped: no such track, or earlier than a frame
    /// already written.
    pub fn add(&mut self, kind: MediaKind, timestamp_ns: u64, data: &[u8], keyframe: bool) -> Result<bool, FileError> {
        let track: u64 = match (kind, self.video, self.audio) {
            (MediaKind::Video, Some(track), _) => track.into(),
            (MediaKind::Audio, _, Some(track)) => track.into(),
            _ => return Ok(false),
        };
        if timestamp_ns < self.last_ns {
            return Ok(false);
        }
        let relative_ns = timestamp_ns - self.origin_ns;
        self.segment.add_frame(track, data, relative_ns, keyframe).map_err(|_| mux_error(&self.sink, "add a frame"))?;
        self.last_ns = timestamp_ns;
        if timestamp_ns - self.flushed_at_ns >= FLUSH_EVERY_NS {
            self.sink.flush_to_os()?;
            self.flushed_at_ns = timestamp_ns;
        }
        Ok(true)
    }

    /// Writes Cues and Duration, fsyncs, and describes the file.
    pub fn finish(self) -> Result<FinishedFile, FileError> {
        let Self { path, sink, segment, layout, origin_ns, last_ns, .. } = self;
        if segment.finalize(None).is_err() {
            return Err(mux_error(&sink, "finalize the segment"));
        }
        sink.sync()?;
        let (bytes, sha256) = hash_file(&path)?;
        let mut codecs = Vec::new();
        if let Some((codec, _)) = layout.video {
            codecs.push(match codec {
                VideoCodec::Vp8 => "vp8",
                VideoCodec::Vp9 => "vp9",
            });
        }
        if layout.audio {
            codecs.push("opus");
        }
        Ok(FinishedFile {
            path,
            bytes,
            duration_ms: (last_ns - origin_ns) / 1_000_000,
            content_type: super::CONTENT_TYPE,
            codecs,
            dimensions: layout.video.map(|(_, dimensions)| dimensions),
            sha256,
        })
    }
}

/// libwebm reports failures as a bare code; the IO error behind one, if any, is in the sink.
fn mux_error(sink: &SharedFile, operation: &'static str) -> FileError {
    sink.take_error().map_or(FileError::Mux(operation), FileError::Io)
}

/// The Opus identification header (RFC 7845 §5.1) that WebM stores as `A_OPUS` CodecPrivate.
/// Pre-skip is 0: the recording joins the stream long after the encoder's start.
fn opus_head() -> [u8; 19] {
    let mut head = [0u8; 19];
    head[..8].copy_from_slice(b"OpusHead");
    head[8] = 1; // version
    head[9] = OPUS_CHANNELS;
    // [10..12] pre-skip 0
    head[12..16].copy_from_slice(&OPUS_SAMPLE_RATE.to_le_bytes());
    // [16..18] output gain 0, [18] channel mapping family 0 (mono or stereo)
    head
}
