//! The recording of one camera as a sequence of Matroska files. A file's video track is fixed by
//! the first keyframe's SPS (its size goes into the track header), so a keyframe with a new picture
//! size (the camera's settings were changed mid-call) closes the file and opens the next one
//! beside it, numbered like a participant's WebM files.

use std::io;
use std::path::PathBuf;

use super::{CameraFile, G711};
use crate::media::{Frame, FrameData};
use crate::recording_file::{FinishedFile, MediaKind, numbered_path};

/// Writes one camera's frames (in the monotonic order [`crate::media::Participant`] emits them)
/// into `name.mkv`, then `name-2.mkv`, `name-3.mkv`, … on each resolution change.
pub struct CameraRecording {
    base_path: PathBuf,
    audio: Option<G711>,
    /// 1 for `base_path`, n for the `-n` file.
    sequence: u32,
    file: CameraFile,
    /// The picture size of the current file, once its first keyframe is in.
    size: Option<(u16, u16)>,
    /// Frames dropped by the files already finished.
    dropped_before: u64,
}

impl CameraRecording {
    /// Creates the first file at `path` now, so that a bad path or a full disk shows at once.
    pub fn create(path: impl Into<PathBuf>, audio: Option<G711>) -> io::Result<Self> {
        let base_path = path.into();
        let file = CameraFile::create(&base_path, audio)?;
        Ok(Self { base_path, audio, sequence: 1, file, size: None, dropped_before: 0 })
    }

    /// Writes one frame: video as an access unit's NAL units, audio as G.711 samples. `Ok(Some(_))`
    /// means a keyframe of a new size closed the current file (returned, complete) and started
    /// the next one.
    pub fn write(&mut self, kind: MediaKind, timestamp_ns: u64, frame: &Frame) -> io::Result<Option<FinishedFile>> {
        let nal_units = match (kind, &frame.data) {
            (MediaKind::Audio, FrameData::Whole(samples)) => {
                self.file.write_audio(timestamp_ns, samples)?;
                return Ok(None);
            }
            (MediaKind::Video, FrameData::NalUnits(nal_units)) => nal_units,
            _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, "a camera sends H.264 and G.711 only")),
        };
        let new_size = frame.dimensions.filter(|size| frame.keyframe && self.size.is_some_and(|s| s != *size));
        let finished = match new_size {
            Some(_) => self.rotate()?,
            None => None,
        };
        if self.file.write_video(timestamp_ns, nal_units)? && self.size.is_none() {
            self.size = frame.dimensions;
        }
        Ok(finished)
    }

    /// Completes the current file; `None` if no keyframe ever came to it (it is removed).
    pub fn finish(self) -> io::Result<Option<FinishedFile>> {
        self.file.finish()
    }

    /// Frames not written, over all files (see [`CameraFile::dropped_frames`]).
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_before + self.file.dropped_frames()
    }

    fn rotate(&mut self) -> io::Result<Option<FinishedFile>> {
        self.sequence += 1;
        let next = CameraFile::create(numbered_path(&self.base_path, self.sequence), self.audio)?;
        let current = std::mem::replace(&mut self.file, next);
        self.dropped_before += current.dropped_frames();
        self.size = None;
        current.finish()
    }
}
