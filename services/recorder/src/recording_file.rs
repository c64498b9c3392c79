//! What every recording file has, whichever format writes it (a participant's WebM in
//! `webm_file`, a camera's Matroska in `mkv_file`): the kind of track a frame is for, the error a
//! write fails with, the facts of a finished file, its hash, and the names of the files that
//! follow the first one when a recording is split.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

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

/// Why a file could not be written, WebM or Matroska. After an error the file's writer
/// ([`crate::webm_file::ParticipantFile`], [`crate::mkv_file::CameraRecording`]) should be dropped.
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

/// The size and lowercase hex SHA-256 of a file as it is on disk.
pub(crate) fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    let sha256 = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((bytes, sha256))
}

/// `dir/name.webm` → `dir/name-2.webm` (`.mkv` alike) for `sequence` 2.
pub(crate) fn numbered_path(base: &Path, sequence: u32) -> PathBuf {
    if sequence <= 1 {
        return base.to_path_buf();
    }
    let stem = base.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match base.extension() {
        Some(ext) => format!("{stem}-{sequence}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{sequence}"),
    };
    base.with_file_name(name)
}
