//! Validated request values and the models of users, rooms, cameras and recordings: parsing
//! happens here, once, with no IO. Ids, room roles and recording states are the ones every service
//! shares (`confab-domain`).

mod camera;
mod credentials;
pub mod page;
mod peer;
mod room;
mod user;

pub use camera::{CameraCredentials, CameraName, CameraState, MAX_CAMERAS_PER_ROOM};
pub use confab_domain::{
    CameraId, MediaRouting, RecordingFileId, RecordingId, RecordingStatus, RoomId, RoomMode, RoomRole, UserId,
};
pub use credentials::{DisplayName, Email, Password};
pub use peer::PeerId;
pub use room::{GivenSettings, MaxParticipants, Room, RoomName, RoomSettings};
pub use user::{Role, User};

use crate::error::ApiError;

/// An optional whole number from JSON, which has only one number type: `24` and `24.0` are the
/// same number (and JSON Schema's `integer` admits both), so both are read; `24.5` is refused.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    use serde::Deserialize;
    match Option::<f64>::deserialize(deserializer)? {
        // i64::MAX as f64 rounds up to 2^63, so the upper bound is exclusive.
        Some(n) if n.fract() == 0.0 && n >= i64::MIN as f64 && n < i64::MAX as f64 => Ok(Some(n as i64)),
        Some(n) => Err(serde::de::Error::custom(format!("{n} is not a whole number"))),
        None => Ok(None),
    }
}

/// The rule every name follows (display names, room and camera names): at most 100 characters
/// as sent, none a control character, and not empty once trimmed. The API description states
/// the same rule (`openapi::name`).
fn parse_name(raw: &str, code: &'static str, message: &'static str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || raw.chars().count() > 100 || raw.chars().any(char::is_control) {
        return Err(ApiError::invalid(code, message));
    }
    Ok(name.to_owned())
}
