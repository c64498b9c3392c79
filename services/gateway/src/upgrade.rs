//! `GET /v1/signal`: checks the browser's origin and the join ticket *before* upgrading (401/403
//! with nothing that helps an attacker), reserves the peer's place in the room, then hands the
//! socket to a connection task.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, ORIGIN, SEC_WEBSOCKET_PROTOCOL};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use confab_common::http::error_response;
use confab_domain::CallRole;
use confab_protocol::signal::{Peer, Welcome, server_message::Kind};
use confab_tickets::{TicketError, TicketVerifier};
use serde::Deserialize;
use tokio::sync::{Notify, mpsc, watch};

use crate::connection::{Connection, Identity, close};
use crate::hub::{Hub, JoinError};
use crate::presence;
use crate::rooms::{LocalPeer, message};
use crate::session::ProtocolError;
use crate::settings::Settings;
use crate::sfu_queue::RoomMedia;

/// The subprotocol a client offers next to its ticket; selected in the handshake reply.
pub const SUBPROTOCOL: &str = "confab.v1";
const TICKET_PREFIX: &str = "confab.ticket.";

pub struct Gateway {
    pub settings: Settings,
    pub hub: Arc<Hub>,
    pub tickets: TicketVerifier,
    pub shutdown: watch::Receiver<bool>,
}

#[derive(Deserialize)]
pub struct TicketQuery {
    ticket: Option<String>,
    /// The `resume_token` of an earlier connection, to keep its peer id.
    resume: Option<String>,
}

pub async fn signal(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<TicketQuery>,
    gateway: web::Data<Gateway>,
) -> Result<HttpResponse, actix_web::Error> {
    if !origin_allowed(&req, &gateway.settings.allowed_origins) {
        return Ok(error_response(StatusCode::FORBIDDEN, "origin_not_allowed", "this origin may not connect"));
    }
    let offered = offered_ticket(&req);
    let TicketQuery { ticket, resume } = query.into_inner();
    let Some(ticket) = offered.clone().or(ticket) else {
        return Ok(unauthorized());
    };
    let claims = match gateway.tickets.verify(&ticket).await {
        Ok(claims) => claims,
        Err(TicketError::Unavailable(reason)) => {
            tracing::warn!(%reason, "cannot verify tickets");
            return Ok(error_response(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again shortly"));
        }
        Err(e) => {
            tracing::info!(error = %e, "ticket refused");
            return Ok(unauthorized());
        }
    };

    let Ok(role) = claims.room_role.parse::<CallRole>() else {
        // Signed by the API, yet with a role no service issues: a ticket of another version.
        tracing::info!(role = %claims.room_role, "ticket refused: unknown room role");
        return Ok(unauthorized());
    };

    let ticket_protocol = offered.map(|t| format!("{TICKET_PREFIX}{t}"));
    let protocols: Vec<&str> = std::iter::once(SUBPROTOCOL).chain(ticket_protocol.as_deref()).collect();
    let (response, mut session, frames) = actix_ws::handle_with_protocols(&req, body, &protocols)?;
    let limits = gateway.settings.limits.clone();
    let frames = frames.max_frame_size(limits.max_message_bytes);

    let hub = gateway.hub.clone();
    let media = RoomMedia { media: claims.media(), mode: claims.mode() };
    let room_id = claims.room_id;
    let (outbound_tx, outbound) = mpsc::channel(limits.outbound_queue);
    let slow = Arc::new(Notify::new());
    let peer =
        Peer { peer_id: String::new(), user_id: claims.sub, display_name: claims.display_name, role: role.to_string() };
    // Only a recorder's ticket names a recording; anyone else's claim to one is ignored.
    let recording_id = if role == CallRole::Recorder { claims.recording_id.unwrap_or_default() } else { String::new() };
    let resume_token = new_secret(16);
    let local = LocalPeer {
        peer,
        role,
        joined_at: chrono::Utc::now().to_rfc3339(),
        recording_id,
        resume_hash: presence::resume_hash(&resume_token),
        media,
        outbound: outbound_tx,
        slow: slow.clone(),
    };
    // Recorders and cameras are never resumed: they rejoin afresh.
    let resume = resume.filter(|token| token.len() <= 64 && !role.is_service());
    let resumed = match resume {
        Some(token) => hub.resume(&room_id, &token, &local).await,
        None => Ok(None),
    };
    let admitted = match resumed {
        Ok(Some(resumed)) => Ok(resumed),
        Ok(None) => {
            let peer_id = new_peer_id();
            let local = LocalPeer { peer: Peer { peer_id: peer_id.clone(), ..local.peer.clone() }, ..local.clone() };
            hub.join(&room_id, local, claims.max_participants, limits.connections_per_user)
                .await
                .map(|view| (peer_id, view))
        }
        Err(e) => Err(e),
    };
    match admitted {
        Ok((peer_id, view)) => {
            metrics::counter!("gateway_joins_total").increment(1);
            let peer = Peer { peer_id, ..local.peer };
            let welcome = message(Kind::Welcome(Welcome {
                peer_id: peer.peer_id.clone(),
                room_id: room_id.clone(),
                peers: view.peers,
                ice_servers: gateway.settings.ice.servers_for(&peer.user_id, chrono::Utc::now().timestamp()),
                recording: view.recording.is_some(),
                resume_token,
                sfu: view.sfu,
            }));
            let text = serde_json::to_string(&welcome).expect("server messages serialize");
            // A late joiner learns where to send its media for the running recording.
            let recording = view.recording.map(|started| message(Kind::RecordingStarted(started)));
            tracing::info!(room.id = %room_id, peer.id = %peer.peer_id, user.id = %peer.user_id, "peer joined");
            let identity = Identity { room_id, peer, role, resume_hash: local.resume_hash };
            let connection = Connection { hub, identity, limits, outbound, slow, shutdown: gateway.shutdown.clone() };
            actix_web::rt::spawn(async move {
                if session.text(text).await.is_err() {
                    return;
                }
                if let Some(started) = recording {
                    let text = serde_json::to_string(&started).expect("server messages serialize");
                    if session.text(text).await.is_err() {
                        return;
                    }
                }
                connection.run(session, frames).await;
            });
        }
        Err(refusal) => {
            let (code, text) = match refusal {
                JoinError::Full => ("room_full", "the room is full".to_owned()),
                JoinError::TooManyConnections => {
                    ("too_many_connections", "close another tab or device in this room first".to_owned())
                }
                JoinError::Redis(e) => {
                    metrics::counter!("gateway_redis_errors_total").increment(1);
                    tracing::warn!(error = %e, "presence unavailable");
                    ("unavailable", "try again shortly".to_owned())
                }
            };
            metrics::counter!("gateway_joins_refused_total", "reason" => code).increment(1);
            let error = ProtocolError::new(code, text).to_message();
            actix_web::rt::spawn(async move {
                let text = serde_json::to_string(&error).expect("server messages serialize");
                let _ = session.text(text).await;
                let reason = actix_ws::CloseReason { code: close::POLICY.into(), description: Some(code.to_owned()) };
                let _ = session.close(Some(reason)).await;
            });
        }
    }
    Ok(response)
}

fn unauthorized() -> HttpResponse {
    error_response(StatusCode::UNAUTHORIZED, "unauthorized", "a valid ticket is required")
}

/// Browsers always send `Origin`; it must be allowed. Clients without one are not browsers.
fn origin_allowed(req: &HttpRequest, allowed: &[String]) -> bool {
    match req.headers().get(ORIGIN).map(HeaderValue::to_str) {
        None => true,
        Some(Ok(origin)) => allowed.iter().any(|a| a == origin),
        Some(Err(_)) => false,
    }
}

/// The ticket from a `confab.ticket.<ticket>` subprotocol, if offered.
fn offered_ticket(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(TICKET_PREFIX).map(str::to_owned))
}

/// 96 random bits, URL-safe: unguessable within a room.
fn new_peer_id() -> String {
    new_secret(12)
}

/// `bytes` random bytes, base64url.
fn new_secret(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the OS random source is available");
    URL_SAFE_NO_PAD.encode(buffer)
}
