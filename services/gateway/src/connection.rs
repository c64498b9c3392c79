//! One WebSocket connection, from welcome to goodbye: a single `select!` over client frames, the
//! outbound queue, the heartbeat and shutdown. Protocol errors are answered and survived;
//! transport errors end the connection, logged once here.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix_ws::{AggregatedMessage, CloseCode, CloseReason, MessageStream, Session};
use confab_domain::CallRole;
use confab_protocol::signal::{
    Broadcast, Pong, ServerMessage, Signal, client_message::Kind as Client, server_message::Kind as Server,
};
use tokio::sync::{Notify, mpsc, watch};

use crate::frames::{FrameError, Reassembler};
use crate::hub::{Hub, Undelivered};
use crate::rooms::{Outbound, message};
use crate::session::{ProtocolError, RateLimit, Verdict, decode};
use crate::settings::Limits;
use crate::signal_rules;

/// Close codes used by the gateway (RFC 6455 §7.4).
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const PROTOCOL: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const RESTARTING: u16 = 1012;
}

/// How long a close frame may wait for a client to make room for it.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Who is on the other end of the socket.
pub struct Identity {
    pub room_id: String,
    pub peer: confab_protocol::signal::Peer,
    pub role: CallRole,
    /// The hash of the `resume_token` given in `welcome`: names this connection in presence.
    pub resume_hash: String,
}

/// Everything a connection task needs besides its socket.
pub struct Connection {
    pub hub: Arc<Hub>,
    pub identity: Identity,
    pub limits: Limits,
    pub outbound: mpsc::Receiver<Outbound>,
    pub slow: Arc<Notify>,
    pub shutdown: watch::Receiver<bool>,
}

impl Connection {
    /// Serves the connection until it ends, then removes the peer from its room.
    pub async fn run(mut self, mut session: Session, mut frames: MessageStream) {
        metrics::gauge!("gateway_connections_active").increment(1);
        let (reason, close_code) = self.serve(&mut session, &mut frames).await;
        let Identity { room_id, peer, role, resume_hash } = &self.identity;
        // A silent peer (`timeout`) has been gone for half a minute already: it leaves at once. A
        // recorder or camera is not resumed: it rejoins afresh with a fresh connection. A
        // superseded connection is no longer the peer's: neither touches its place.
        let resumable = !role.is_service() && matches!(reason, "disconnected" | "server_restarting");
        if resumable {
            self.hub.park(room_id, &peer.peer_id, resume_hash, self.limits.resume_window).await;
        } else {
            self.hub.leave(room_id, &peer.peer_id, resume_hash, reason).await;
        }
        let description = Some(reason.to_owned());
        let closing = session.close(Some(CloseReason { code: CloseCode::from(close_code), description }));
        // A client that stopped reading cannot take the close frame either: drop it after a moment.
        let _ = tokio::time::timeout(CLOSE_WAIT, closing).await;
        metrics::gauge!("gateway_connections_active").decrement(1);
        metrics::counter!("gateway_leaves_total", "reason" => reason).increment(1);
        tracing::info!(room.id = %self.identity.room_id, peer.id = %self.identity.peer.peer_id, reason, "connection ended");
    }

    /// Returns why the connection ended and the close code to send.
    async fn serve(&mut self, session: &mut Session, frames: &mut MessageStream) -> (&'static str, u16) {
        let scale = allowance_scale(self.identity.role);
        let mut limit =
            RateLimit::new(self.limits.messages_per_second * scale, self.limits.message_burst * scale, Instant::now());
        let mut heartbeat = tokio::time::interval(self.limits.heartbeat);
        heartbeat.tick().await;
        let mut last_heard = Instant::now();
        let mut reassembler = Reassembler::new(self.limits.max_message_bytes);
        loop {
            tokio::select! {
                frame = frames.recv() => {
                    last_heard = Instant::now();
                    let Some(frame) = frame else { return ("disconnected", close::NORMAL) };
                    match reassembler.push(frame) {
                        Ok(None) => {}
                        Ok(Some(AggregatedMessage::Text(text))) => match limit.check(Instant::now()) {
                            Verdict::Allow => {
                                if let Some(end) = self.handle(session, &text, SystemTime::now()).await {
                                    return end;
                                }
                            }
                            Verdict::Refuse => {
                                metrics::counter!("gateway_dropped_messages_total", "reason" => "rate_limited").increment(1);
                                let error = ProtocolError::new("rate_limited", "too many messages; slow down");
                                if send(session, &error.to_message()).await.is_err() {
                                    return ("disconnected", close::NORMAL);
                                }
                            }
                            Verdict::Disconnect => return ("rate_limited", close::POLICY),
                        },
                        Ok(Some(AggregatedMessage::Binary(_))) => {
                            let error = ProtocolError::new("malformed_message", "send JSON text frames");
                            if send(session, &error.to_message()).await.is_err() {
                                return ("disconnected", close::NORMAL);
                            }
                        }
                        Ok(Some(AggregatedMessage::Ping(bytes))) => {
                            if session.pong(&bytes).await.is_err() {
                                return ("disconnected", close::NORMAL);
                            }
                        }
                        Ok(Some(AggregatedMessage::Pong(_))) => {}
                        // A normal close is a goodbye; anything else may be a reload or a network
                        // change, so the peer is kept for a resume.
                        Ok(Some(AggregatedMessage::Close(Some(r)))) if r.code == CloseCode::Normal => {
                            return ("left", close::NORMAL);
                        }
                        Ok(Some(AggregatedMessage::Close(_))) => return ("disconnected", close::NORMAL),
                        // A client that breaks the protocol is not resumed: it leaves at once.
                        Err(FrameError::TooBig) => return ("message_too_big", close::TOO_BIG),
                        Err(FrameError::InvalidUtf8) => return ("invalid_utf8", close::INVALID_DATA),
                        Err(FrameError::Lost(e)) => {
                            tracing::debug!(error = %e, "connection lost");
                            return ("disconnected", close::NORMAL);
                        }
                        Err(FrameError::Protocol(e)) => {
                            tracing::debug!(error = %e, "websocket protocol error");
                            return ("protocol_error", close::PROTOCOL);
                        }
                    }
                }
                out = self.outbound.recv() => match out {
                    Some(Outbound::Message { message, read_at }) => {
                        // A reader that stopped reading blocks this send; its overflowing queue
                        // must still be able to end the connection.
                        tokio::select! {
                            sent = send(session, &message) => match sent {
                                Ok(()) => observe_relay(read_at),
                                Err(_) => return ("disconnected", close::NORMAL),
                            },
                            () = self.slow.notified() => {
                                metrics::counter!("gateway_slow_consumer_disconnects_total").increment(1);
                                return ("slow_consumer", close::POLICY);
                            }
                        }
                    }
                    Some(Outbound::CloseWith { message, code }) => {
                        let _ = send(session, &message).await;
                        return (reason_of(&message), code);
                    }
                    Some(Outbound::Superseded) => return ("resumed_elsewhere", close::NORMAL),
                    None => return ("disconnected", close::NORMAL),
                },
                () = self.slow.notified() => {
                    metrics::counter!("gateway_slow_consumer_disconnects_total").increment(1);
                    return ("slow_consumer", close::POLICY);
                }
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() >= self.limits.dead_after {
                        return ("timeout", close::NORMAL);
                    }
                    if session.ping(b"").await.is_err() {
                        return ("disconnected", close::NORMAL);
                    }
                }
                _ = self.shutdown.changed() => return ("server_restarting", close::RESTARTING),
            }
        }
    }

    /// Acts on one client frame, read at `read_at`; `Some` ends the connection.
    async fn handle(&self, session: &mut Session, text: &str, read_at: SystemTime) -> Option<(&'static str, u16)> {
        let (room_id, peer_id) = (&self.identity.room_id, &self.identity.peer.peer_id);
        let decoded = decode(text);
        let kind = match &decoded {
            Ok(Client::Signal(_)) => "signal",
            Ok(Client::Broadcast(_)) => "broadcast",
            Ok(Client::Ping(_)) => "ping",
            Ok(Client::Pong(_)) => "pong",
            Ok(Client::Bye(_)) => "bye",
            Err(_) => "invalid",
        };
        metrics::counter!("gateway_messages_in_total", "type" => kind).increment(1);
        let reply = match decoded {
            Err(error) => Some(error.to_message()),
            Ok(Client::Signal(signal)) => match signal_rules::check(&signal, self.identity.role) {
                Ok(()) => self.relay(signal, read_at).await,
                Err(refused) => Some(refused.to_message()),
            },
            Ok(Client::Broadcast(broadcast)) => {
                let forwarded = message(Server::Broadcast(Broadcast { from: peer_id.clone(), data: broadcast.data }));
                self.hub.broadcast(room_id, peer_id, forwarded, read_at);
                None
            }
            Ok(Client::Ping(ping)) => Some(message(Server::Pong(Pong { timestamp_ms: ping.timestamp_ms }))),
            Ok(Client::Pong(_)) => None,
            Ok(Client::Bye(_)) => return Some(("left", close::NORMAL)),
        };
        match reply {
            Some(reply) if send(session, &reply).await.is_err() => Some(("disconnected", close::NORMAL)),
            _ => None,
        }
    }
}

impl Connection {
    /// Hands a signal to the peer it names; the error to answer if there is no such peer.
    async fn relay(&self, signal: Signal, read_at: SystemTime) -> Option<ServerMessage> {
        let (room_id, peer_id) = (&self.identity.room_id, &self.identity.peer.peer_id);
        let forwarded = message(Server::Signal(Signal { to: String::new(), from: peer_id.clone(), ..signal.clone() }));
        match self.hub.deliver(room_id, &signal.to, forwarded, read_at).await {
            Ok(()) => None,
            Err(Undelivered::UnknownPeer) => {
                Some(ProtocolError::new("unknown_peer", format!("no peer {:?} in this room", signal.to)).to_message())
            }
        }
    }
}

/// How many times a participant's message allowance a seat gets. The recorder answers and a
/// camera offers every participant at once; the SFU signals every participant of rooms of up to
/// a thousand (one `speaker` each at every change of speaker, a new offer each as tracks come and
/// go), so ten times would cut a lecture's SFU off at its first speaker.
fn allowance_scale(role: CallRole) -> f64 {
    match role {
        CallRole::Sfu => 100.0,
        CallRole::Recorder | CallRole::Camera => 10.0,
        CallRole::Person(_) => 1.0,
    }
}

async fn send(session: &mut Session, message: &ServerMessage) -> Result<(), actix_ws::Closed> {
    let text = serde_json::to_string(message).expect("server messages serialize");
    session.text(text).await?;
    metrics::counter!("gateway_messages_out_total", "type" => type_of(message)).increment(1);
    Ok(())
}

/// From the sender's gateway reading a relayed message to this gateway handing it to the socket.
/// Across machines this includes their clock offset.
fn observe_relay(read_at: Option<SystemTime>) {
    if let Some(elapsed) = read_at.and_then(|at| at.elapsed().ok()) {
        metrics::histogram!("gateway_relay_latency_seconds").record(elapsed.as_secs_f64());
    }
}

/// The message type, as named on the wire, for metrics.
fn type_of(message: &ServerMessage) -> &'static str {
    match &message.kind {
        Some(Server::Welcome(_)) => "welcome",
        Some(Server::PeerJoined(_)) => "peer_joined",
        Some(Server::PeerLeft(_)) => "peer_left",
        Some(Server::Signal(_)) => "signal",
        Some(Server::Broadcast(_)) => "broadcast",
        Some(Server::Ping(_)) => "ping",
        Some(Server::Pong(_)) => "pong",
        Some(Server::Error(_)) => "error",
        Some(Server::Kicked(_)) => "kicked",
        Some(Server::RoomClosed(_)) => "room_closed",
        Some(Server::RecordingStarted(_)) => "recording_started",
        Some(Server::RecordingStopped(_)) => "recording_stopped",
        Some(Server::Resync(_)) => "resync",
        Some(Server::MediaChanged(_)) => "media_changed",
        Some(Server::SpeakGranted(_)) => "speak_granted",
        Some(Server::SpeakRevoked(_)) => "speak_revoked",
        None => "empty",
    }
}

fn reason_of(message: &ServerMessage) -> &'static str {
    match &message.kind {
        Some(Server::Kicked(_)) => "kicked",
        Some(Server::RoomClosed(_)) => "room_closed",
        Some(Server::Error(_)) => "refused",
        _ => "closed",
    }
}
