//! What parsing a domain value can fail with. Services map these at their edge (the API to its
//! JSON errors); the messages never repeat more of the input than a role or status name.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Text that is not a UUID where the id of a `kind` (`room`, `user`, …) was expected.
    #[error("not a {kind} id")]
    InvalidId { kind: &'static str },
    #[error("unknown role {0:?}")]
    UnknownRole(String),
    #[error("unknown recording status {0:?}")]
    UnknownRecordingStatus(String),
    #[error("unreadable presence entry: {0}")]
    UnreadablePresence(String),
    /// A room setting (`media`, `mode`) with a value it does not have.
    #[error("unknown {0} setting")]
    UnknownSetting(&'static str),
}
