//! The recording of one participant as a sequence of WebM files. libwebm needs the picture size
//! before the first frame, so the segment is built at the first video keyframe; audio that comes
//! earlier is held and goes in front of it. A participant without video gets an audio-only file,
//! and a keyframe with a new picture size (or the first video of an audio-only file) closes the
//! file and opens the next one beside it, because a segment's tracks are fixed once built.

use std::collections::VecDeque;
use std::fs::File;
use std::mem;
use std::path::PathBuf;

use super::VideoCodec;
use super::segment::{Layout, OpenFile};
use crate::media::Frame;
use crate::recording_file::{FileError, FinishedFile, MediaKind, numbered_path};

/// How long audio waits for a video keyframe before the file is built without video. Audio held
/// meanwhile is bounded by the same span, so an audio-only recording loses nothing.
const AUDIO_ONLY_AFTER_NS: u64 = 3_000_000_000;

/// Writes one participant's frames (in the monotonic order [`crate::media::Participant`] emits
/// them) into `name.webm`, then `name-2.webm`, `name-3.webm`, … on each resolution change.
pub struct ParticipantFile {
    base_path: PathBuf,
    video_codec: VideoCodec,
    audio: bool,
    /// 1 for `base_path`, n for the `-n` file.
    sequence: u32,
    state: State,
    dropped_frames: u64,
}

enum State {
    /// The file is created; no segment yet.
    Waiting {
        file: File,
        held_audio: VecDeque<(u64, Vec<u8>)>,
    },
    Open(OpenFile),
    /// `finish` ran or a rotation failed half-way.
    Closed,
}

impl ParticipantFile {
    /// Creates the file at `path` now, so that a bad path or a full disk shows at once.
    pub fn create(path: impl Into<PathBuf>, video_codec: VideoCodec, audio: bool) -> Result<Self, FileError> {
        let base_path = path.into();
        let file = File::create(&base_path)?;
        Ok(Self {
            base_path,
            video_codec,
            audio,
            sequence: 1,
            state: State::Waiting { file, held_audio: VecDeque::new() },
            dropped_frames: 0,
        })
    }

    /// Writes (or holds) one frame. `Ok(Some(_))` means the frame closed the current file and
    /// started the next one at [`Self::current_path`]; the returned file is complete.
    pub fn write(
        &mut self,
        kind: MediaKind,
        timestamp_ns: u64,
        frame: &Frame,
    ) -> Result<Option<FinishedFile>, FileError> {
        let Some(data) = frame.data.whole() else { return Err(FileError::Mux("take H.264 into WebM")) };
        let size = if frame.keyframe { frame.dimensions } else { None };
        match (&mut self.state, kind) {
            (_, MediaKind::Audio) if !self.audio => self.dropped_frames += 1,
            (State::Closed, _) => self.dropped_frames += 1,
            (State::Waiting { .. }, MediaKind::Video) => match size {
                Some(size) => self.open(Some(size), Some((timestamp_ns, data)))?,
                None => self.dropped_frames += 1,
            },
            (State::Waiting { held_audio, .. }, MediaKind::Audio) => {
                held_audio.push_back((timestamp_ns, data.to_vec()));
                let first_ns = held_audio.front().map_or(timestamp_ns, |(ns, _)| *ns);
                if timestamp_ns.saturating_sub(first_ns) >= AUDIO_ONLY_AFTER_NS {
                    self.open(None, None)?;
                }
            }
            (State::Open(file), MediaKind::Video) => match size {
                Some(size) if file.layout().video.map(|(_, current)| current) != Some(size) => {
                    return self.rotate(size, timestamp_ns, data).map(Some);
                }
                _ => self.add(kind, timestamp_ns, data, frame.keyframe)?,
            },
            (State::Open(_), MediaKind::Audio) => self.add(kind, timestamp_ns, data, true)?,
        }
        Ok(None)
    }

    /// Completes the current file: Cues, Duration, fsync. `None` if nothing was ever written to it
    /// (the empty file is removed). Audio still held becomes an audio-only file.
    pub fn finish(mut self) -> Result<Option<FinishedFile>, FileError> {
        match &self.state {
            State::Waiting { held_audio, .. } if !held_audio.is_empty() => self.open(None, None)?,
            State::Waiting { .. } => {
                self.state = State::Closed;
                std::fs::remove_file(self.current_path())?;
                return Ok(None);
            }
            State::Open(_) | State::Closed => {}
        }
        match mem::replace(&mut self.state, State::Closed) {
            State::Open(file) => file.finish().map(Some),
            State::Waiting { .. } | State::Closed => Ok(None),
        }
    }

    /// The file frames currently go to.
    pub fn current_path(&self) -> PathBuf {
        numbered_path(&self.base_path, self.sequence)
    }

    /// Frames not written: video before the first keyframe, audio when the participant has no
    /// audio track, and frames that would have gone back in time.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    fn add(&mut self, kind: MediaKind, timestamp_ns: u64, data: &[u8], keyframe: bool) -> Result<(), FileError> {
        let State::Open(file) = &mut self.state else { return Ok(()) };
        if !file.add(kind, timestamp_ns, data, keyframe)? {
            self.dropped_frames += 1;
        }
        Ok(())
    }

    /// Builds the segment from the waiting state: with video if `size` is known (then `keyframe`
    /// is the first video frame), audio-only otherwise, and writes the held audio in order.
    fn open(&mut self, size: Option<(u16, u16)>, keyframe: Option<(u64, &[u8])>) -> Result<(), FileError> {
        let State::Waiting { file, held_audio } = mem::replace(&mut self.state, State::Closed) else { return Ok(()) };
        let origin_ns = held_audio.front().map(|(ns, _)| *ns).into_iter().chain(keyframe.map(|(ns, _)| ns)).min();
        let layout = Layout { video: size.map(|size| (self.video_codec, size)), audio: self.audio };
        self.state = State::Open(OpenFile::build(self.current_path(), file, layout, origin_ns.unwrap_or(0))?);
        let key_ns = keyframe.map_or(u64::MAX, |(ns, _)| ns);
        let (before, after): (Vec<_>, Vec<_>) = held_audio.into_iter().partition(|(ns, _)| *ns <= key_ns);
        for (ns, data) in before {
            self.add(MediaKind::Audio, ns, &data, true)?;
        }
        if let Some((ns, data)) = keyframe {
            self.add(MediaKind::Video, ns, data, true)?;
        }
        for (ns, data) in after {
            self.add(MediaKind::Audio, ns, &data, true)?;
        }
        Ok(())
    }

    fn rotate(&mut self, size: (u16, u16), timestamp_ns: u64, keyframe: &[u8]) -> Result<FinishedFile, FileError> {
        let State::Open(current) = mem::replace(&mut self.state, State::Closed) else {
            return Err(FileError::Mux("rotate a file that is not open"));
        };
        let finished = current.finish()?;
        self.sequence += 1;
        let file = File::create(self.current_path())?;
        self.state = State::Waiting { file, held_audio: VecDeque::new() };
        self.open(Some(size), Some((timestamp_ns, keyframe)))?;
        Ok(finished)
    }
}
