//! Who may speak in a lecture besides its owner and moderators: a moderator lets a viewer in the
//! call speak, and takes it back. The grant is kept in Redis beside the call's presence and ends
//! with the peer's connection; every gateway tells the room, the media server's seat included,
//! which then lets the peer publish or ends its tracks (docs/protocol.md, "Letting a viewer
//! speak").

use actix_web::{HttpRequest, HttpResponse, delete, post, web};
use confab_common::http::RequestId;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{ErrorResponse, audit};
use crate::auth::current_user::CurrentUser;
use crate::auth::room_access::RoomAccess;
use crate::control::{Control, PeerPresence};
use crate::domain::{PeerId, RoomId, RoomMode, User, UserId};
use crate::error::ApiError;
use crate::openapi;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
pub struct SpeakerRequest {
    /// The viewer's peer id in the call (`GET /v1/rooms/{id}/participants`).
    #[schema(schema_with = openapi::peer_id)]
    pub peer_id: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SpeakerPath {
    /// The room.
    id: String,
    /// The viewer's peer id in the call.
    #[param(schema_with = openapi::peer_id)]
    peer_id: String,
}

/// Let a viewer in a lecture's call speak (owner, moderators, admins): it may publish until the
/// grant is taken back or its connection ends. Granting twice is fine.
#[utoipa::path(tag = "rooms", security(("bearer" = [])), request_body = SpeakerRequest, responses(
    (status = 204, description = "The peer may speak; every peer of the call is told `speak_granted`"),
    (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
    (status = 404, description = "No such room, or `unknown_peer`: the peer is not in the call", body = ErrorResponse),
    (status = 409, description = "`not_a_lecture`, or `not_a_person`: a camera", body = ErrorResponse),
))]
#[post("/v1/rooms/{id}/speakers")]
pub async fn grant_speaker(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    body: web::Json<SpeakerRequest>,
) -> Result<HttpResponse, ApiError> {
    let Speaker { room_id, peer_id, user_id } =
        find_speaker(&state, &user, &path, PeerId::parse(&body.peer_id)).await?;
    let mut tx = state.db.begin().await?;
    audit(&mut tx, &req, user.id, "speaker.grant", Some(room_id), user_id, details(&peer_id)).await?;
    // Stored before the commit: a failing audit leaves no grant behind; a commit failing after
    // it leaves a grant nobody was told of, which the moderator's retry tells.
    if !state.control.grant_speaker(room_id, &peer_id).await? {
        return Err(unknown_peer(&peer_id));
    }
    tx.commit().await?;
    state.control.send(&Control::GrantSpeaker { room_id, peer_id }, &RequestId::of(&req)).await;
    Ok(HttpResponse::NoContent().finish())
}

/// Take back a viewer's leave to speak (owner, moderators, admins): the media server ends its
/// tracks. Taking back what was not given is fine.
#[utoipa::path(tag = "rooms", security(("bearer" = [])), params(SpeakerPath), responses(
    (status = 204, description = "The peer may no longer speak; every peer of the call is told `speak_revoked`"),
    (status = 403, body = ErrorResponse),
    (status = 404, description = "No such room, or `unknown_peer`: the peer is not in the call", body = ErrorResponse),
    (status = 409, description = "`not_a_lecture`, or `not_a_person`: a camera", body = ErrorResponse),
))]
#[delete("/v1/rooms/{id}/speakers/{peer_id}")]
pub async fn revoke_speaker(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<SpeakerPath>,
) -> Result<HttpResponse, ApiError> {
    // A path that cannot name a peer names none, as ids that are not UUIDs name no room.
    let named =
        PeerId::parse(&path.peer_id).map_err(|_| ApiError::UnknownPeer("no such peer in this room's call".to_owned()));
    let Speaker { room_id, peer_id, user_id } = find_speaker(&state, &user, &path.id, named).await?;
    let mut tx = state.db.begin().await?;
    audit(&mut tx, &req, user.id, "speaker.revoke", Some(room_id), user_id, details(&peer_id)).await?;
    state.control.revoke_speaker(room_id, &peer_id).await?;
    tx.commit().await?;
    state.control.send(&Control::RevokeSpeaker { room_id, peer_id }, &RequestId::of(&req)).await;
    Ok(HttpResponse::NoContent().finish())
}

/// A person in a lecture's call, as a request to let them speak or take it back names them.
struct Speaker {
    room_id: RoomId,
    peer_id: PeerId,
    /// The user behind the peer, for the audit log.
    user_id: Option<UserId>,
}

/// The person `named` (a peer id as the request gave it) in the call of the lecture `room`, once
/// the caller is shown to manage the room: 404, 403, then the peer id's own error, 409 for a
/// meeting, 404 `unknown_peer` or 409 `not_a_person`, in that order.
async fn find_speaker(
    state: &AppState,
    user: &User,
    room: &str,
    named: Result<PeerId, ApiError>,
) -> Result<Speaker, ApiError> {
    let access = RoomAccess::load(state, user, room).await?;
    access.require_manager()?;
    let peer_id = named?;
    let room_id = lecture(&access)?;
    let peer = in_call(state, room_id, &peer_id).await?;
    Ok(Speaker { room_id, peer_id, user_id: UserId::parse(&peer.user_id).ok() })
}

/// The room's id if it is a lecture: in a meeting everyone already publishes.
fn lecture(access: &RoomAccess) -> Result<RoomId, ApiError> {
    match access.room.mode {
        RoomMode::Lecture => Ok(access.room.id),
        RoomMode::Meeting => Err(ApiError::Conflict {
            code: "not_a_lecture",
            message: "this room is a meeting, where everyone may speak; only a lecture's viewers are let speak",
        }),
    }
}

/// The person in the room's call with this peer id, from presence as the gateways keep it.
async fn in_call(state: &AppState, room_id: RoomId, peer_id: &PeerId) -> Result<PeerPresence, ApiError> {
    let peers = state.control.participants(room_id).await?;
    let peer = peers.into_iter().find(|p| p.peer_id == peer_id.as_str()).ok_or_else(|| unknown_peer(peer_id))?;
    if confab_domain::CallRole::names_a_service(&peer.role) {
        return Err(ApiError::Conflict {
            code: "not_a_person",
            message: "only people are let speak; this peer is a camera",
        });
    }
    Ok(peer)
}

fn unknown_peer(peer_id: &PeerId) -> ApiError {
    ApiError::UnknownPeer(format!("no peer \"{}\" in this room's call", peer_id.as_str()))
}

fn details(peer_id: &PeerId) -> serde_json::Value {
    serde_json::json!({"peer_id": peer_id.as_str()})
}
