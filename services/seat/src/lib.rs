//! A service's seat in a call. The recorder and the camera ingest take part in rooms the way
//! participants do: each signs its own join ticket with the API's key (room role `recorder` or
//! `camera`), connects to the first gateway that admits it and then exchanges SDP and ICE
//! candidates through it. This crate is the part they do the same way: the ticket, getting in, and
//! the ICE servers and candidates passed between the signaling JSON and webrtc-rs.

mod ice;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use confab_common::tokens::SigningKeys;
use confab_tickets::{MAX_TICKET_TTL_SECS, TICKET_AUDIENCE, TicketClaims};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use ice::{IceCandidate, IceServer, MediaSection};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A signaling connection to a gateway.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Who a service is in one room: what its self-signed tickets say.
#[derive(Clone)]
pub struct Pass {
    pub keys: Arc<SigningKeys>,
    pub issuer: String,
    pub user_id: String,
    pub display_name: String,
    /// `recorder` or `camera` ([`confab_tickets::RECORDER_ROLE`], [`confab_tickets::CAMERA_ROLE`]).
    pub room_role: &'static str,
    pub room_id: String,
    pub recording_id: Option<String>,
}

impl Pass {
    /// A fresh single-use ticket, valid for the longest time tickets may live.
    fn ticket(&self) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti)?;
        Ok(self.keys.sign(&TicketClaims {
            iss: self.issuer.clone(),
            aud: TICKET_AUDIENCE.into(),
            sub: self.user_id.clone(),
            exp: now + MAX_TICKET_TTL_SECS,
            iat: now,
            jti: jti.iter().map(|b| format!("{b:02x}")).collect(),
            room_id: self.room_id.clone(),
            display_name: self.display_name.clone(),
            room_role: self.room_role.into(),
            max_participants: 0,
            recording_id: self.recording_id.clone(),
        })?)
    }
}

/// Connects to the first of `gateways` that admits the holder of `pass`: the socket and the
/// `welcome` it sent (its `peer_id`, `peers` and `ice_servers`).
pub async fn enter(gateways: &[String], pass: &Pass) -> anyhow::Result<(Socket, Value)> {
    let mut last_error = anyhow::anyhow!("no gateway configured");
    for gateway in gateways {
        match tokio::time::timeout(CONNECT_TIMEOUT, enter_via(gateway, pass)).await {
            Ok(Ok(entered)) => return Ok(entered),
            Ok(Err(e)) => last_error = e,
            Err(_) => last_error = anyhow::anyhow!("{gateway} did not answer within {CONNECT_TIMEOUT:?}"),
        }
    }
    Err(last_error)
}

async fn enter_via(gateway: &str, pass: &Pass) -> anyhow::Result<(Socket, Value)> {
    let ticket = pass.ticket()?;
    let mut request = gateway.into_client_request()?;
    request.headers_mut().insert("sec-websocket-protocol", format!("confab.v1, confab.ticket.{ticket}").parse()?);
    // Nagle off: offers, answers and candidates are small frames that must not wait for an ACK.
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
        .await
        .with_context(|| format!("connecting to {gateway}"))?;
    while let Some(frame) = socket.next().await {
        if let Message::Text(text) = frame? {
            let mut first: Value = serde_json::from_str(&text)?;
            if first["welcome"]["peer_id"].as_str().is_none() {
                bail!("{gateway} refused the {}: {}", pass.room_role, first["error"]["code"]);
            }
            return Ok((socket, first["welcome"].take()));
        }
    }
    bail!("{gateway} closed before its welcome")
}
