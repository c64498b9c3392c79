//! `confab-domain`: the contracts the services share, defined once and with no IO — the ids of
//! what Confab stores, the roles people and services hold, a room's media settings, where a recording is in its life, the
//! Redis key schema, presence entries and join ticket claims. Parsing any of them fails with a
//! [`DomainError`], which each service maps at its edge.

/// `Display` as the type's `as_str()`: its wire spelling.
macro_rules! display_as_str {
    ($($type:ty),+) => {$(
        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )+};
}

mod error;
pub mod id;
pub mod keys;
pub mod presence;
mod recording;
mod role;
mod room_settings;
pub mod ticket;

pub use error::DomainError;
pub use id::{CameraId, Id, RecordingFileId, RecordingId, RoomId, UserId};
pub use recording::RecordingStatus;
pub use role::{CallRole, RoomRole};
pub use room_settings::{MediaRouting, RoomMode};
