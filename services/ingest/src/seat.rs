//! A pulled camera's seat in its room's call: a signaling connection to a gateway with a ticket
//! for room role `camera`, signed with the API's key like the recorder's. Participants see the
//! camera as a peer named after it (docs/protocol.md); it takes no place in the room. The camera
//! offers a send-only connection ([`crate::peer`]) to every other peer that is not a recorder or
//! a camera, as soon as it learns of it (`welcome`, `peer_joined`, `resync`), and answers nothing:
//! it only applies their answers and candidates. The recorder, hidden from peer lists, is offered
//! the same connection when the gateway tells `recording_started` (with the recorder's peer id),
//! which is how a recording gets the camera as its own file; `recording_stopped` closes it. It joins once the camera's first keyframe is in
//! (so its offer carries the camera's H.264 profile and, if the camera has it, its G.711 codec)
//! and leaves with `bye` when the worker lets the camera go (the room emptied, the camera was
//! deleted, the worker stops).
//!
//! An offer left unanswered for 10 s, or a connection that failed, is offered anew.
//!
//! A viewer gets video from the camera's next keyframe once its connection is up: retina cannot ask an
//! RTSP camera for a keyframe, so a new viewer waits up to one GOP (the camera's keyframe
//! interval); so does a recording, whose camera file starts at that keyframe. Audio flows as soon
//! as the connection is up.

use std::collections::HashMap;
use std::time::Duration;

use confab_seat::{IceCandidate, IceServer, MediaSection, Pass, Socket};
use confab_tickets::{CAMERA_ROLE, RECORDER_ROLE};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use webrtc::peer_connection::RTCPeerConnectionState;

use crate::frames::{G711, MediaFrame, profile_level_id};
use crate::peer::{DEFAULT_PROFILE_LEVEL_ID, Offering, PeerConfig, SendPeer};
use crate::settings::CallSettings;
use crate::store::CameraId;

const REJOIN_BACKOFF: Duration = Duration::from_millis(500);
/// After the first keyframe, how long to wait for audio before offering video only.
const AUDIO_GRACE: Duration = Duration::from_secs(1);
/// How often viewers' connections are checked: an offer unanswered for [`OFFER_RETRY`], or a
/// connection that failed, is offered anew (viewers never offer to a camera themselves).
const CHECK_EVERY: Duration = Duration::from_secs(5);
const OFFER_RETRY: Duration = Duration::from_secs(10);
/// A frame's length when the time stamps do not tell (the first frame, a restarted stream).
const DEFAULT_FRAME: Duration = Duration::from_millis(33);

/// Who the camera is in a call, and how to get in.
#[derive(Debug, Clone)]
pub struct Seat {
    pub call: CallSettings,
    pub camera_id: CameraId,
    /// The camera's name: its display name in the call.
    pub name: String,
    pub room_id: String,
}

impl Seat {
    /// What the camera's tickets say: user id `camera-<id>`, display name the camera's name,
    /// role `camera`.
    fn pass(&self) -> Pass {
        Pass {
            keys: self.call.keys.clone(),
            issuer: self.call.jwt_issuer.clone(),
            user_id: format!("camera-{}", self.camera_id),
            display_name: self.name.clone(),
            room_role: CAMERA_ROLE,
            room_id: self.room_id.clone(),
            recording_id: None,
        }
    }
}

/// One viewer: the camera's connection to it.
struct Viewer {
    peer: SendPeer,
    /// A keyframe has been sent since the answer: delta frames may follow.
    started: bool,
    offered_at: tokio::time::Instant,
    forwarder: JoinHandle<()>,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.forwarder.abort();
    }
}

/// The camera in a call.
struct Call {
    seat: Seat,
    socket: Socket,
    peer_id: String,
    ice_servers: Vec<IceServer>,
    viewers: HashMap<String, Viewer>,
    offering: Offering,
    signals: mpsc::UnboundedSender<String>,
    last_video_pts: Option<Duration>,
    /// The peer id of the recorder recording the call, if one is.
    recorder: Option<String>,
}

/// Takes the camera's seat in its room's call, forwarding `frames`, until `stop` turns true or
/// the frames end; then leaves with `bye`.
pub async fn sit(seat: Seat, mut frames: broadcast::Receiver<MediaFrame>, mut stop: watch::Receiver<bool>) {
    let offering = tokio::select! {
        offering = first_keyframe(&mut frames) => match offering {
            Some(offering) => offering,
            None => return,
        },
        _ = stop.changed() => return,
    };
    let (socket, welcome) = tokio::select! {
        entered = enter_with_retries(&seat) => entered,
        _ = stop.changed() => return,
    };
    let (signals, mut outgoing) = mpsc::unbounded_channel();
    let mut call = Call {
        seat,
        socket,
        peer_id: String::new(),
        ice_servers: Vec::new(),
        viewers: HashMap::new(),
        offering,
        signals,
        last_video_pts: None,
        recorder: None,
    };
    call.welcomed(&welcome).await;
    let mut check = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = check.tick() => call.offer_again_where_stuck().await,
            Some(text) = outgoing.recv() => {
                // A failed send shows as the end of the socket's stream below.
                let _ = call.socket.send(Message::text(text)).await;
            }
            frame = frames.recv() => match frame {
                Ok(frame) => call.forward(frame).await,
                Err(RecvError::Lagged(lost)) => {
                    tracing::debug!(frames.lost = lost, "fell behind the camera; viewers wait for the next keyframe");
                    call.viewers.values_mut().for_each(|viewer| viewer.started = false);
                }
                Err(RecvError::Closed) => break,
            },
            frame = call.socket.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let Ok(message) = serde_json::from_str::<Value>(&text) else { continue };
                    if message.get("room_closed").is_some() || message.get("kicked").is_some() {
                        tracing::info!("the camera's room was closed or the camera removed from it");
                        call.close_viewers().await;
                        return;
                    }
                    call.handle(&message).await;
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    tracing::warn!("the camera lost its gateway; joining the call again");
                    call.close_viewers().await;
                    let (socket, welcome) = tokio::select! {
                        entered = enter_with_retries(&call.seat) => entered,
                        _ = stop.changed() => return,
                    };
                    call.socket = socket;
                    call.welcomed(&welcome).await;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    call.close_viewers().await;
    let _ = call.socket.send(Message::text(r#"{"bye":{}}"#)).await;
    let _ = call.socket.close(None).await;
    tracing::info!(peer.id = %call.peer_id, "the camera left the call");
}

/// Waits for the camera's first keyframe (and, briefly, its audio): what to offer.
async fn first_keyframe(frames: &mut broadcast::Receiver<MediaFrame>) -> Option<Offering> {
    let mut audio: Option<G711> = None;
    let profile = loop {
        match frames.recv().await {
            Ok(MediaFrame::Video(video)) if video.keyframe => {
                break profile_level_id(&video.annex_b).unwrap_or_else(|| DEFAULT_PROFILE_LEVEL_ID.to_owned());
            }
            Ok(MediaFrame::Audio(frame)) => audio = Some(frame.codec),
            Ok(MediaFrame::Video(_)) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return None,
        }
    };
    if audio.is_none() {
        let _ = tokio::time::timeout(AUDIO_GRACE, async {
            loop {
                match frames.recv().await {
                    Ok(MediaFrame::Audio(frame)) => return audio = Some(frame.codec),
                    Err(RecvError::Closed) => return,
                    _ => {}
                }
            }
        })
        .await;
    }
    Some(Offering { profile_level_id: profile, audio })
}

impl Call {
    async fn welcomed(&mut self, welcome: &Value) {
        self.peer_id = welcome["peer_id"].as_str().unwrap_or_default().to_owned();
        self.ice_servers = IceServer::from_welcome(welcome);
        // A recording in progress is told right after the welcome, with its recorder's peer id.
        self.recorder = None;
        tracing::info!(peer.id = %self.peer_id, "the camera joined the call");
        for peer in welcome["peers"].as_array().into_iter().flatten() {
            self.meet(peer).await;
        }
    }

    async fn handle(&mut self, message: &Value) {
        if let Some(peer) = message.get("peer_joined").map(|m| &m["peer"]) {
            self.meet(peer).await;
        } else if let Some(recorder) = message["recording_started"]["recorder_peer_id"].as_str() {
            if let Some(earlier) = self.recorder.take().filter(|earlier| earlier != recorder) {
                self.drop_viewer(&earlier).await;
            }
            self.recorder = Some(recorder.to_owned());
            self.offer(recorder).await;
        } else if let Some(recorder) = message["recording_stopped"]["recorder_peer_id"].as_str() {
            if self.recorder.as_deref() == Some(recorder) {
                self.recorder = None;
            }
            self.drop_viewer(recorder).await;
        } else if let Some(peers) = message["resync"]["peers"].as_array() {
            // Peer lists never name the recorder: its connection stays.
            let listed: Vec<&str> =
                peers.iter().filter_map(|p| p["peer_id"].as_str()).chain(self.recorder.as_deref()).collect();
            let gone: Vec<String> = self.viewers.keys().filter(|id| !listed.contains(&id.as_str())).cloned().collect();
            for peer_id in gone {
                self.drop_viewer(&peer_id).await;
            }
            for peer in peers {
                let connected = peer["peer_id"]
                    .as_str()
                    .and_then(|id| self.viewers.get(id))
                    .is_some_and(|viewer| viewer.peer.state() == RTCPeerConnectionState::Connected);
                if !connected {
                    self.meet(peer).await;
                }
            }
        } else if let Some(left) = message["peer_left"]["peer_id"].as_str() {
            self.drop_viewer(left).await;
        } else if let Some(signal) = message.get("signal") {
            let Some(from) = signal["from"].as_str() else { return };
            let Some(viewer) = self.viewers.get_mut(from) else { return };
            match signal["sdp"]["type"].as_str() {
                Some("answer") => {
                    let sdp = signal["sdp"]["sdp"].as_str().unwrap_or_default();
                    if let Err(e) = viewer.peer.answered(sdp).await {
                        tracing::warn!(peer.id = from, error = %e, "a viewer's answer was refused");
                        self.drop_viewer(from).await;
                    }
                }
                // The camera offers and never answers: a viewer's own offer is ignored (our offer
                // stands and the viewer answers it).
                Some(_) => tracing::debug!(peer.id = from, "an offer to the camera is ignored"),
                None => {
                    if let Some(candidate) = signal.get("candidate")
                        && let Err(e) = viewer.peer.add_remote_candidate(IceCandidate::from_json(candidate)).await
                    {
                        tracing::debug!(peer.id = from, error = %e, "a viewer's ICE candidate was refused");
                    }
                }
            }
        }
    }

    /// Offers the camera to a listed peer (anew, if it had a connection), unless it is a
    /// recorder (offered through `recording_started` instead) or another camera.
    async fn meet(&mut self, peer: &Value) {
        let Some(peer_id) = peer["peer_id"].as_str() else { return };
        let role = peer["role"].as_str().unwrap_or_default();
        if peer_id == self.peer_id || role == RECORDER_ROLE || role == CAMERA_ROLE {
            return;
        }
        self.offer(peer_id).await;
    }

    /// Offers the camera to a viewer or the recorder, anew if it had a connection.
    async fn offer(&mut self, peer_id: &str) {
        self.drop_viewer(peer_id).await;
        let config = PeerConfig {
            ice_servers: self.ice_servers.clone(),
            bind_addrs: self.seat.call.bind_addrs.clone(),
            include_loopback_candidates: self.seat.call.include_loopback_candidates,
        };
        let offered = match SendPeer::offer(&self.offering, &config).await {
            Ok(offered) => offered,
            Err(e) => {
                tracing::warn!(peer.id = peer_id, error = %e, "cannot offer the camera to a viewer");
                return;
            }
        };
        let offer = json!({"signal": {"to": peer_id, "sdp": {"type": "offer", "sdp": offered.offer_sdp}}});
        let _ = self.signals.send(offer.to_string());
        let section = MediaSection::of_candidates(&offered.offer_sdp);
        let forwarder = tokio::spawn(forward_candidates(
            peer_id.to_owned(),
            section,
            offered.local_candidates,
            self.signals.clone(),
        ));
        self.viewers.insert(
            peer_id.to_owned(),
            Viewer { peer: offered.peer, started: false, offered_at: tokio::time::Instant::now(), forwarder },
        );
        let to_recorder = self.recorder.as_deref() == Some(peer_id);
        tracing::info!(peer.id = peer_id, to_recorder, "offered the camera to a viewer");
    }

    async fn offer_again_where_stuck(&mut self) {
        let stuck: Vec<String> = self
            .viewers
            .iter()
            .filter(|(_, viewer)| {
                let unanswered = !viewer.peer.is_answered() && viewer.offered_at.elapsed() >= OFFER_RETRY;
                unanswered || viewer.peer.state() == RTCPeerConnectionState::Failed
            })
            .map(|(peer_id, _)| peer_id.clone())
            .collect();
        for peer_id in stuck {
            tracing::info!(peer.id = %peer_id, "a viewer's connection is stuck; offering the camera again");
            self.offer(&peer_id).await;
        }
    }

    async fn drop_viewer(&mut self, peer_id: &str) {
        if let Some(viewer) = self.viewers.remove(peer_id) {
            viewer.peer.close().await;
        }
    }

    async fn close_viewers(&mut self) {
        for (_, viewer) in self.viewers.drain() {
            viewer.peer.close().await;
        }
    }

    /// Sends a frame to every viewer whose connection is up; video from a keyframe on.
    async fn forward(&mut self, frame: MediaFrame) {
        match frame {
            MediaFrame::Video(video) => {
                if video.keyframe
                    && let Some(profile) = profile_level_id(&video.annex_b)
                {
                    self.offering.profile_level_id = profile;
                }
                let duration = match self.last_video_pts.map(|last| video.pts.saturating_sub(last)) {
                    Some(gap) if !gap.is_zero() && gap < Duration::from_secs(1) => gap,
                    _ => DEFAULT_FRAME,
                };
                self.last_video_pts = Some(video.pts);
                for viewer in self.viewers.values_mut().filter(|viewer| viewer.peer.is_sending()) {
                    viewer.started |= video.keyframe;
                    if viewer.started {
                        viewer.peer.send_video(video.annex_b.clone(), duration).await;
                    }
                }
            }
            MediaFrame::Audio(audio) => {
                if self.offering.audio.is_none() {
                    // Offered to viewers met from now on; earlier ones keep video only.
                    self.offering.audio = Some(audio.codec);
                }
                for viewer in self.viewers.values().filter(|viewer| viewer.peer.is_sending()) {
                    viewer.peer.send_audio(audio.payload.clone(), audio.duration).await;
                }
            }
        }
    }
}

/// Trickles the camera's candidates for the connection to `peer_id`, each in `section` of its
/// offer.
async fn forward_candidates(
    peer_id: String,
    section: MediaSection,
    mut candidates: mpsc::UnboundedReceiver<IceCandidate>,
    signals: mpsc::UnboundedSender<String>,
) {
    while let Some(candidate) = candidates.recv().await {
        if signals.send(candidate.signal_to(&peer_id, &section)).is_err() {
            return;
        }
    }
}

/// Joins through the first gateway that admits the camera, retrying every 500 ms until one does.
async fn enter_with_retries(seat: &Seat) -> (Socket, Value) {
    let mut failures = 0u32;
    loop {
        match confab_seat::enter(&seat.call.gateway_urls, &seat.pass()).await {
            Ok(entered) => return entered,
            Err(e) => {
                // Logged once, then quietly: the gateways may be down for a while.
                if failures == 0 {
                    tracing::warn!(error = %e, "the camera cannot join its call yet; retrying");
                }
                failures += 1;
            }
        }
        tokio::time::sleep(REJOIN_BACKOFF).await;
    }
}
