//! A service's seat in a call as a value: gateway messages, the outcome of entering a gateway and
//! the time go in; what to send the gateway and what happened in the call come out. No socket, no
//! clock and no task, so every rule here is tested without a gateway: who is in the call (from
//! `welcome`, `peer_joined`, `peer_left`, `resync`), which recorder records it, whether its media
//! goes through the media server and which seat that is (`welcome.sfu`, `media_changed`,
//! `resync.sfu`), whom a moderator lets speak (`speak_granted`, `speak_revoked`), when to try the
//! gateways again and when to give
//! up, answering `ping`, leaving with `bye`. The async shell
//! ([`crate::Call`]) carries it over a WebSocket.
//!
//! A service's seat is never resumed (docs/protocol.md): when its socket is lost it leaves the
//! room at once, so the seat enters afresh with a new peer id and every media connection is
//! negotiated anew. Signals the service sends while it has no gateway are therefore dropped:
//! they were for connections of the seat that is gone.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use confab_protocol::signal::{
    Bye, ClientMessage, IceCandidate, IceServer, Peer, Pong, ServerMessage, Signal, Welcome, client_message,
    server_message::Kind, signal::Payload,
};

/// When to try the gateways again after losing (or not reaching) one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejoin {
    /// The pause between two rounds over the gateways.
    pub backoff: Duration,
    /// How long the seat may be without a gateway before the call is given up; `None`: never.
    pub give_up_after: Option<Duration>,
    /// Whether the first entry is retried like a rejoin; if not, it is one round over the gateways.
    pub retry_first_entry: bool,
}

/// What happened in the call, for the service's own policy.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The seat is in the call (again) as `peer_id`; `peers` were in it already; `sfu`: the peer
    /// id of the media server's seat the call goes through, `None` for a mesh.
    Joined {
        peer_id: String,
        peers: Vec<Peer>,
        sfu: Option<String>,
    },
    PeerJoined(Peer),
    /// A peer left (or, after a `resync`, is no longer listed).
    PeerLeft {
        peer_id: String,
    },
    /// The gateway may have missed room events: this is everyone in the call now. Peers no longer
    /// listed were told as [`Event::PeerLeft`] just before.
    Resync {
        peers: Vec<Peer>,
    },
    /// The recorder with this peer id records the call (it is never in peer lists).
    RecordingStarted {
        recorder_peer_id: String,
    },
    RecordingStopped {
        recorder_peer_id: String,
    },
    Offer {
        from: String,
        sdp: String,
    },
    Answer {
        from: String,
        sdp: String,
    },
    Candidate {
        from: String,
        candidate: IceCandidate,
    },
    /// A signal about a participant's connections to the media server (it names a
    /// `connection`, or carries a `track_request`): for the SFU's seat, which reads it whole.
    MediaSignal {
        from: String,
        signal: Signal,
    },
    /// The call's media now goes through the media server's seat `sfu` (it entered, or took over
    /// from another), or peer to peer again (`None`: it left). Told by `media_changed`, or by a
    /// `resync` that names another seat than the last one known (then just before
    /// [`Event::Resync`]).
    MediaChanged {
        sfu: Option<String>,
    },
    /// A moderator let the peer speak in a lecture: it may publish to the media server now.
    SpeakGranted {
        peer_id: String,
    },
    /// A moderator took back the peer's leave to speak: it may no longer publish.
    SpeakRevoked {
        peer_id: String,
    },
    /// The gateway went away; the seat tries the gateways again (media connections to peers may
    /// live on, but the peers will offer to the new seat).
    Lost,
    /// The seat is out of the call for good.
    Ended(Ended),
}

/// Why a seat left its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The service left with `bye`.
    Left,
    /// The room was deleted.
    RoomClosed,
    /// The seat was removed from the room (`kicked` and its reason).
    Kicked(String),
    /// No gateway admitted the seat in time.
    GaveUp,
}

enum State {
    /// Out of the call: the gateways are to be tried at `at`; `since`: when the seat was last in
    /// the call (or first asked to enter), which decides when to give up.
    Entering {
        at: Instant,
        since: Instant,
        first: bool,
    },
    InCall {
        peer_id: String,
    },
    Ended,
}

/// The seat's view of its call.
pub struct Session {
    rejoin: Rejoin,
    state: State,
    /// Everyone else in the call, by peer id.
    roster: HashMap<String, Peer>,
    /// The peer id of the recorder recording the call, if one is.
    recorder: Option<String>,
    /// The peer id of the media server's seat the call goes through, if it does.
    sfu: Option<String>,
    ice_servers: Vec<IceServer>,
    events: VecDeque<Event>,
    transmit: VecDeque<ClientMessage>,
}

impl Session {
    /// A seat that wants to enter its call now.
    pub fn new(rejoin: Rejoin, now: Instant) -> Self {
        Self {
            rejoin,
            state: State::Entering { at: now, since: now, first: true },
            roster: HashMap::new(),
            recorder: None,
            sfu: None,
            ice_servers: Vec::new(),
            events: VecDeque::new(),
            transmit: VecDeque::new(),
        }
    }

    /// Whether the gateways are to be tried now.
    pub fn wants_to_enter(&self, now: Instant) -> bool {
        matches!(self.state, State::Entering { at, .. } if at <= now)
    }

    /// When the session next wants to act without any input (try the gateways).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Entering { at, .. } => Some(at),
            State::InCall { .. } | State::Ended => None,
        }
    }

    /// The next thing that happened in the call.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next message for the gateway.
    pub fn poll_transmit(&mut self) -> Option<ClientMessage> {
        self.transmit.pop_front()
    }

    pub fn is_ended(&self) -> bool {
        matches!(self.state, State::Ended)
    }

    /// The seat's peer id while it is in the call.
    pub fn peer_id(&self) -> Option<&str> {
        match &self.state {
            State::InCall { peer_id } => Some(peer_id),
            State::Entering { .. } | State::Ended => None,
        }
    }

    /// Who a peer of the call is, while it is in the call.
    pub fn peer(&self, peer_id: &str) -> Option<&Peer> {
        self.roster.get(peer_id)
    }

    /// Everyone else in the call (services' hidden seats are never listed).
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.roster.values()
    }

    /// The recorder recording the call, if one is.
    pub fn recorder(&self) -> Option<&str> {
        self.recorder.as_deref()
    }

    /// The media server's seat the call goes through, if it does.
    pub fn sfu(&self) -> Option<&str> {
        self.sfu.as_deref()
    }

    /// The STUN and TURN servers of the last `welcome`.
    pub fn ice_servers(&self) -> &[IceServer] {
        &self.ice_servers
    }

    /// A gateway admitted the seat with `welcome`.
    pub fn entered(&mut self, welcome: Welcome) {
        if !matches!(self.state, State::Entering { .. }) {
            return;
        }
        self.roster = welcome.peers.iter().map(|peer| (peer.peer_id.clone(), peer.clone())).collect();
        // A recording in progress is told right after the welcome.
        self.recorder = None;
        self.ice_servers = welcome.ice_servers;
        self.sfu = welcome.sfu.map(|sfu| sfu.peer_id);
        self.state = State::InCall { peer_id: welcome.peer_id.clone() };
        let sfu = self.sfu.clone();
        self.events.push_back(Event::Joined { peer_id: welcome.peer_id, peers: welcome.peers, sfu });
    }

    /// No gateway admitted the seat in the round that began at `now`'s round.
    pub fn enter_failed(&mut self, now: Instant) {
        let State::Entering { since, first, .. } = self.state else { return };
        let out_for = now.saturating_duration_since(since);
        let give_up = (first && !self.rejoin.retry_first_entry)
            || self.rejoin.give_up_after.is_some_and(|limit| out_for >= limit);
        if give_up {
            self.end(Ended::GaveUp);
        } else {
            self.state = State::Entering { at: now + self.rejoin.backoff, since, first };
        }
    }

    /// The gateway's socket closed or failed.
    pub fn lost(&mut self, now: Instant) {
        if matches!(self.state, State::InCall { .. }) {
            self.transmit.clear();
            self.state = State::Entering { at: now, since: now, first: false };
            self.events.push_back(Event::Lost);
        }
    }

    /// A message from the gateway.
    pub fn receive(&mut self, message: ServerMessage) {
        if !matches!(self.state, State::InCall { .. }) {
            return;
        }
        let Some(kind) = message.kind else { return };
        match kind {
            Kind::PeerJoined(joined) => {
                if let Some(peer) = joined.peer {
                    self.roster.insert(peer.peer_id.clone(), peer.clone());
                    self.events.push_back(Event::PeerJoined(peer));
                }
            }
            Kind::PeerLeft(left) => {
                self.roster.remove(&left.peer_id);
                self.events.push_back(Event::PeerLeft { peer_id: left.peer_id });
            }
            Kind::Resync(resync) => {
                let listed: HashMap<String, Peer> =
                    resync.peers.iter().map(|peer| (peer.peer_id.clone(), peer.clone())).collect();
                let mut gone: Vec<String> =
                    self.roster.keys().filter(|id| !listed.contains_key(*id)).cloned().collect();
                gone.sort();
                self.events.extend(gone.into_iter().map(|peer_id| Event::PeerLeft { peer_id }));
                self.roster = listed;
                self.media_through(resync.sfu.map(|sfu| sfu.peer_id));
                self.events.push_back(Event::Resync { peers: resync.peers });
            }
            Kind::RecordingStarted(started) => {
                let recorder_peer_id = started.recorder_peer_id;
                if let Some(earlier) = self.recorder.take().filter(|earlier| *earlier != recorder_peer_id) {
                    self.events.push_back(Event::RecordingStopped { recorder_peer_id: earlier });
                }
                self.recorder = Some(recorder_peer_id.clone());
                self.events.push_back(Event::RecordingStarted { recorder_peer_id });
            }
            Kind::RecordingStopped(stopped) => {
                if self.recorder.as_deref() == Some(stopped.recorder_peer_id.as_str()) {
                    self.recorder = None;
                }
                self.events.push_back(Event::RecordingStopped { recorder_peer_id: stopped.recorder_peer_id });
            }
            Kind::SpeakGranted(granted) => self.events.push_back(Event::SpeakGranted { peer_id: granted.peer_id }),
            Kind::SpeakRevoked(revoked) => self.events.push_back(Event::SpeakRevoked { peer_id: revoked.peer_id }),
            Kind::Signal(signal) => self.signalled(signal),
            Kind::Ping(ping) => self.send(client_message::Kind::Pong(Pong { timestamp_ms: ping.timestamp_ms })),
            Kind::RoomClosed(_) => self.end(Ended::RoomClosed),
            Kind::Kicked(kicked) => self.end(Ended::Kicked(kicked.reason)),
            Kind::Error(error) => tracing::warn!(error.code = %error.code, "the gateway refused a message"),
            Kind::MediaChanged(changed) => self.media_through(changed.sfu.map(|sfu| sfu.peer_id)),
            Kind::Welcome(_) | Kind::Broadcast(_) | Kind::Pong(_) => {}
        }
    }

    /// The call's media goes through `sfu` (or peer to peer): told once per change.
    fn media_through(&mut self, sfu: Option<String>) {
        if self.sfu != sfu {
            self.sfu.clone_from(&sfu);
            self.events.push_back(Event::MediaChanged { sfu });
        }
    }

    fn signalled(&mut self, signal: Signal) {
        if !signal.connection.is_empty() || matches!(signal.payload, Some(Payload::TrackRequest(_))) {
            let from = signal.from.clone();
            return self.events.push_back(Event::MediaSignal { from, signal });
        }
        let from = signal.from;
        let event = match signal.payload {
            Some(Payload::Sdp(description)) => match description.r#type.as_str() {
                "offer" => Event::Offer { from, sdp: description.sdp },
                "answer" => Event::Answer { from, sdp: description.sdp },
                other => {
                    return tracing::debug!(peer.id = %from, sdp.r#type = other, "an SDP type a seat does not take");
                }
            },
            Some(Payload::Candidate(candidate)) => Event::Candidate { from, candidate },
            Some(Payload::TrackRequest(_) | Payload::Speaker(_) | Payload::Refusal(_)) | None => return,
        };
        self.events.push_back(event);
    }

    /// Sends an offer, answer or candidate to one peer (`signal.to`); dropped while the seat has
    /// no gateway (see the module's comment).
    pub fn signal(&mut self, signal: Signal) {
        if matches!(self.state, State::InCall { .. }) {
            self.send(client_message::Kind::Signal(signal));
        }
    }

    /// Leaves the call: `bye` if the seat is in it, and nothing more after.
    pub fn leave(&mut self) {
        if matches!(self.state, State::InCall { .. }) {
            self.send(client_message::Kind::Bye(Bye {}));
        }
        self.end(Ended::Left);
    }

    fn send(&mut self, kind: client_message::Kind) {
        self.transmit.push_back(ClientMessage { kind: Some(kind) });
    }

    fn end(&mut self, why: Ended) {
        if !self.is_ended() {
            self.state = State::Ended;
            self.events.push_back(Event::Ended(why));
        }
    }
}

#[cfg(test)]
mod tests;
