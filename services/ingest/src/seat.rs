//! A pulled camera's policy in its room's call. Its seat ([`confab_call`], room role `camera`)
//! enters like the recorder's; participants see the camera as a peer named after it
//! (docs/protocol.md); it takes no place in the room. In a mesh call the camera offers a
//! send-only connection ([`crate::peer`]) to every other peer that is not a recorder or a camera,
//! as soon as it learns of it (`welcome`, `peer_joined`, `resync`), and answers nothing: it only
//! applies their answers and candidates. While the call goes through the media server
//! (`welcome.sfu`, `media_changed`), the camera offers that one connection to the SFU's seat
//! instead, as its `publish` connection, and the SFU forwards it to everyone: the mesh
//! connections close when the SFU comes and are offered again when it leaves; so does the
//! recorder's, which gets the camera from the SFU meanwhile. Keyframe requests the SFU relays get
//! what viewers get in a mesh: the camera's next keyframe (an RTSP camera cannot be asked for
//! one). In a mesh call the recorder, hidden from peer lists, is offered the same connection when the
//! gateway tells `recording_started` (with the recorder's peer id), which is how a recording gets
//! the camera as its own file; `recording_stopped` closes it. It joins once the camera's first
//! keyframe is in (so its offer carries the camera's H.264 profile and, if the camera has it, its
//! G.711 codec) and leaves with `bye` when the worker lets the camera go (the room emptied, the
//! camera was deleted, the worker stops).
//!
//! An offer left unanswered for 10 s, or a connection that failed, is offered anew.
//!
//! A viewer gets video from the camera's next keyframe once its connection is up: retina cannot ask an
//! RTSP camera for a keyframe, so a new viewer waits up to one GOP (the camera's keyframe
//! interval); so does a recording, whose camera file starts at that keyframe. Audio flows as soon
//! as the connection is up.

use std::collections::HashMap;
use std::time::Duration;

use confab_call::camera_profile::{DEFAULT_PROFILE_LEVEL_ID, G711};
use confab_call::{Call, Event, MediaSection, Pass, Peer, Rejoin, Session, Signals, signals};
use confab_domain::CallRole;
use confab_protocol::signal::{Signal, signal::Payload};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use webrtc::peer_connection::RTCPeerConnectionState;

use crate::frames::{MediaFrame, profile_level_id};
use crate::peer::{Offering, PeerConfig, SendPeer};
use crate::settings::CallSettings;
use crate::store::CameraId;

/// A camera tries the gateways every 500 ms for as long as it has viewers.
const REJOIN: Rejoin = Rejoin { backoff: Duration::from_millis(500), give_up_after: None, retry_first_entry: true };
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
            role: CallRole::Camera,
            room_id: self.room_id.clone(),
            recording_id: None,
            room_settings: None,
        }
    }
}

/// One viewer: the camera's connection to it.
struct Viewer {
    peer: SendPeer,
    /// The media server's seat, which the connection is offered to as `publish`.
    to_media_server: bool,
    /// A keyframe has been sent since the answer: delta frames may follow.
    started: bool,
    offered_at: tokio::time::Instant,
    trickle: JoinHandle<()>,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.trickle.abort();
    }
}

/// The camera's connections to the peers of its call.
struct Camera {
    config: PeerConfig,
    viewers: HashMap<String, Viewer>,
    offering: Offering,
    signals: Signals,
    last_video_pts: Option<Duration>,
    /// The media server's seat the call goes through, if it does: the one viewer besides the
    /// recorder.
    sfu: Option<String>,
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
    let gateways = seat.call.gateway_urls.clone();
    let mut call = Call::new(confab_call::Seat { pass: seat.pass(), gateways, rejoin: REJOIN });
    let config = PeerConfig {
        ice_servers: Vec::new(),
        bind_addrs: seat.call.bind_addrs.clone(),
        include_loopback_candidates: seat.call.include_loopback_candidates,
    };
    let mut camera =
        Camera { config, viewers: HashMap::new(), offering, signals: call.signals(), last_video_pts: None, sfu: None };
    let mut check = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = check.tick() => camera.offer_again_where_stuck(call.session()).await,
            frame = frames.recv() => match frame {
                Ok(frame) => camera.forward(frame).await,
                Err(RecvError::Lagged(lost)) => {
                    tracing::debug!(frames.lost = lost, "fell behind the camera; viewers wait for the next keyframe");
                    camera.viewers.values_mut().for_each(|viewer| viewer.started = false);
                }
                Err(RecvError::Closed) => break,
            },
            event = call.next() => match event {
                Some(event) => camera.handle(event, call.session()).await,
                // The room was closed or the camera removed from it.
                None => return camera.close_viewers().await,
            },
        }
    }
    camera.close_viewers().await;
    call.leave().await;
    tracing::info!("the camera left the call");
}

/// Waits for the camera's first keyframe (and, briefly, its audio): what to offer.
async fn first_keyframe(frames: &mut broadcast::Receiver<MediaFrame>) -> Option<Offering> {
    let mut audio: Option<G711> = None;
    let profile = loop {
        match frames.recv().await {
            Ok(MediaFrame::Video(video)) if video.keyframe => {
                break profile_level_id(&video.nal_units).unwrap_or_else(|| DEFAULT_PROFILE_LEVEL_ID.to_owned());
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

impl Camera {
    async fn handle(&mut self, event: Event, session: &Session) {
        match event {
            Event::Joined { peer_id, peers, sfu } => {
                tracing::info!(peer.id = %peer_id, through_sfu = sfu.is_some(), "the camera joined the call");
                self.config.ice_servers = session.ice_servers().to_vec();
                self.sfu = sfu;
                match self.sfu.clone() {
                    Some(sfu) => self.offer(&sfu, session).await,
                    None => {
                        for peer in &peers {
                            self.meet(peer, session).await;
                        }
                    }
                }
            }
            Event::MediaChanged { sfu } => self.media_changed(sfu, session).await,
            Event::Lost => {
                tracing::warn!("the camera lost its gateway; joining the call again");
                self.close_viewers().await;
            }
            Event::PeerJoined(peer) => self.meet(&peer, session).await,
            Event::PeerLeft { peer_id } => self.drop_viewer(&peer_id).await,
            // Peers no longer listed were told as left; a listed one whose connection is not up
            // is offered anew. Peer lists never name the recorder: its connection stays.
            Event::Resync { peers } => {
                if let Some(sfu) = self.sfu.clone() {
                    if !self.viewers.contains_key(&sfu) {
                        self.offer(&sfu, session).await;
                    }
                    return;
                }
                for peer in &peers {
                    let connected = self
                        .viewers
                        .get(&peer.peer_id)
                        .is_some_and(|viewer| viewer.peer.state() == RTCPeerConnectionState::Connected);
                    if !connected {
                        self.meet(peer, session).await;
                    }
                }
            }
            // The recorder is hidden from peer lists and offered the camera as it starts (through
            // the SFU, the SFU offers it the camera).
            Event::RecordingStarted { recorder_peer_id } if self.sfu.is_none() => {
                self.offer(&recorder_peer_id, session).await;
            }
            Event::RecordingStarted { .. } => {}
            Event::RecordingStopped { recorder_peer_id } => self.drop_viewer(&recorder_peer_id).await,
            // A mesh answer; the media server's comes as a media signal.
            Event::Answer { from, sdp } if !self.is_media_server(&from) => self.answered(&from, &sdp).await,
            Event::Answer { from, .. } => tracing::debug!(peer.id = from, "a mesh answer from the media server"),
            // The camera offers and never answers: a viewer's own offer is ignored (our offer
            // stands and the viewer answers it).
            Event::Offer { from, .. } => tracing::debug!(peer.id = from, "an offer to the camera is ignored"),
            Event::MediaSignal { from, signal } => self.media_server_signalled(&from, signal).await,
            // Who may publish to the media server is for the people of a lecture, not cameras.
            Event::SpeakGranted { .. } | Event::SpeakRevoked { .. } => {}
            Event::Candidate { from, candidate } if !self.is_media_server(&from) => {
                self.add_candidate(&from, candidate).await;
            }
            Event::Candidate { from, .. } => tracing::debug!(peer.id = from, "a mesh candidate from the media server"),
            Event::Ended(why) => tracing::info!(why = ?why, "the camera's call ended"),
        }
    }

    /// Offers the camera to a listed peer (anew, if it had a connection), unless it is a
    /// recorder (offered through `recording_started` instead) or another camera, or the call goes
    /// through the media server (which forwards the camera to everyone).
    async fn meet(&mut self, peer: &Peer, session: &Session) {
        let is_service = CallRole::names_a_service(&peer.role);
        if self.sfu.is_some() || session.peer_id() == Some(peer.peer_id.as_str()) || is_service {
            return;
        }
        self.offer(&peer.peer_id, session).await;
    }

    /// The call moved to the media server `sfu` (or from one seat to another), or back to a mesh
    /// (`None`): the camera's connections follow, the recorder's too.
    async fn media_changed(&mut self, sfu: Option<String>, session: &Session) {
        tracing::info!(through_sfu = sfu.is_some(), "the call's media moved");
        self.close_viewers().await;
        self.sfu = sfu;
        match self.sfu.clone() {
            Some(sfu) => self.offer(&sfu, session).await,
            None => {
                let peers: Vec<Peer> = session.peers().cloned().collect();
                for peer in &peers {
                    self.meet(peer, session).await;
                }
                if let Some(recorder) = session.recorder().map(str::to_owned) {
                    self.offer(&recorder, session).await;
                }
            }
        }
    }

    /// The media server's answer, refusal or candidate about the camera's `publish` connection.
    async fn media_server_signalled(&mut self, from: &str, signal: Signal) {
        if self.sfu.as_deref() != Some(from) || signal.connection != signals::PUBLISH {
            return tracing::debug!(peer.id = from, "a media-server signal the camera does not take");
        }
        match signal.payload {
            Some(Payload::Sdp(description)) if description.r#type == "answer" => {
                self.answered(from, &description.sdp).await;
            }
            Some(Payload::Candidate(candidate)) => self.add_candidate(from, candidate).await,
            Some(Payload::Refusal(refusal)) => {
                tracing::warn!(peer.id = from, code = %refusal.code, "the media server refused the camera");
                self.drop_viewer(from).await;
            }
            _ => tracing::debug!(peer.id = from, "a media-server signal the camera does not take"),
        }
    }

    async fn answered(&mut self, from: &str, sdp: &str) {
        let Some(viewer) = self.viewers.get_mut(from) else { return };
        if let Err(e) = viewer.peer.answered(sdp).await {
            tracing::warn!(peer.id = from, error = %e, "a viewer's answer was refused");
            self.drop_viewer(from).await;
        }
    }

    async fn add_candidate(&self, from: &str, candidate: confab_call::IceCandidate) {
        if let Some(viewer) = self.viewers.get(from)
            && let Err(e) = viewer.peer.add_remote_candidate(candidate).await
        {
            tracing::debug!(peer.id = from, error = %e, "a viewer's ICE candidate was refused");
        }
    }

    /// Offers the camera to a viewer or the recorder, anew if it had a connection.
    async fn offer(&mut self, peer_id: &str, session: &Session) {
        self.drop_viewer(peer_id).await;
        let offered = match SendPeer::offer(&self.offering, &self.config).await {
            Ok(offered) => offered,
            Err(e) => {
                tracing::warn!(peer.id = peer_id, error = %e, "cannot offer the camera to a viewer");
                return;
            }
        };
        let section = MediaSection::of_candidates(&offered.offer_sdp);
        let to_media_server = self.sfu.as_deref() == Some(peer_id);
        let (offer, connection) = if to_media_server {
            (signals::publish_offer(peer_id, offered.offer_sdp), signals::PUBLISH)
        } else {
            (signals::offer(peer_id, offered.offer_sdp), "")
        };
        let _ = self.signals.send(offer);
        let candidates = offered.local_candidates;
        let trickle = signals::trickle_on(connection, peer_id.to_owned(), section, candidates, self.signals.clone());
        let viewer = Viewer {
            peer: offered.peer,
            to_media_server,
            started: false,
            offered_at: tokio::time::Instant::now(),
            trickle: tokio::spawn(trickle),
        };
        self.viewers.insert(peer_id.to_owned(), viewer);
        let to_recorder = session.recorder() == Some(peer_id);
        tracing::info!(peer.id = peer_id, to_recorder, to_media_server, "offered the camera to a viewer");
    }

    /// Whether `peer_id` is the media server's seat the camera publishes to.
    fn is_media_server(&self, peer_id: &str) -> bool {
        self.viewers.get(peer_id).is_some_and(|viewer| viewer.to_media_server)
    }

    async fn offer_again_where_stuck(&mut self, session: &Session) {
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
            self.offer(&peer_id, session).await;
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
                    && let Some(profile) = profile_level_id(&video.nal_units)
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
                        viewer.peer.send_video(&video.nal_units, duration).await;
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
