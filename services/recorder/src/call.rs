//! The recorder's seat in a call: a signaling connection to a gateway with a ticket for room role
//! `recorder`, signed with the API's key. The gateways keep it hidden from participants and tell
//! them `recording_started` / `recording_stopped` as it comes and goes (docs/protocol.md). Here the
//! recorder answers each participant's media offer and keeps track of who is who for the files;
//! a peer whose room role is `camera` (the ingest's cameras are told about the recording too)
//! is answered with H.264 and G.711 and recorded as Matroska.
//! Media flows straight from the participants, so losing the gateway loses no media: the recorder
//! joins again (through any gateway) and participants offer anew to its new peer id.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use confab_seat::{IceCandidate, IceServer, Pass, Socket};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::archive::{Archive, Recorded, Who};
use crate::peer::{PeerConfig, Source};
use crate::recorded_peer::{Failed, RecordedPeer};
use crate::webm_file::DiskFull;

/// How long the recorder keeps trying to get back into a call whose gateway went away.
const REJOIN_FOR: Duration = Duration::from_secs(30);
const REJOIN_BACKOFF: Duration = Duration::from_millis(500);

/// Who the recorder is in a call, and how to get in: enough to join again.
pub struct Seat {
    /// Role `recorder`, the recording's id, the recorder's instance as the user id.
    pub pass: Pass,
    pub gateways: Vec<String>,
}

/// A joined call.
pub struct Call {
    seat: Seat,
    socket: Socket,
    pub peer_id: String,
    /// Everyone in the call by peer id, for the file rows.
    people: HashMap<String, Who>,
    ice_servers: Vec<IceServer>,
}

/// How a call ended for the recorder.
#[derive(Default)]
pub struct Outcome {
    /// The recording was stopped (rather than the call ending under the recorder).
    pub stopped: bool,
    /// Participants whose files were registered.
    pub recorded: usize,
    /// Participants whose media could not be written or registered, with why.
    pub failures: Vec<String>,
    /// The disk ran out of space: the recorder left the call then. The files cut short are still
    /// in the recording's directory, with their notes, to be rebuilt like a dead recorder's.
    pub disk_full: bool,
}

impl Call {
    /// Joins the seat's room through the first of its gateways that admits the recorder.
    pub async fn join(seat: Seat) -> anyhow::Result<Self> {
        let (socket, welcome) = confab_seat::enter(&seat.gateways, &seat.pass).await?;
        let mut call = Self { seat, socket, peer_id: String::new(), people: HashMap::new(), ice_servers: Vec::new() };
        call.welcomed(&welcome);
        Ok(call)
    }

    fn welcomed(&mut self, welcome: &Value) {
        self.peer_id = welcome["peer_id"].as_str().unwrap_or_default().to_owned();
        self.ice_servers = IceServer::from_welcome(welcome);
        for peer in welcome["peers"].as_array().into_iter().flatten() {
            self.meet(peer);
        }
    }

    /// Records every participant that offers its media until `stop` completes, the disk is full,
    /// the room is closed, or no gateway takes the recorder back for [`REJOIN_FOR`]; then leaves
    /// with `bye` and finishes every participant's files into `archive`.
    pub async fn record_until(mut self, archive: &Archive, stop: impl Future<Output = ()>) -> Outcome {
        tokio::pin!(stop);
        let (signals, mut outgoing) = mpsc::unbounded_channel::<String>();
        let (failures, mut failed) = mpsc::unbounded_channel::<Failed>();
        let mut recording: HashMap<String, RecordedPeer> = HashMap::new();
        let mut outcome = Outcome::default();
        loop {
            tokio::select! {
                () = &mut stop => {
                    outcome.stopped = true;
                    self.leave().await;
                    break;
                }
                Some(Failed { peer_id, path }) = failed.recv() => {
                    if recording.get(&peer_id).is_some_and(|recorded| recorded.path() == path)
                        && let Some(recorded) = recording.remove(&peer_id)
                    {
                        self.finish(&peer_id, recorded, archive, &mut outcome).await;
                    }
                    if outcome.disk_full {
                        self.leave().await;
                        break;
                    }
                }
                Some(text) = outgoing.recv() => {
                    // A failed send shows as the end of the socket's stream below.
                    let _ = self.socket.send(Message::text(text)).await;
                }
                frame = self.socket.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        let Ok(message) = serde_json::from_str::<Value>(&text) else { continue };
                        if message.get("room_closed").is_some() {
                            break;
                        }
                        self.handle(&message, archive, (&signals, &failures), &mut recording, &mut outcome).await;
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        tokio::select! {
                            () = &mut stop => { outcome.stopped = true; break; }
                            rejoined = self.rejoin() => if !rejoined { break },
                        }
                    }
                    Some(Ok(_)) => {}
                },
            }
        }
        for (peer_id, recorded) in recording.drain() {
            self.finish(&peer_id, recorded, archive, &mut outcome).await;
        }
        outcome
    }

    /// Says goodbye to the gateway.
    async fn leave(&mut self) {
        let _ = self.socket.send(Message::text(r#"{"bye":{}}"#)).await;
        let _ = self.socket.close(None).await;
    }

    /// Gets back into the call after its gateway went away; `false` if none let the recorder in
    /// within [`REJOIN_FOR`]. Participants are told `recording_stopped` and `recording_started`
    /// with the new peer id, and offer anew; their current connections record meanwhile.
    async fn rejoin(&mut self) -> bool {
        let recording_id = self.seat.pass.recording_id.clone().unwrap_or_default();
        tracing::warn!(recording.id = %recording_id, "lost the gateway; joining the call again");
        let give_up = Instant::now() + REJOIN_FOR;
        while Instant::now() < give_up {
            match confab_seat::enter(&self.seat.gateways, &self.seat.pass).await {
                Ok((socket, welcome)) => {
                    self.socket = socket;
                    self.welcomed(&welcome);
                    tracing::info!(recording.id = %recording_id, "back in the call");
                    return true;
                }
                Err(e) => tracing::debug!(recording.id = %recording_id, error = %e, "cannot join again yet"),
            }
            tokio::time::sleep(REJOIN_BACKOFF).await;
        }
        false
    }

    async fn handle(
        &mut self,
        message: &Value,
        archive: &Archive,
        channels: (&mpsc::UnboundedSender<String>, &mpsc::UnboundedSender<Failed>),
        recording: &mut HashMap<String, RecordedPeer>,
        outcome: &mut Outcome,
    ) {
        if let Some(peer) = message.get("peer_joined").map(|m| &m["peer"]) {
            self.meet(peer);
        } else if let Some(peers) = message["resync"]["peers"].as_array() {
            peers.iter().for_each(|peer| self.meet(peer));
        } else if let Some(left) = message["peer_left"]["peer_id"].as_str() {
            if let Some(recorded) = recording.remove(left) {
                self.finish(left, recorded, archive, outcome).await;
            }
        } else if let Some(signal) = message.get("signal") {
            let Some(from) = signal["from"].as_str() else { return };
            if signal["sdp"]["type"] == "offer" {
                // A new offer from a participant already recorded (a restarted connection, or the
                // recorder rejoined): its earlier files are finished and a new one begins.
                if let Some(earlier) = recording.remove(from) {
                    self.finish(from, earlier, archive, outcome).await;
                }
                let sdp = signal["sdp"]["sdp"].as_str().unwrap_or_default();
                match self.answer(from, sdp, archive, channels).await {
                    Ok(recorded) => {
                        recording.insert(from.to_owned(), recorded);
                    }
                    Err(e) => {
                        tracing::warn!(peer.id = from, error = %e, "cannot record a participant's media offer");
                        outcome.failures.push(format!("{}: {e}", self.who(from).display_name));
                    }
                }
            } else if let (Some(candidate), Some(recorded)) = (signal.get("candidate"), recording.get(from)) {
                recorded.add_candidate(IceCandidate::from_json(candidate)).await;
            }
        }
    }

    async fn answer(
        &self,
        from: &str,
        sdp: &str,
        archive: &Archive,
        (signals, failures): (&mpsc::UnboundedSender<String>, &mpsc::UnboundedSender<Failed>),
    ) -> anyhow::Result<RecordedPeer> {
        let who = self.who(from);
        let source = Source::of_role(&who.role);
        let path =
            archive.new_file(&who, source.file_extension()).await.context("cannot create the participant's file")?;
        let config = PeerConfig { ice_servers: self.ice_servers.clone(), ..PeerConfig::default() };
        RecordedPeer::start(from, sdp, source, path, &config, signals.clone(), failures.clone()).await
    }

    /// Remembers who a listed peer is.
    fn meet(&mut self, peer: &Value) {
        if let Some(peer_id) = peer["peer_id"].as_str() {
            let text = |key: &str| peer[key].as_str().unwrap_or_default().to_owned();
            let who = Who {
                peer_id: peer_id.to_owned(),
                user_id: text("user_id"),
                display_name: text("display_name"),
                role: text("role"),
            };
            self.people.insert(peer_id.to_owned(), who);
        }
    }

    fn who(&self, peer_id: &str) -> Who {
        self.people.get(peer_id).cloned().unwrap_or_else(|| Who { peer_id: peer_id.to_owned(), ..Who::default() })
    }

    async fn finish(&self, peer_id: &str, recorded: RecordedPeer, archive: &Archive, outcome: &mut Outcome) {
        let who = self.who(peer_id);
        let path = recorded.path().to_owned();
        let (failure, cause) = match recorded.finish().await {
            Ok(captured) => {
                let recorded = Recorded { who, path, files: captured.files, stats: captured.stats };
                match archive.keep(&recorded).await {
                    Ok(()) => return outcome.recorded += 1,
                    // The files stay on disk with their note: a later take-over stores and
                    // registers them. The cause (storage addresses, database errors) is only logged.
                    Err(e) => (format!("{}: the files could not be kept", recorded.who.display_name), Some(e)),
                }
            }
            Err(e) => {
                // What was written stays, with its note, and is rebuilt after the call.
                outcome.disk_full |= e.is_disk_full();
                (format!("{}: {e}", who.display_name), None)
            }
        };
        let cause = cause.map(|e| format!("{e:#}"));
        tracing::warn!(peer.id = peer_id, failure, error = cause, "a participant's media could not be kept");
        outcome.failures.push(failure);
    }
}
