//! Invites: links that make whoever opens them (and is signed in) a member of a room.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ErrorResponse, audit};
use crate::auth::current_user::CurrentUser;
use crate::auth::room_access::RoomAccess;
use crate::auth::tokens::{hash_secret, new_secret};
use crate::domain::{RoomId, RoomRole, UserId};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::invites::{self, Invite};
use crate::store::members;

const DEFAULT_EXPIRY: Duration = Duration::from_secs(7 * 86_400);
const MAX_EXPIRY: Duration = Duration::from_secs(30 * 86_400);

#[derive(Deserialize, ToSchema)]
pub struct CreateInviteRequest {
    /// How many people may use it: 1–1000, default 1.
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "crate::domain::whole_number")]
    pub max_uses: Option<i64>,
    /// Seconds until it expires: 60 to 30 days, default 7 days.
    #[schema(minimum = 60, maximum = 2_592_000)]
    #[serde(default, deserialize_with = "crate::domain::whole_number")]
    pub expires_in: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedInvite {
    pub id: Uuid,
    /// The secret, shown only in this reply.
    pub token: String,
    /// The web-client link that accepts it.
    pub url: String,
    pub max_uses: i32,
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct InviteView {
    pub id: Uuid,
    pub created_by: Option<UserId>,
    pub max_uses: i32,
    pub uses: i32,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
    pub created_at: DateTime<Utc>,
}

impl From<Invite> for InviteView {
    fn from(i: Invite) -> Self {
        Self {
            id: i.id,
            created_by: i.created_by,
            max_uses: i.max_uses,
            uses: i.uses,
            expires_at: i.expires_at,
            revoked: i.revoked_at.is_some(),
            created_at: i.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct InviteList {
    pub invites: Vec<InviteView>,
}

#[derive(Serialize, ToSchema)]
pub struct Membership {
    pub room_id: RoomId,
    pub role: RoomRole,
}

/// Create an invite (owner, moderators, admins).
#[utoipa::path(tag = "invites", security(("bearer" = [])), request_body = CreateInviteRequest, responses(
    (status = 201, body = CreatedInvite), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
    (status = 404, body = ErrorResponse),
))]
#[post("/v1/rooms/{id}/invites")]
pub async fn create_invite(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    body: web::Json<CreateInviteRequest>,
) -> Result<HttpResponse, ApiError> {
    let access = RoomAccess::load(&state, &user, &path).await?;
    access.require_manager()?;
    let max_uses = match body.max_uses.unwrap_or(1) {
        n @ 1..=1000 => n as i32,
        _ => return Err(ApiError::invalid("invalid_max_uses", "max_uses must be between 1 and 1000")),
    };
    let expires_in = match body.expires_in {
        None => DEFAULT_EXPIRY,
        Some(secs) if (60..=MAX_EXPIRY.as_secs() as i64).contains(&secs) => Duration::from_secs(secs as u64),
        Some(_) => return Err(ApiError::invalid("invalid_expires_in", "expires_in must be 60 s to 30 days")),
    };
    let token = new_secret();
    let mut tx = state.db.begin().await?;
    let invite = invites::insert_invite(
        &mut *tx,
        access.room.id,
        &hash_secret(&token),
        user.id,
        max_uses,
        Utc::now() + expires_in,
    )
    .await?;
    let details = serde_json::json!({"invite_id": invite.id, "max_uses": max_uses});
    audit(&mut tx, &req, user.id, "invite.create", Some(access.room.id), None, details).await?;
    tx.commit().await?;
    let url = format!("{}/invite/{token}", state.settings.public_url.trim_end_matches('/'));
    Ok(HttpResponse::Created().json(CreatedInvite {
        id: invite.id,
        token,
        url,
        max_uses,
        expires_at: invite.expires_at,
    }))
}

/// The invites of a room, newest first (never their tokens).
#[utoipa::path(tag = "invites", security(("bearer" = [])), responses(
    (status = 200, body = InviteList), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
))]
#[get("/v1/rooms/{id}/invites")]
pub async fn list_invites(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let access = RoomAccess::load(&state, &user, &path).await?;
    access.require_manager()?;
    let invites = invites::list_invites(&state.db, access.room.id).await?;
    Ok(HttpResponse::Ok().json(InviteList { invites: invites.into_iter().map(InviteView::from).collect() }))
}

/// Revoke an invite; it stops working at once.
#[utoipa::path(tag = "invites", security(("bearer" = [])), responses(
    (status = 204), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
))]
#[delete("/v1/rooms/{id}/invites/{invite_id}")]
pub async fn revoke_invite(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, invite) = path.into_inner();
    let access = RoomAccess::load(&state, &user, &room).await?;
    access.require_manager()?;
    let invite_id = Uuid::parse_str(&invite).map_err(|_| ApiError::NotFound)?;
    let mut tx = state.db.begin().await?;
    if !invites::revoke_invite(&mut *tx, access.room.id, invite_id).await? {
        return Err(ApiError::NotFound);
    }
    let details = serde_json::json!({"invite_id": invite_id});
    audit(&mut tx, &req, user.id, "invite.revoke", Some(access.room.id), None, details).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Accept an invite: the caller becomes a member. Unknown, expired, exhausted and revoked
/// tokens, and banned callers, all get the same 404. Accepting again as a member changes
/// nothing and uses nothing.
#[utoipa::path(tag = "invites", security(("bearer" = [])), responses(
    (status = 200, body = Membership), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse),
))]
#[post("/v1/invites/{token}/accept")]
pub async fn accept_invite(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if path.len() > 128 {
        return Err(ApiError::NotFound);
    }
    let token_hash = hash_secret(&path);
    let mut tx = state.db.begin().await?;
    let room_id = invites::find_invite_room(&mut *tx, &token_hash).await?.ok_or(ApiError::NotFound)?;
    if members::is_banned(&mut *tx, room_id, user.id).await? {
        return Err(ApiError::NotFound);
    }
    if let Some(member) = members::find_member(&mut *tx, room_id, user.id).await? {
        return Ok(HttpResponse::Ok().json(Membership { room_id, role: member.role }));
    }
    invites::use_invite(&mut *tx, &token_hash).await?.ok_or(ApiError::NotFound)?;
    members::insert_member(&mut *tx, room_id, user.id, RoomRole::Member).await?;
    tx.commit().await?;
    tracing::info!(room.id = %room_id, user.id = %user.id, "invite accepted");
    Ok(HttpResponse::Ok().json(Membership { room_id, role: RoomRole::Member }))
}
