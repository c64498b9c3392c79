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
pub(crate) use rebuild::Lenient;
pub use rebuild::rebuild;
pub(crate) use rebuild::rebuild_with;

/// The media type of a participant's file.
pub const CONTENT_TYPE: &str = "video/webm";

/// The video codec of a participant's recording (WebM carries no H.264).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    Vp9,
}
