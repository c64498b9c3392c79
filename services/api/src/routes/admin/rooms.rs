//! Administering rooms: list every room, delete one, see and kick live participants.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use confab_common::http::RequestId;

use crate::auth::admin::Admin;
use crate::control::Control;
use crate::domain::page::{Page, PageQuery};
use crate::domain::{RoomId, UserId};
use crate::error::ApiError;
use crate::removal::remove_room;
use crate::routes::join::ParticipantList;
use crate::routes::rooms::{DeleteRoomQuery, RoomList, RoomView, room_cursor};
use crate::routes::{ErrorResponse, audit};
use crate::state::AppState;
use crate::store::rooms;

async fn existing_room(state: &AppState, raw: &str) -> Result<RoomId, ApiError> {
    let id = RoomId::parse(raw)?;
    if rooms::room_exists(&state.db, id).await? { Ok(id) } else { Err(ApiError::NotFound) }
}

/// Every room, newest first.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = RoomList), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
))]
#[get("/v1/admin/rooms")]
pub async fn list_all_rooms(
    state: web::Data<AppState>,
    _admin: Admin,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(&query)?;
    let rows = rooms::list_all_rooms(&state.db, &page).await?;
    let (rows, next_cursor) = page.finish(rows, room_cursor);
    let rooms = rows.into_iter().map(|room| RoomView::new(room, None)).collect();
    Ok(HttpResponse::Ok().json(RoomList { rooms, next_cursor }))
}

/// Delete any room; its live call ends. Its recordings are kept unless `delete_recordings=true`,
/// as for its owner's delete.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(DeleteRoomQuery), responses(
    (status = 204), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
    (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
))]
#[delete("/v1/admin/rooms/{id}")]
pub async fn delete_any_room(
    req: HttpRequest,
    state: web::Data<AppState>,
    Admin(admin): Admin,
    path: web::Path<String>,
    query: web::Query<DeleteRoomQuery>,
) -> Result<HttpResponse, ApiError> {
    let room_id = RoomId::parse(&path)?;
    let request_id = RequestId::of(&req);
    remove_room(&state, query.removal(room_id, admin.id, "admin.room.delete", &request_id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Who is in a room's call now.
#[utoipa::path(tag = "admin", security(("bearer" = [])), responses(
    (status = 200, body = ParticipantList), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
))]
#[get("/v1/admin/rooms/{id}/participants")]
pub async fn room_participants(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let room_id = existing_room(&state, &path).await?;
    let participants = state.control.participants(room_id).await?;
    Ok(HttpResponse::Ok().json(ParticipantList { participants }))
}

/// Disconnect one connection from a call. Accepted once the gateways have been told.
#[utoipa::path(tag = "admin", security(("bearer" = [])), responses(
    (status = 202), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
))]
#[post("/v1/admin/rooms/{id}/participants/{peer_id}/kick")]
pub async fn kick_participant(
    req: HttpRequest,
    state: web::Data<AppState>,
    Admin(admin): Admin,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, peer_id) = path.into_inner();
    let room_id = existing_room(&state, &room).await?;
    let peers = state.control.participants(room_id).await?;
    let peer = peers.into_iter().find(|p| p.peer_id == peer_id).ok_or(ApiError::NotFound)?;
    let mut tx = state.db.begin().await?;
    let details = serde_json::json!({"peer_id": peer.peer_id});
    let target = UserId::parse(&peer.user_id).ok();
    audit(&mut tx, &req, admin.id, "participant.kick", Some(room_id), target, details).await?;
    tx.commit().await?;
    state.control.send(&Control::KickPeer { room_id, peer_id: peer.peer_id }, &RequestId::of(&req)).await;
    Ok(HttpResponse::Accepted().finish())
}
