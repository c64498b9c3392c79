//! Writes each participant's media into WebM files with libwebm (the `webm` crate): the media core
//! (`media`) decides *what* goes into a recording, this module only puts frames on disk so that a
//! finished file has Cues and a Duration and a crashed one still plays up to its last second.
//!
//! Threading: [`ParticipantFile`] is a plain synchronous value that is `Send` but not `Sync`
//! (libwebm's segment is not thread-safe). The participant's task owns it and moves it into
//! `tokio::task::spawn_blocking` with a batch of frames (the `Output`s of one pipeline call),
//! getting it back with the result. We chose this over a writer thread fed by a channel because
//! there is then no thread lifecycle to manage, and errors and finished files come back directly
//! to the task that records the rows; the pipeline's buffers absorb a slow disk just the same.

mod participant_file;
mod rebuild;
mod segment;
mod sink;
#[cfg(test)]
mod tests;

pub use participant_file::ParticipantFile;
pub(crate) use participant_file::numbered_path;
pub(crate) use rebuild::Lenient;
pub use rebuild::rebuild;
pub(crate) use rebuild::rebuild_with;
pub(crate) use segment::hash_file;

use std::fmt;
use std::io;
use std::path::PathBuf;

/// The media type of a participant's file.
pub const CONTENT_TYPE: &str = "video/webm";

/// The video codec of a participant's recording (WebM carries no H.264).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    Vp9,
}

/// Which track a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Video,
    Audio,
}

/// A completed file, with what the recordings table needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedFile {
    pub path: PathBuf,
    pub bytes: u64,
    /// From the first to the last frame written.
    pub duration_ms: u64,
    /// `video/webm` (participants) or `video/x-matroska` (cameras, see `crate::mkv_file`).
    pub content_type: &'static str,
    /// Codec names of the tracks, video first: `["vp8", "opus"]`, `["h264", "pcm_mulaw"]`.
    pub codecs: Vec<&'static str>,
    /// `(width, height)` of the video track, if there is one.
    pub dimensions: Option<(u16, u16)>,
    /// Lowercase hex SHA-256 of the whole file as it is on disk.
    pub sha256: String,
}

/// Why a file could not be written (a camera's Matroska file too). After an error the
/// [`ParticipantFile`] should be dropped.
#[derive(Debug)]
pub enum FileError {
    /// Creating, writing, syncing or reading back the file failed (disk full, permissions, …).
    Io(io::Error),
    /// libwebm refused an operation without an IO error behind it.
    Mux(&'static str),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Io(error) => write!(f, "writing the recording file failed: {error}"),
            FileError::Mux(operation) => write!(f, "libwebm failed to {operation}"),
        }
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FileError::Io(error) => Some(error),
            FileError::Mux(_) => None,
        }
    }
}

/// Errors that can be the disk (or the user's quota on it) running out of space.
pub trait DiskFull {
    fn is_disk_full(&self) -> bool;
}

impl DiskFull for io::Error {
    fn is_disk_full(&self) -> bool {
        matches!(self.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
    }
}

impl DiskFull for FileError {
    fn is_disk_full(&self) -> bool {
        matches!(self, FileError::Io(error) if error.is_disk_full())
    }
}

impl From<io::Error> for FileError {
    fn from(error: io::Error) -> Self {
        FileError::Io(error)
    }
}
