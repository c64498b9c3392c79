//! Who may see and manage a recording. A recording outlives its room, so its room's membership
//! alone cannot answer: each recording also keeps an access list, the room's members (with their
//! role) while it was recorded. A recording the caller may not see is a 404, like a room.

use crate::domain::{RecordingId, Role, RoomRole, User};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::recordings::{self, Recording, RecordingWithAccess};

pub struct RecordingAccess {
    pub recording: Recording,
    /// Whether the caller may stop and delete it: admins; the room's owner and moderators while
    /// the room exists; once it is deleted, its owner and moderators at the time of the recording.
    pub may_manage: bool,
}

impl RecordingAccess {
    /// The recording if `user` may see it; 404 otherwise, and for ids that are not UUIDs.
    pub async fn load(state: &AppState, user: &User, raw_id: &str) -> Result<Self, ApiError> {
        let id = RecordingId::parse(raw_id).map_err(|_| ApiError::NotFound)?;
        let found = recordings::find_recording_with_access(&state.db, id, user.id).await?.ok_or(ApiError::NotFound)?;
        Self::of(user, found).ok_or(ApiError::NotFound)
    }

    /// The caller's access to a recording found with what decides it; `None` when out of sight.
    pub fn of(user: &User, found: RecordingWithAccess) -> Option<Self> {
        let RecordingWithAccess { recording, room_exists, room_role, listed_role } = found;
        let may_manage = decide(user.role == Role::Admin, room_exists, room_role, listed_role)?;
        Some(Self { recording, may_manage })
    }

    pub fn require_manager(&self) -> Result<(), ApiError> {
        if self.may_manage {
            Ok(())
        } else {
            Err(ApiError::Forbidden { code: "forbidden", message: "your role does not allow this on this recording" })
        }
    }
}

/// `None` when the recording is out of the caller's sight, else whether they may manage it.
/// Seeing it: admins, the room's members now, and everyone on its access list. Managing it: the
/// room's roles while it exists (so a demoted moderator no longer may), the listed roles after.
fn decide(admin: bool, room_exists: bool, room_role: Option<RoomRole>, listed_role: Option<RoomRole>) -> Option<bool> {
    if !admin && room_role.is_none() && listed_role.is_none() {
        return None;
    }
    let role = if room_exists { room_role } else { listed_role };
    Some(admin || role.is_some_and(|role| role >= RoomRole::Moderator))
}

#[cfg(test)]
mod tests {
    use super::*;
    use RoomRole::{Member, Moderator, Owner};

    #[test]
    fn the_rooms_roles_decide_while_it_exists_and_the_list_after() {
        // Room exists: a member now sees; a removed moderator still sees but no longer manages.
        assert_eq!(decide(false, true, Some(Member), None), Some(false));
        assert_eq!(decide(false, true, Some(Moderator), Some(Member)), Some(true));
        assert_eq!(decide(false, true, None, Some(Moderator)), Some(false));
        // Room deleted: only the list counts.
        assert_eq!(decide(false, false, None, Some(Owner)), Some(true));
        assert_eq!(decide(false, false, None, Some(Member)), Some(false));
        assert_eq!(decide(false, false, None, None), None);
        // Admins see and manage everything.
        assert_eq!(decide(true, false, None, None), Some(true));
    }
}
