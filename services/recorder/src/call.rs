//! The recorder's seat in a call: a signaling connection to a gateway with a ticket for room role
//! `recorder`, signed with the API's key. The gateways keep it hidden from participants and tell
//! them `recording_started` / `recording_stopped` as it comes and goes (docs/protocol.md). Here the
//! recorder answers each participant's media offer and keeps track of who is who for the files.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use confab_common::tokens::SigningKeys;
use confab_tickets::{MAX_TICKET_TTL_SECS, RECORDER_ROLE, TICKET_AUDIENCE, TicketClaims};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::peer::{IceCandidate, IceServer, PeerConfig};
use crate::recorded_peer::RecordedPeer;
use crate::webm_file::FinishedFile;

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
    /// Everyone in the call by peer id: (user id, display name), for the file rows.
    people: HashMap<String, (String, String)>,
    ice_servers: Vec<IceServer>,
}

/// One participant's files.
pub struct Recorded {
    pub peer_id: String,
    pub user_id: String,
    pub display_name: String,
    pub files: Vec<FinishedFile>,
}

/// How a call ended for the recorder.
#[derive(Default)]
pub struct Outcome {
    /// The recording was stopped (rather than the call ending under the recorder).
    pub stopped: bool,
    pub recorded: Vec<Recorded>,
    /// Participants whose media could not be written, with why.
    pub failures: Vec<String>,
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
                let welcome = &first["welcome"];
                let Some(peer_id) = welcome["peer_id"].as_str() else {
                    bail!("{gateway} refused the recorder: {}", first["error"]["code"]);
                };
                let mut call =
                    Self { peer_id: peer_id.to_owned(), socket, people: HashMap::new(), ice_servers: Vec::new() };
                call.ice_servers = welcome["ice_servers"].as_array().into_iter().flatten().map(ice_server).collect();
                for peer in welcome["peers"].as_array().into_iter().flatten() {
                    call.meet(peer);
                }
                return Ok(call);
            }
        }
        bail!("{gateway} closed before its welcome")
    }

    /// Records every participant that offers its media until `stop` completes (or the gateway
    /// ends the connection), then leaves with `bye` and finishes every participant's files, which
    /// go under `dir`.
    pub async fn record_until(mut self, dir: &Path, stop: impl Future<Output = ()>) -> Outcome {
        tokio::pin!(stop);
        let (signals, mut outgoing) = mpsc::unbounded_channel::<String>();
        let mut recording: HashMap<String, RecordedPeer> = HashMap::new();
        let mut outcome = Outcome::default();
        loop {
            tokio::select! {
                () = &mut stop => {
                    outcome.stopped = true;
                    let _ = self.socket.send(Message::text(r#"{"bye":{}}"#)).await;
                    let _ = self.socket.close(None).await;
                    break;
                }
                Some(text) = outgoing.recv() => {
                    if self.socket.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                frame = self.socket.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        let Ok(message) = serde_json::from_str::<Value>(&text) else { continue };
                        self.handle(&message, dir, &signals, &mut recording, &mut outcome).await;
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        for (peer_id, recorded) in recording.drain() {
            self.finish(&peer_id, recorded, &mut outcome).await;
        }
        outcome
    }

    async fn handle(
        &mut self,
        message: &Value,
        dir: &Path,
        signals: &mpsc::UnboundedSender<String>,
        recording: &mut HashMap<String, RecordedPeer>,
        outcome: &mut Outcome,
    ) {
        if let Some(peer) = message.get("peer_joined").map(|m| &m["peer"]) {
            self.meet(peer);
        } else if let Some(peers) = message["resync"]["peers"].as_array() {
            peers.iter().for_each(|peer| self.meet(peer));
        } else if let Some(left) = message["peer_left"]["peer_id"].as_str() {
            if let Some(recorded) = recording.remove(left) {
                self.finish(left, recorded, outcome).await;
            }
        } else if let Some(signal) = message.get("signal") {
            let Some(from) = signal["from"].as_str() else { return };
            if signal["sdp"]["type"] == "offer" {
                // A new offer from a participant already recorded (a restarted connection): its
                // earlier files are finished and a new one begins.
                if let Some(earlier) = recording.remove(from) {
                    self.finish(from, earlier, outcome).await;
                }
                let sdp = signal["sdp"]["sdp"].as_str().unwrap_or_default();
                let path = dir.join(format!("{}.webm", Uuid::new_v4()));
                let config = PeerConfig { ice_servers: self.ice_servers.clone(), ..PeerConfig::default() };
                match RecordedPeer::start(from, sdp, path, &config, signals.clone()).await {
                    Ok(recorded) => {
                        recording.insert(from.to_owned(), recorded);
                    }
                    Err(e) => tracing::warn!(peer.id = from, error = %e, "cannot answer a participant's media offer"),
                }
            } else if let (Some(candidate), Some(recorded)) = (signal.get("candidate"), recording.get(from)) {
                recorded
                    .add_candidate(IceCandidate {
                        candidate: candidate["candidate"].as_str().unwrap_or_default().to_owned(),
                        sdp_mid: candidate["sdp_mid"].as_str().map(str::to_owned),
                        sdp_mline_index: candidate["sdp_mline_index"].as_u64().and_then(|i| u16::try_from(i).ok()),
                    })
                    .await;
            }
        }
    }

    /// Remembers who a listed peer is.
    fn meet(&mut self, peer: &Value) {
        if let Some(peer_id) = peer["peer_id"].as_str() {
            let user_id = peer["user_id"].as_str().unwrap_or_default().to_owned();
            let name = peer["display_name"].as_str().unwrap_or_default().to_owned();
            self.people.insert(peer_id.to_owned(), (user_id, name));
        }
    }

    async fn finish(&self, peer_id: &str, recorded: RecordedPeer, outcome: &mut Outcome) {
        let (user_id, display_name) = self.people.get(peer_id).cloned().unwrap_or_default();
        match recorded.finish().await {
            Ok(files) => outcome.recorded.push(Recorded { peer_id: peer_id.to_owned(), user_id, display_name, files }),
            Err(e) => {
                tracing::warn!(peer.id = peer_id, error = %e, "a participant's media could not be written");
                outcome.failures.push(format!("{display_name}: {e}"));
            }
        }
    }
}

fn ice_server(server: &Value) -> IceServer {
    let text = |key: &str| server[key].as_str().unwrap_or_default().to_owned();
    let urls = server["urls"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
    IceServer { urls, username: text("username"), credential: text("credential") }
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
