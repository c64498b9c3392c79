//! Join tickets and the live participants of a room's call.

use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, get, post, web};
use chrono::Utc;
use confab_tickets::{MAX_TICKET_TTL_SECS, TicketClaims, TicketHolder};
use serde::Serialize;
use utoipa::ToSchema;

use super::ErrorResponse;
use crate::auth::current_user::CurrentUser;
use crate::auth::room_access::RoomAccess;
use crate::control::PeerPresence;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct JoinTicket {
    /// A single-use EdDSA JWT for the gateway (`aud` `confab-gateway`).
    pub ticket: String,
    /// The WebSocket URL to present it to.
    pub gateway_url: String,
    /// Seconds the ticket stays valid.
    pub expires_in: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ParticipantList {
    pub participants: Vec<PeerPresence>,
}

/// A ticket to enter the room's call (members only). Gateways are handed out in turn.
#[utoipa::path(tag = "rooms", security(("bearer" = [])), responses(
    (status = 200, body = JoinTicket), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
))]
#[post("/v1/rooms/{id}/join")]
pub async fn join_room(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let access = RoomAccess::load(&state, &user, &path).await?;
    let role =
        access.role.ok_or(ApiError::Forbidden { code: "not_a_member", message: "only members can join the call" })?;
    let holder = TicketHolder {
        user_id: user.id.to_string(),
        display_name: user.display_name,
        room_id: access.room.id.to_string(),
        role: role.into(),
        max_participants: access.room.max_participants as u32,
        recording_id: None,
    };
    let claims = TicketClaims::issue(&state.settings.jwt_issuer, holder, Utc::now().timestamp())
        .with_room_settings(access.room.media, access.room.mode);
    let ticket = state.access_tokens.keys().sign(&claims).map_err(|e| ApiError::Internal(e.into()))?;
    let gateways = &state.settings.gateway_urls;
    let next = state.next_gateway.fetch_add(1, Ordering::Relaxed) % gateways.len();
    Ok(HttpResponse::Ok().json(JoinTicket {
        ticket,
        gateway_url: gateways[next].clone(),
        expires_in: MAX_TICKET_TTL_SECS,
    }))
}

/// Who is in the room's call now (members and admins).
#[utoipa::path(tag = "rooms", security(("bearer" = [])), responses(
    (status = 200, body = ParticipantList), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse),
))]
#[get("/v1/rooms/{id}/participants")]
pub async fn list_participants(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let access = RoomAccess::load(&state, &user, &path).await?;
    let participants = state.control.participants(access.room.id).await?;
    Ok(HttpResponse::Ok().json(ParticipantList { participants }))
}
