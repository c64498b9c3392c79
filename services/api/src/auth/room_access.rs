//! Who may see and change a room. Every room route starts here: a room the caller may not see
//! is answered exactly like a room that does not exist (404), so ids leak nothing.

use crate::domain::{Role, Room, RoomId, RoomRole, User};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::rooms;

pub struct RoomAccess {
    pub room: Room,
    /// The caller's role in the room; `None` for an admin who is not a member.
    pub role: Option<RoomRole>,
    pub admin: bool,
}

impl RoomAccess {
    /// The room if `user` is a member or an admin; 404 otherwise, and for ids that are not UUIDs.
    pub async fn load(state: &AppState, user: &User, raw_id: &str) -> Result<Self, ApiError> {
        let id = RoomId::parse(raw_id)?;
        let (room, role) = rooms::find_room_with_role(&state.db, id, user.id).await?.ok_or(ApiError::NotFound)?;
        let admin = user.role == Role::Admin;
        if role.is_none() && !admin {
            return Err(ApiError::NotFound);
        }
        Ok(Self { room, role, admin })
    }

    /// The role the caller acts with: admins act as owners.
    pub fn power(&self) -> RoomRole {
        if self.admin { RoomRole::Owner } else { self.role.unwrap_or(RoomRole::Member) }
    }

    /// Owners, moderators and admins manage members and invites.
    pub fn require_manager(&self) -> Result<(), ApiError> {
        self.require(RoomRole::Moderator)
    }

    /// Owners and admins rename limits, delete the room and appoint moderators.
    pub fn require_owner(&self) -> Result<(), ApiError> {
        self.require(RoomRole::Owner)
    }

    /// Whether the caller may act on a member holding `target` (remove, ban, change role):
    /// never the owner, and moderators only on plain members.
    pub fn require_above(&self, target: RoomRole) -> Result<(), ApiError> {
        if target == RoomRole::Owner {
            return Err(ApiError::Forbidden {
                code: "owner_protected",
                message: "the owner cannot be changed or removed",
            });
        }
        self.require(if target == RoomRole::Moderator { RoomRole::Owner } else { RoomRole::Moderator })
    }

    fn require(&self, needed: RoomRole) -> Result<(), ApiError> {
        if self.power() >= needed {
            Ok(())
        } else {
            Err(ApiError::Forbidden { code: "forbidden", message: "your role in this room does not allow this" })
        }
    }
}
