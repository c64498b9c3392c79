//! RTP payload formats, read once for every service that looks inside packets: the recorder
//! reassembles frames from them, the media server forwards packets and must know where a keyframe
//! starts (a subscriber may switch layers only there). Parsing never panics on any input: a
//! payload that does not parse is a [`PayloadError`].

pub mod h264;
pub mod vp8;
pub mod vp9;

use std::fmt;

/// A payload that could not be parsed. The packet is dropped, never half-used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadError {
    /// The payload ends inside the payload descriptor.
    Truncated,
    /// A field holds a value the payload format forbids.
    Invalid(&'static str),
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadError::Truncated => f.write_str("RTP payload truncated"),
            PayloadError::Invalid(what) => write!(f, "invalid RTP payload: {what}"),
        }
    }
}

impl std::error::Error for PayloadError {}
