//! The recorder's seat in a call: a signaling connection to a gateway with a ticket for room role
//! `recorder`, signed with the API's key. The gateways keep it hidden from participants and tell
//! them `recording_started` / `recording_stopped` as it comes and goes (docs/protocol.md).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use confab_common::tokens::SigningKeys;
use confab_tickets::{MAX_TICKET_TTL_SECS, TICKET_AUDIENCE, TicketClaims};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const RECORDER_ROLE: &str = "recorder";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Who the recorder is in its tickets.
pub struct Identity<'a> {
    pub keys: &'a SigningKeys,
    pub issuer: &'a str,
    pub recorder_id: &'a str,
}

/// A joined call.
pub struct Call {
    socket: Socket,
    pub peer_id: String,
}

impl Call {
    /// Joins `room_id` for `recording_id` through the first of `gateways` that admits it.
    pub async fn join(
        identity: &Identity<'_>,
        gateways: &[String],
        room_id: &str,
        recording_id: &str,
    ) -> anyhow::Result<Self> {
        let mut last_error = anyhow::anyhow!("no gateway configured");
        for gateway in gateways {
            match tokio::time::timeout(CONNECT_TIMEOUT, Self::join_via(identity, gateway, room_id, recording_id)).await
            {
                Ok(Ok(call)) => return Ok(call),
                Ok(Err(e)) => last_error = e,
                Err(_) => last_error = anyhow::anyhow!("{gateway} did not answer within {CONNECT_TIMEOUT:?}"),
            }
        }
        Err(last_error)
    }

    async fn join_via(
        identity: &Identity<'_>,
        gateway: &str,
        room_id: &str,
        recording_id: &str,
    ) -> anyhow::Result<Self> {
        let ticket = ticket(identity, room_id, recording_id)?;
        let mut request = gateway.into_client_request()?;
        request.headers_mut().insert("sec-websocket-protocol", format!("confab.v1, confab.ticket.{ticket}").parse()?);
        let (mut socket, _) =
            tokio_tungstenite::connect_async(request).await.with_context(|| format!("connecting to {gateway}"))?;
        while let Some(frame) = socket.next().await {
            if let Message::Text(text) = frame? {
                let first: serde_json::Value = serde_json::from_str(&text)?;
                let Some(peer_id) = first["welcome"]["peer_id"].as_str() else {
                    bail!("{gateway} refused the recorder: {}", first["error"]["code"]);
                };
                return Ok(Self { peer_id: peer_id.to_owned(), socket });
            }
        }
        bail!("{gateway} closed before its welcome")
    }

    /// Stays in the call until `stop` completes (or the gateway ends the connection; then
    /// `false`), then leaves with `bye`. Offers from participants arrive here; answering them
    /// with a media connection is the media pipeline's job.
    pub async fn stay_until(mut self, stop: impl Future<Output = ()>) -> bool {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => {
                    let _ = self.socket.send(Message::text(r#"{"bye":{}}"#)).await;
                    let _ = self.socket.close(None).await;
                    return true;
                }
                frame = self.socket.next() => match frame {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
}

fn ticket(identity: &Identity<'_>, room_id: &str, recording_id: &str) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti)?;
    Ok(identity.keys.sign(&TicketClaims {
        iss: identity.issuer.to_owned(),
        aud: TICKET_AUDIENCE.into(),
        sub: identity.recorder_id.to_owned(),
        exp: now + MAX_TICKET_TTL_SECS,
        iat: now,
        jti: jti.iter().map(|b| format!("{b:02x}")).collect(),
        room_id: room_id.to_owned(),
        display_name: "Recorder".into(),
        room_role: RECORDER_ROLE.into(),
        max_participants: 0,
        recording_id: Some(recording_id.to_owned()),
    })?)
}
