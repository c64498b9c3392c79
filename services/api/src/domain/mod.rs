//! Validated request values and the models of users, rooms, cameras and recordings: parsing
//! happens here, once, with no IO.

mod camera;
mod credentials;
pub mod page;
mod recording;
mod room;
mod user;

pub use camera::{CameraCredentials, CameraId, CameraName, CameraState, MAX_CAMERAS_PER_ROOM};
pub use credentials::{DisplayName, Email, Password};
pub use recording::RecordingStatus;
pub use room::{MaxParticipants, Room, RoomId, RoomName, RoomRole};
pub use user::{Role, User, UserId};
