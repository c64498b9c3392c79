//! The SFU's seat in one room's call (docs/protocol.md, "The media server"): it enters through a
//! gateway with a ticket it signs itself (room role `sfu`, hidden from participants), tells the
//! media task who is in the call and what they signal it, and carries the media task's answers,
//! offers and speaker announcements back as `signal`s. A recorder in the room (told as
//! `recording_started`) is served like a viewer: one subscribe connection with every track. It keeps the room marked as served in
//! Redis while it is there, and leaves when nobody is left to serve: an `sfu` room when its last
//! participant leaves, an `auto` room when it is down to two (who then talk peer to peer). When
//! the SFU stops, it hands the room to another instance first and stays until that one's seat is
//! in the call (or [`HAND_OVER_WITHIN`] has passed), so participants move from one to the other
//! without a stretch of mesh. It counts the people it serves into the instance's load
//! ([`crate::registry::Occupancy`]).
//! Cameras are served too: each publishes its H.264 and G.711 once, on a `publish` connection,
//! and receives nothing; they are not people, so they keep no room served.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use confab_call::{Call, Event, Pass, Peer, Rejoin, Seat};
use confab_common::sfu_jobs::{self, Placement, SfuJob};
use confab_domain::{CallRole, MediaRouting, RoomRole, keys};
use confab_protocol::signal::{IceCandidate, Refusal, SessionDescription, Signal, Speaker, signal::Payload};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use tokio::sync::{mpsc, watch};

use crate::connection::ConnectionKind;
use crate::media_loop::{MediaHandle, ToRoom};
use crate::registry::{Occupancy, RoomShare};
use crate::server::{Incoming, Outgoing, Shown};

/// A lost gateway is retried every 500 ms for 30 s; a room that cannot be entered is given up
/// at once (its next arrival queues it again).
const REJOIN: Rejoin = Rejoin {
    backoff: Duration::from_millis(500),
    give_up_after: Some(Duration::from_secs(30)),
    retry_first_entry: false,
};
/// How long the room stays marked as served without a renewal: an SFU that dies frees it then.
const SERVED_FOR: Duration = Duration::from_secs(10);
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// How long the call may be too small for the SFU before it leaves (someone reloading their page
/// should not send the call back to mesh and forth).
const LEAVE_AFTER: Duration = Duration::from_secs(5);
/// How long a stopping SFU waits for the instance it handed a room to to take its seat (within
/// the 5 s the process gives its rooms to leave).
pub const HAND_OVER_WITHIN: Duration = Duration::from_secs(3);

/// What the SFU needs to take seats.
#[derive(Clone)]
pub struct Seats {
    pub pass: Pass,
    pub gateways: Vec<String>,
    pub media: MediaHandle,
    pub redis: ConnectionManager,
    pub prefix: String,
    pub instance_id: String,
    pub occupancy: Arc<Occupancy>,
}

impl Seats {
    /// Serves the room of `job` until its call no longer needs the SFU, or `stop` turns true.
    pub async fn serve(self, job: SfuJob, stop: watch::Receiver<bool>) {
        let room = job.room_id.clone();
        let pass = Pass { room_id: room.clone(), room_settings: Some((job.media, job.mode)), ..self.pass.clone() };
        let mut call = Call::new(Seat { pass, gateways: self.gateways.clone(), rejoin: REJOIN });
        let mut redis = self.redis.clone();
        // The room counts into the instance's load from now, while its seat is being taken.
        let share = self.occupancy.room();
        // Taken: another SFU will not get it, whether or not the call can be entered.
        if let Err(error) = sfu_jobs::ack(&mut redis, &self.prefix, &self.instance_id, &job.entry).await {
            tracing::warn!(%error, room.id = %room, "acknowledging the room's job");
        }
        match call.next().await {
            Some(Event::Joined { peers, .. }) => {
                let (to_room, from_media) = mpsc::unbounded_channel();
                tracing::info!(room.id = %room, "serving the room's media");
                let mut served = Served {
                    seats: &self,
                    room: &room,
                    job: &job,
                    call,
                    people: HashSet::new(),
                    to_room,
                    from_media,
                    speaker: None,
                    share,
                };
                served.enter(&peers).await;
                let left = served.run(stop).await;
                self.media.close(&room);
                if left == Left::HandedOver {
                    return;
                }
            }
            _ => tracing::warn!(room.id = %room, "no gateway admitted the SFU"),
        }
        if let Err(error) = sfu_jobs::release_room(&mut redis, &self.prefix, &room, &self.instance_id).await {
            tracing::warn!(%error, room.id = %room, "releasing the room");
        }
    }
}

/// Why the seat left its room.
#[derive(Debug, PartialEq, Eq)]
enum Left {
    /// The call ended or no longer needs the SFU: the room is to be released.
    Done,
    /// The room is another instance's: the SFU handed it over on its way out (or freed it), or
    /// a gateway failed it over while this one's seat was away.
    HandedOver,
}

/// A room being served.
struct Served<'a> {
    seats: &'a Seats,
    room: &'a str,
    job: &'a SfuJob,
    call: Call,
    /// The people in the call (services left out).
    people: HashSet<String>,
    /// Where the media task's messages for the call go, and where they are read.
    to_room: mpsc::UnboundedSender<ToRoom>,
    from_media: mpsc::UnboundedReceiver<ToRoom>,
    /// The people served, counted into the instance's load.
    share: RoomShare,
    /// The dominant speaker last announced, for people who arrive after it.
    speaker: Option<String>,
}

impl Served<'_> {
    async fn run(&mut self, mut stop: watch::Receiver<bool>) -> Left {
        let mut renew = tokio::time::interval(RENEW_EVERY);
        let mut too_small_since: Option<tokio::time::Instant> = None;
        loop {
            self.share.set_subscribers(self.people.len() as u64);
            let leave_at = too_small_since.map(|since| since + LEAVE_AFTER);
            tokio::select! {
                event = self.call.next() => match event {
                    Some(Event::Ended(why)) => {
                        tracing::info!(room.id = %self.room, why = ?why, "the SFU's call ended");
                        return Left::Done;
                    }
                    None => return Left::Done,
                    Some(event) => self.handle(event).await,
                },
                Some(message) = self.from_media.recv() => self.relay(message),
                _ = renew.tick() => {
                    if !self.renew().await {
                        tracing::info!(room.id = %self.room, "the room went to another SFU while this one was away; leaving");
                        self.call.leave().await;
                        return Left::HandedOver;
                    }
                }
                () = sleep_until(leave_at) => {
                    tracing::info!(room.id = %self.room, "the call no longer needs the SFU; leaving");
                    self.call.leave().await;
                    return Left::Done;
                }
                _ = stop.changed() => {
                    self.hand_over().await;
                    self.call.leave().await;
                    return Left::HandedOver;
                }
            }
            let needed = match self.job.media {
                MediaRouting::Auto => 3,
                MediaRouting::Sfu | MediaRouting::Mesh => 1,
            };
            too_small_since = match (self.people.len() < needed, too_small_since) {
                (true, None) => Some(tokio::time::Instant::now()),
                (true, since) => since,
                (false, _) => None,
            };
        }
    }

    async fn handle(&mut self, event: Event) {
        match event {
            Event::Joined { peers, .. } => {
                tracing::info!(room.id = %self.room, "back in the call");
                self.enter(&peers).await;
            }
            Event::PeerJoined(peer) => self.arrived(std::slice::from_ref(&peer)),
            Event::Resync { peers } => self.arrived(&peers),
            Event::PeerLeft { peer_id } => {
                self.people.remove(&peer_id);
                self.seats.media.left(self.room, &peer_id);
            }
            Event::MediaSignal { from, signal } => match incoming(signal) {
                Some((connection, message)) => self.seats.media.signal(self.room, &from, connection, message),
                None => tracing::debug!(peer.id = %from, "an unreadable signal to the SFU"),
            },
            // The recorder receives every track on one subscribe connection of its own.
            Event::RecordingStarted { recorder_peer_id } => {
                self.seats.media.joined(self.room, &recorder_peer_id, CallRole::Recorder);
            }
            Event::RecordingStopped { recorder_peer_id } => self.seats.media.left(self.room, &recorder_peer_id),
            Event::SpeakGranted { peer_id } => self.seats.media.let_speak(self.room, &peer_id),
            Event::SpeakRevoked { peer_id } => self.seats.media.silence(self.room, &peer_id),
            Event::Lost => tracing::warn!(room.id = %self.room, "lost the gateway; entering the call again"),
            // Mesh signals are not for the SFU; it follows no media server but itself.
            Event::Offer { .. }
            | Event::Answer { .. }
            | Event::Candidate { .. }
            | Event::MediaChanged { .. }
            | Event::Ended(_) => {}
        }
    }

    /// The seat (re-)entered the call with a new peer id: participants are told to connect to
    /// it (`media_changed`), so the room's media starts afresh, with the viewers let speak
    /// before it came (kept in Redis by the gateways).
    async fn enter(&mut self, peers: &[Peer]) {
        self.seats.media.close(self.room);
        self.people.clear();
        self.speaker = None;
        self.seats.media.open(self.room, self.job.mode, self.to_room.clone());
        self.arrived(peers);
        let key = keys::room_speakers(&self.seats.prefix, self.room);
        let mut redis = self.seats.redis.clone();
        match redis.smembers::<_, Vec<String>>(&key).await {
            Ok(speakers) => speakers.iter().for_each(|peer| self.seats.media.let_speak(self.room, peer)),
            Err(error) => tracing::warn!(%error, room.id = %self.room, "reading who may speak"),
        }
    }

    /// People and cameras entered the call (or are listed again): the media server learns them
    /// and their roles. Cameras publish but are not people: they neither keep the SFU in the
    /// room nor hear who is speaking.
    fn arrived(&mut self, peers: &[Peer]) {
        for peer in peers {
            let role = match peer.role.parse::<CallRole>() {
                Ok(CallRole::Camera) => {
                    self.seats.media.joined(self.room, &peer.peer_id, CallRole::Camera);
                    continue;
                }
                Ok(role) if role.is_service() => continue,
                Ok(role) => role,
                Err(_) => CallRole::Person(RoomRole::Member),
            };
            if self.people.insert(peer.peer_id.clone())
                && let Some(speaker) = &self.speaker
            {
                // The speaker is announced when it changes: a newcomer is told who it is now.
                let payload = Some(Payload::Speaker(Speaker { peer_id: speaker.clone() }));
                let _ = self.call.signals().send(Signal { to: peer.peer_id.clone(), payload, ..Signal::default() });
            }
            self.seats.media.joined(self.room, &peer.peer_id, role);
        }
    }

    /// What the media server says to the call, as `signal`s.
    fn relay(&mut self, message: ToRoom) {
        let signals = self.call.signals();
        match message {
            ToRoom::Signal { to, connection, message } => {
                let payload = match message {
                    Outgoing::Offer(sdp) => description("offer", sdp),
                    Outgoing::Answer(sdp) => description("answer", sdp),
                    Outgoing::Refused(code) => {
                        tracing::info!(peer.id = %to, code, "refused a participant's media");
                        Payload::Refusal(Refusal { code: code.to_owned(), message: refusal_message(code).to_owned() })
                    }
                };
                let connection = connection.as_str().to_owned();
                let _ = signals.send(Signal { to, connection, payload: Some(payload), ..Signal::default() });
            }
            ToRoom::Speaker { peer_id } => {
                self.speaker = Some(peer_id.clone());
                for to in &self.people {
                    let payload = Some(Payload::Speaker(Speaker { peer_id: peer_id.clone() }));
                    let _ = signals.send(Signal { to: to.clone(), payload, ..Signal::default() });
                }
            }
        }
    }

    /// The SFU is stopping: the room goes to another instance, and the seat stays, serving, until
    /// that instance's seat is in the call (the room is told `media_changed` to it) or
    /// [`HAND_OVER_WITHIN`] has passed.
    async fn hand_over(&mut self) {
        let mut redis = self.seats.redis.clone();
        let (prefix, instance) = (&self.seats.prefix, &self.seats.instance_id);
        let successor = match sfu_jobs::hand_over(&mut redis, prefix, self.job, instance).await {
            Ok(Placement::Placed { instance_id }) => instance_id,
            Ok(Placement::NoInstance) => {
                tracing::info!(room.id = %self.room, "shutting down; no other SFU takes the room: leaving it to mesh");
                return;
            }
            Ok(Placement::Held) => return,
            Err(error) => {
                tracing::warn!(%error, room.id = %self.room, "handing the room over; leaving it to expire");
                return;
            }
        };
        ::metrics::counter!("sfu_rooms_handed_over_total").increment(1);
        tracing::info!(room.id = %self.room, sfu.id = %successor, "shutting down; the room goes to another SFU");
        let give_up = tokio::time::sleep(HAND_OVER_WITHIN);
        tokio::pin!(give_up);
        loop {
            tokio::select! {
                event = self.call.next() => match event {
                    Some(Event::MediaChanged { sfu: Some(_) }) => return,
                    Some(Event::Ended(_)) | None => return,
                    Some(event) => self.handle(event).await,
                },
                Some(message) = self.from_media.recv() => self.relay(message),
                () = &mut give_up => {
                    tracing::info!(room.id = %self.room, "the next SFU has not taken its seat yet; leaving");
                    return;
                }
            }
        }
    }

    /// Renews the room's mark; false if the room is another instance's now.
    async fn renew(&mut self) -> bool {
        let mut redis = self.seats.redis.clone();
        let (prefix, instance) = (&self.seats.prefix, &self.seats.instance_id);
        match sfu_jobs::serve_room(&mut redis, prefix, self.room, instance, SERVED_FOR).await {
            Ok(ours) => ours,
            Err(error) => {
                tracing::warn!(%error, room.id = %self.room, "renewing the room's mark");
                true
            }
        }
    }
}

fn description(kind: &str, sdp: String) -> Payload {
    Payload::Sdp(SessionDescription { r#type: kind.to_owned(), sdp })
}

/// A participant's signal as the media server takes it; `None` if it is not one the SFU reads.
fn incoming(signal: Signal) -> Option<(ConnectionKind, Incoming)> {
    let connection = ConnectionKind::parse(&signal.connection);
    match signal.payload? {
        Payload::Sdp(description) => {
            let message = match description.r#type.as_str() {
                "offer" => Incoming::Offer(description.sdp),
                "answer" => Incoming::Answer(description.sdp),
                _ => return None,
            };
            Some((connection?, message))
        }
        Payload::Candidate(candidate) => Some((connection?, Incoming::Candidate(candidate_init(candidate)))),
        Payload::TrackRequest(request) => {
            let shown = match (request.paused, request.max_width, request.max_height) {
                (true, _, _) => Shown::Paused,
                (false, 0, 0) => Shown::AnySize,
                (false, width, height) => Shown::Tile(clamp(width), clamp(height)),
            };
            Some((ConnectionKind::Subscribe, Incoming::TrackRequest { track_id: request.track_id, shown }))
        }
        Payload::Speaker(_) | Payload::Refusal(_) => None,
    }
}

/// What a refusal's code means, for people reading the message.
fn refusal_message(code: &str) -> &'static str {
    match code {
        "not_allowed_to_publish" => "only the owner, moderators and those let speak publish in a lecture",
        "unknown_track" => "no track of that id is received on this connection",
        "invalid_description" => "the description could not be applied",
        "unsupported_codecs" => "a camera publishes H.264 in packetization-mode 1 (and PCMU or PCMA), nothing else",
        _ => "refused",
    }
}

/// A requested width or height in pixels; 0 (no limit) and anything past 16 bits mean any.
fn clamp(pixels: u32) -> u16 {
    if pixels == 0 { u16::MAX } else { u16::try_from(pixels).unwrap_or(u16::MAX) }
}

fn candidate_init(candidate: IceCandidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: candidate.candidate,
        sdp_mid: candidate.sdp_mid,
        sdp_mline_index: candidate.sdp_mline_index.and_then(|index| u16::try_from(index).ok()),
        username_fragment: Some(candidate.username_fragment).filter(|ufrag| !ufrag.is_empty()),
        ..Default::default()
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use confab_protocol::signal::TrackRequest;

    use super::*;

    fn signal(connection: &str, payload: Payload) -> Signal {
        Signal { from: "p1".into(), connection: connection.into(), payload: Some(payload), ..Signal::default() }
    }

    #[test]
    fn participants_signals_are_read_per_connection_and_a_track_request_by_its_tile() {
        let offer = signal("publish", description("offer", "v=0".into()));
        assert_eq!(incoming(offer), Some((ConnectionKind::Publish, Incoming::Offer("v=0".into()))));
        let answer = signal("subscribe", description("answer", "v=0".into()));
        assert_eq!(incoming(answer), Some((ConnectionKind::Subscribe, Incoming::Answer("v=0".into()))));
        assert_eq!(incoming(signal("", description("offer", "v=0".into()))), None, "no connection: a mesh offer");
        assert_eq!(incoming(signal("publish", description("pranswer", "v=0".into()))), None);
        let request = |max_width, max_height, paused| {
            let request = TrackRequest { track_id: "cam".into(), max_width, max_height, paused };
            match incoming(signal("", Payload::TrackRequest(request))) {
                Some((ConnectionKind::Subscribe, Incoming::TrackRequest { shown, .. })) => shown,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(request(320, 180, false), Shown::Tile(320, 180));
        assert_eq!(request(0, 0, false), Shown::AnySize);
        assert_eq!(request(320, 0, false), Shown::Tile(320, u16::MAX), "no limit on the height");
        assert_eq!(request(1 << 20, 180, false), Shown::Tile(u16::MAX, 180));
        assert_eq!(request(320, 180, true), Shown::Paused);
        let speaker = signal("", Payload::Speaker(Speaker { peer_id: "p2".into() }));
        assert_eq!(incoming(speaker), None, "only the SFU announces speakers");
    }
}
