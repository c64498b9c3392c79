//! Room membership: list, add by email, change role, remove (or leave), ban, list bans, unban.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use confab_common::http::RequestId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ErrorResponse, audit};
use crate::auth::current_user::CurrentUser;
use crate::auth::room_access::RoomAccess;
use crate::control::{Control, RemovalReason};
use crate::domain::{Email, RoomRole, UserId};
use crate::error::ApiError;
use crate::openapi;
use crate::state::AppState;
use crate::store::members::{self, Ban, Member};
use crate::store::users;

#[derive(Deserialize, ToSchema)]
pub struct AddMemberRequest {
    #[schema(schema_with = openapi::email)]
    pub email: String,
    /// `member` (default) or `moderator` (owner and admins only).
    #[schema(schema_with = openapi::optional_role_to_give)]
    pub role: Option<RoomRole>,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateMemberRequest {
    /// `member` or `moderator` (owner and admins only).
    #[schema(schema_with = openapi::role_to_give)]
    pub role: RoomRole,
}

#[derive(Deserialize, ToSchema)]
pub struct BanRequest {
    pub user_id: UserId,
}

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: UserId,
    pub display_name: String,
    /// Shown to owners, moderators and admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub role: RoomRole,
    pub joined_at: DateTime<Utc>,
}

impl MemberView {
    fn new(member: Member, show_email: bool) -> Self {
        Self {
            user_id: member.user_id,
            display_name: member.display_name,
            email: show_email.then_some(member.email),
            role: member.role,
            joined_at: member.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    pub members: Vec<MemberView>,
}

#[derive(Serialize, ToSchema)]
pub struct BanView {
    pub user_id: UserId,
    pub display_name: String,
    pub email: String,
    /// Who banned them; absent if that account was deleted since.
    pub banned_by: Option<UserId>,
    pub banned_at: DateTime<Utc>,
}

impl From<Ban> for BanView {
    fn from(ban: Ban) -> Self {
        Self {
            user_id: ban.user_id,
            display_name: ban.display_name,
            email: ban.email,
            banned_by: ban.banned_by,
            banned_at: ban.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct BanList {
    pub bans: Vec<BanView>,
}

fn parse_user_id(raw: &str) -> Result<UserId, ApiError> {
    Ok(UserId::parse(raw)?)
}

/// Only owners and admins hand out or take away the moderator role.
fn check_assignable(access: &RoomAccess, role: RoomRole) -> Result<(), ApiError> {
    match role {
        RoomRole::Owner => Err(ApiError::invalid("invalid_role", "ownership cannot be given")),
        RoomRole::Moderator => access.require_owner(),
        RoomRole::Member => Ok(()),
    }
}

/// Members of a room.
#[utoipa::path(tag = "members", security(("bearer" = [])), responses(
    (status = 200, body = MemberList), (status = 404, body = ErrorResponse),
))]
#[get("/v1/rooms/{id}/members")]
pub async fn list_members(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let access = RoomAccess::load(&state, &user, &path).await?;
    let show_email = access.require_manager().is_ok();
    let members = members::list_members(&state.db, access.room.id).await?;
    let members = members.into_iter().map(|m| MemberView::new(m, show_email)).collect();
    Ok(HttpResponse::Ok().json(MemberList { members }))
}

/// Add a member by email (owner, moderators, admins).
#[utoipa::path(tag = "members", security(("bearer" = [])), request_body = AddMemberRequest, responses(
    (status = 201, body = MemberView), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
    (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
    (status = 422, description = "No account has this email", body = ErrorResponse),
))]
#[post("/v1/rooms/{id}/members")]
pub async fn add_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    body: web::Json<AddMemberRequest>,
) -> Result<HttpResponse, ApiError> {
    let access = RoomAccess::load(&state, &user, &path).await?;
    access.require_manager()?;
    let role = body.role.unwrap_or(RoomRole::Member);
    check_assignable(&access, role)?;
    let email = Email::parse(&body.email)?;
    let (target, _) =
        users::find_credentials_by_email(&state.db, email.as_str()).await?.ok_or(ApiError::UnknownUser)?;
    let room_id = access.room.id;
    let mut tx = state.db.begin().await?;
    if members::is_banned(&mut *tx, room_id, target.id).await? {
        return Err(ApiError::Conflict { code: "user_banned", message: "this user is banned from the room" });
    }
    if !members::insert_member(&mut *tx, room_id, target.id, role).await? {
        return Err(ApiError::Conflict { code: "already_member", message: "this user is already a member" });
    }
    let details = serde_json::json!({"role": role});
    audit(&mut tx, &req, user.id, "member.add", Some(room_id), Some(target.id), details).await?;
    let member = members::find_member(&mut *tx, room_id, target.id).await?.ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(MemberView::new(member, true)))
}

/// Change a member's role. Moderators manage plain members; owner and admins also moderators.
#[utoipa::path(tag = "members", security(("bearer" = [])), request_body = UpdateMemberRequest, responses(
    (status = 200, body = MemberView), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
    (status = 404, body = ErrorResponse),
))]
#[patch("/v1/rooms/{id}/members/{user_id}")]
pub async fn update_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<(String, String)>,
    body: web::Json<UpdateMemberRequest>,
) -> Result<HttpResponse, ApiError> {
    let (room, target) = path.into_inner();
    let access = RoomAccess::load(&state, &user, &room).await?;
    access.require_manager()?;
    let target = parse_user_id(&target)?;
    let room_id = access.room.id;
    let member = members::find_member(&state.db, room_id, target).await?.ok_or(ApiError::NotFound)?;
    access.require_above(member.role)?;
    check_assignable(&access, body.role)?;
    let mut tx = state.db.begin().await?;
    members::update_member_role(&mut *tx, room_id, target, body.role).await?;
    let details = serde_json::json!({"from": member.role, "to": body.role});
    audit(&mut tx, &req, user.id, "member.role", Some(room_id), Some(target), details).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(MemberView::new(Member { role: body.role, ..member }, true)))
}

/// Remove a member (owner, moderators, admins), or leave the room yourself. Ends their live
/// connection on every gateway.
#[utoipa::path(tag = "members", security(("bearer" = [])), responses(
    (status = 204), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
))]
#[delete("/v1/rooms/{id}/members/{user_id}")]
pub async fn remove_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, target) = path.into_inner();
    let access = RoomAccess::load(&state, &user, &room).await?;
    let target = parse_user_id(&target)?;
    let room_id = access.room.id;
    let member = members::find_member(&state.db, room_id, target).await?.ok_or(ApiError::NotFound)?;
    let leaving = target == user.id;
    if leaving && member.role == RoomRole::Owner {
        return Err(ApiError::Forbidden {
            code: "owner_protected",
            message: "the owner cannot leave; delete the room",
        });
    }
    if !leaving {
        access.require_manager()?;
        access.require_above(member.role)?;
    }
    let mut tx = state.db.begin().await?;
    members::delete_member(&mut *tx, room_id, target).await?;
    let action = if leaving { "member.leave" } else { "member.remove" };
    audit(&mut tx, &req, user.id, action, Some(room_id), Some(target), serde_json::Value::Null).await?;
    tx.commit().await?;
    let command = Control::RemoveUser { room_id, user_id: target, reason: RemovalReason::Removed };
    state.control.send(&command, &RequestId::of(&req)).await;
    Ok(HttpResponse::NoContent().finish())
}

/// Ban a user: they stop being a member, their live connection ends, and no invite lets them
/// back in until they are unbanned.
#[utoipa::path(tag = "members", security(("bearer" = [])), request_body = BanRequest, responses(
    (status = 201), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
    (status = 404, body = ErrorResponse), (status = 422, description = "No such user", body = ErrorResponse),
))]
#[post("/v1/rooms/{id}/bans")]
pub async fn ban_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    body: web::Json<BanRequest>,
) -> Result<HttpResponse, ApiError> {
    let access = RoomAccess::load(&state, &user, &path).await?;
    access.require_manager()?;
    let target = body.user_id;
    if target == user.id {
        return Err(ApiError::invalid("invalid_target", "you cannot ban yourself"));
    }
    users::find_user_by_id(&state.db, target).await?.ok_or(ApiError::UnknownUser)?;
    let room_id = access.room.id;
    if let Some(member) = members::find_member(&state.db, room_id, target).await? {
        access.require_above(member.role)?;
    }
    let mut tx = state.db.begin().await?;
    members::delete_member(&mut *tx, room_id, target).await?;
    members::insert_ban(&mut *tx, room_id, target, user.id).await?;
    audit(&mut tx, &req, user.id, "member.ban", Some(room_id), Some(target), serde_json::Value::Null).await?;
    tx.commit().await?;
    let command = Control::RemoveUser { room_id, user_id: target, reason: RemovalReason::Banned };
    state.control.send(&command, &RequestId::of(&req)).await;
    Ok(HttpResponse::Created().json(serde_json::json!({"room_id": room_id, "user_id": target})))
}

/// The room's bans, the latest first (owner, moderators, admins).
#[utoipa::path(tag = "members", security(("bearer" = [])), responses(
    (status = 200, body = BanList), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
))]
#[get("/v1/rooms/{id}/bans")]
pub async fn list_bans(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let access = RoomAccess::load(&state, &user, &path).await?;
    access.require_manager()?;
    let bans = members::list_bans(&state.db, access.room.id).await?;
    Ok(HttpResponse::Ok().json(BanList { bans: bans.into_iter().map(BanView::from).collect() }))
}

/// Lift a ban (owner, moderators, admins). The user may then be added or invited again.
#[utoipa::path(tag = "members", security(("bearer" = [])), responses(
    (status = 204), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
))]
#[delete("/v1/rooms/{id}/bans/{user_id}")]
pub async fn unban_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, target) = path.into_inner();
    let access = RoomAccess::load(&state, &user, &room).await?;
    access.require_manager()?;
    let target = parse_user_id(&target)?;
    let mut tx = state.db.begin().await?;
    if !members::delete_ban(&mut *tx, access.room.id, target).await? {
        return Err(ApiError::NotFound);
    }
    audit(&mut tx, &req, user.id, "member.unban", Some(access.room.id), Some(target), serde_json::Value::Null).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
