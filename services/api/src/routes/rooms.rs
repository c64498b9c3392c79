//! Rooms: create, list mine, read, change, delete.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use confab_common::http::RequestId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ErrorResponse;
use crate::auth::current_user::CurrentUser;
use crate::auth::room_access::RoomAccess;
use crate::domain::page::{Cursor, Page, PageQuery};
use crate::domain::whole_number;
use crate::domain::{GivenSettings, MediaRouting, Room, RoomId, RoomMode, RoomName, RoomRole, RoomSettings, UserId};
use crate::error::ApiError;
use crate::openapi;
use crate::removal::{RemoveRoomError, RoomRemoval, remove_room};
use crate::state::AppState;
use crate::store::rooms;

#[derive(Deserialize, ToSchema)]
pub struct CreateRoomRequest {
    #[schema(schema_with = openapi::name)]
    pub name: String,
    /// Default 8; at most 8 when `media` is `mesh`, 50 in a `meeting`, 1000 in a `lecture`.
    #[schema(minimum = 2, maximum = 1000)]
    #[serde(default, deserialize_with = "whole_number")]
    pub max_participants: Option<i64>,
    /// Default `auto`.
    #[schema(schema_with = openapi::media)]
    pub media: Option<String>,
    /// Default `meeting`.
    #[schema(schema_with = openapi::mode)]
    pub mode: Option<String>,
}

/// What is absent or `null` stays as it is. A change of `media` or `mode` must leave
/// `max_participants` within the new limit (8 for `mesh`, 50 for a `meeting`, 1000 for a
/// `lecture`): it is never lowered to fit, so send a smaller one along; 409
/// `invalid_max_participants` when the room's current `max_participants` is too many.
#[derive(Deserialize, ToSchema)]
pub struct UpdateRoomRequest {
    #[schema(schema_with = openapi::optional_name)]
    pub name: Option<String>,
    #[schema(minimum = 2, maximum = 1000)]
    #[serde(default, deserialize_with = "whole_number")]
    pub max_participants: Option<i64>,
    #[schema(schema_with = openapi::media)]
    pub media: Option<String>,
    #[schema(schema_with = openapi::mode)]
    pub mode: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RoomView {
    pub id: RoomId,
    pub name: String,
    pub owner_id: UserId,
    pub max_participants: i32,
    /// Stored and checked; until confab-sfu serves rooms every call runs as a mesh.
    pub media: MediaRouting,
    /// Stored and checked; calls do not enforce `lecture` yet.
    pub mode: RoomMode,
    pub created_at: DateTime<Utc>,
    /// The caller's role; absent for an admin who is not a member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub my_role: Option<RoomRole>,
}

impl RoomView {
    pub fn new(room: Room, my_role: Option<RoomRole>) -> Self {
        Self {
            id: room.id,
            name: room.name,
            owner_id: room.owner_id,
            max_participants: room.max_participants,
            media: room.media,
            mode: room.mode,
            created_at: room.created_at,
            my_role,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RoomList {
    pub rooms: Vec<RoomView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

pub fn room_cursor(room: &Room) -> Cursor {
    Cursor { created_at: room.created_at, id: room.id.uuid() }
}

/// Create a private room; the caller becomes its owner.
#[utoipa::path(tag = "rooms", security(("bearer" = [])), request_body = CreateRoomRequest, responses(
    (status = 201, body = RoomView), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
))]
#[post("/v1/rooms")]
pub async fn create_room(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    body: web::Json<CreateRoomRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = RoomName::parse(&body.name)?;
    let given = GivenSettings::parse(body.max_participants, body.media.as_deref(), body.mode.as_deref())?;
    let settings = RoomSettings::new(given)?;
    let mut tx = state.db.begin().await?;
    let room = rooms::insert_room(&mut tx, user.id, name.as_str(), settings).await?;
    tx.commit().await?;
    tracing::info!(room.id = %room.id, user.id = %user.id, "room created");
    Ok(HttpResponse::Created().json(RoomView::new(room, Some(RoomRole::Owner))))
}

/// Rooms I own or belong to, newest first.
#[utoipa::path(tag = "rooms", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = RoomList), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
))]
#[get("/v1/rooms")]
pub async fn list_rooms(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(&query)?;
    let rows = rooms::list_rooms_of_user(&state.db, user.id, &page).await?;
    let (rows, next_cursor) = page.finish(rows, |(room, _)| room_cursor(room));
    let rooms = rows.into_iter().map(|(room, role)| RoomView::new(room, Some(role))).collect();
    Ok(HttpResponse::Ok().json(RoomList { rooms, next_cursor }))
}

/// One room (members and admins; 404 for everyone else).
#[utoipa::path(tag = "rooms", security(("bearer" = [])), responses(
    (status = 200, body = RoomView), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse),
))]
#[get("/v1/rooms/{id}")]
pub async fn get_room(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let access = RoomAccess::load(&state, &user, &path).await?;
    Ok(HttpResponse::Ok().json(RoomView::new(access.room, access.role)))
}

/// Rename a room or change its capacity, media or mode (owner, moderators, admins).
#[utoipa::path(tag = "rooms", security(("bearer" = [])), request_body = UpdateRoomRequest, responses(
    (status = 200, body = RoomView), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
    (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
))]
#[patch("/v1/rooms/{id}")]
pub async fn update_room(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    body: web::Json<UpdateRoomRequest>,
) -> Result<HttpResponse, ApiError> {
    let access = RoomAccess::load(&state, &user, &path).await?;
    access.require_manager()?;
    let name = body.name.as_deref().map(RoomName::parse).transpose()?;
    let given = GivenSettings::parse(body.max_participants, body.media.as_deref(), body.mode.as_deref())?;
    let mut tx = state.db.begin().await?;
    // Checked against the settings it replaces, with the row locked against a concurrent change.
    let current = rooms::find_room_for_update(&mut tx, access.room.id).await?.ok_or(ApiError::NotFound)?;
    let settings = current.settings().change(given)?;
    let room = rooms::update_room(&mut *tx, current.id, name.as_ref().map(RoomName::as_str), settings).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(RoomView::new(room, access.role)))
}

/// `?delete_recordings=` of a room's delete (also the admin's); nothing else is accepted.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteRoomQuery {
    /// `true` deletes the room's recordings and their files too (409 while one is running).
    /// By default they are kept for the people who were in the room when they were made.
    #[param(default = false)]
    pub delete_recordings: Option<bool>,
}

/// Delete a room (owner, admins): its members, bans and invites go with it, its live call ends
/// and a running recording is stopped. Its recordings are kept, visible to the room's members at
/// recording time, unless `delete_recordings=true` (see docs/architecture.md).
#[utoipa::path(tag = "rooms", security(("bearer" = [])), params(DeleteRoomQuery), responses(
    (status = 204), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
    (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
))]
#[delete("/v1/rooms/{id}")]
pub async fn delete_room(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    query: web::Query<DeleteRoomQuery>,
) -> Result<HttpResponse, ApiError> {
    let access = RoomAccess::load(&state, &user, &path).await?;
    access.require_owner()?;
    let request_id = RequestId::of(&req);
    remove_room(&state, query.removal(access.room.id, user.id, "room.delete", &request_id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

impl DeleteRoomQuery {
    /// The removal this delete asks for.
    pub fn removal<'a>(&self, room_id: RoomId, actor: UserId, action: &'a str, request_id: &'a str) -> RoomRemoval<'a> {
        let delete_recordings = self.delete_recordings.unwrap_or(false);
        RoomRemoval { room_id, actor, action, delete_recordings, request_id }
    }
}

impl From<RemoveRoomError> for ApiError {
    fn from(e: RemoveRoomError) -> Self {
        match e {
            RemoveRoomError::NotFound => ApiError::NotFound,
            RemoveRoomError::RecordingRunning => ApiError::Conflict {
                code: "recording_running",
                message: "stop the room's recording before deleting the room with its recordings",
            },
            RemoveRoomError::Database(e) => e.into(),
        }
    }
}
