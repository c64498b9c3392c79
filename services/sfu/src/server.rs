//! The media server of one instance as a value: every room it serves, every participant's
//! connections, on one UDP port. Datagrams, signals from the call, room events and the time go
//! in; datagrams to send and signals to the call come out ([`Output`]). No socket and no clock, so
//! whole calls (publishers, subscribers, renegotiation, departures) are tested in process with
//! real WebRTC peers on the other side.
//!
//! What it decides: a participant's offer on its publish connection is answered if the room lets
//! it publish ([`crate::room`]); each track it sends is published in the room's
//! [`crate::forwarder::Forwarder`] as its layers arrive; everyone else receives it on their
//! subscribe connection, which the server offers and renegotiates as tracks come and go (one
//! negotiation at a time: changes during one wait for its answer). The forwarder decides per
//! packet; this module carries its actions out on the connections.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use confab_call::camera_profile::{self, CameraOffer};
use confab_domain::{CallRole, RoomMode};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_VP8};
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::sdp::extmap::TRANSPORT_CC_URI;
use rtc::shared::marshal::{Marshal, MarshalSize};
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use crate::climb::Climb;
use crate::connection::{AUDIO_LEVEL_URI, Codecs, ConnectionKind, new_peer_connection};
use crate::demux::{Demux, Dropped};
use crate::forward::{Codec, Layer, Renumbering};
use crate::forwarder::{Action, Cost, DownId, Drops, Forwarder, LayerSwitches, MAX_LAYERS, Packet, TrackId};
use crate::publish_cap::{self, Policer};
use crate::room::{MediaKind, Publication, Refusal, Room};
use crate::rtcp_delivery::{as_nack, as_sender_report, as_transport_feedback, asks_for_keyframe};
use crate::send_side::SendSide;
use crate::speakers::Speakers;

/// What a participant sends the server, on one of its connections.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Offer(String),
    Answer(String),
    Candidate(RTCIceCandidateInit),
    /// How the subscriber shows one of the tracks it receives (`a=msid` track id).
    TrackRequest {
        track_id: String,
        shown: Shown,
    },
}

/// How a subscriber shows a video track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// In a tile of this size (width, height): it gets the smallest layer that covers it.
    Tile(u16, u16),
    /// At any size: the top layer its bandwidth carries.
    AnySize,
    /// Not at all (off screen): the video stops; audio is never paused.
    Paused,
}

/// What the server sends a participant, about one of its connections.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Offer(String),
    Answer(String),
    /// The participant's description or track request was refused; the code says why
    /// (docs/protocol.md: `not_allowed_to_publish`, `unknown_peer`, `invalid_description`,
    /// `unsupported_codecs`, `unknown_track`).
    Refused(&'static str),
}

/// What the I/O around the server has to do.
#[derive(Debug)]
pub enum Output {
    Transmit {
        to: SocketAddr,
        datagram: BytesMut,
    },
    Signal {
        room: String,
        to: String,
        connection: ConnectionKind,
        message: Outgoing,
    },
    /// `room`'s dominant speaker is now `peer_id`: everyone in it is told.
    Speaker {
        room: String,
        peer_id: String,
    },
}

/// A description the stack could not read or apply.
const INVALID_DESCRIPTION: &str = "invalid_description";
/// A camera's offer without H.264 in packetization-mode 1, the one video format the server
/// forwards for cameras.
const UNSUPPORTED_CODECS: &str = "unsupported_codecs";

/// How often subscribers get sender reports (RFC 3550's interval is 5 s; browsers send about
/// one a second, and a new subscriber needs one before it can sync).
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// The bytes of an RTP header without extensions, counted with each payload.
const RTP_HEADER: usize = 12;

/// What the TWCC extension adds to a packet: the extension header and the number, padded.
const TRANSPORT_WIDE_EXTENSION: usize = 8;

/// How often every connection's next timer is read again, in case something the server did to
/// a connection moved its timers without its datagrams being collected after (which reads them).
const TIMERS_READ_EVERY: Duration = Duration::from_millis(50);

/// How often subscribers' bandwidth is shared out again.
const ALLOCATE_EVERY: Duration = Duration::from_millis(500);
/// What a subscriber's audio track is assumed to take (Opus is 20–64 kbit/s).
const AUDIO_RESERVE: u64 = 64_000;

/// How often a room's dominant speaker is looked for.
const SPEAKER_POLL: Duration = Duration::from_millis(100);

/// The highest layer there may be: a copy asks for it to get the top layer sent.
const TOP_LAYER: Layer = MAX_LAYERS as Layer - 1;

/// The most a subscriber may be sent again on its NACKs, bits per second: several times what a
/// few per cent lost of a 2.5 Mbit/s downlink needs, and a bound on what a subscriber that NACKs
/// everything can make the server send.
const RESENT_BITRATE: u64 = 1_000_000;

/// A track request naming a track the subscriber does not receive.
const UNKNOWN_TRACK: &str = "unknown_track";

/// A connection, numbered by the server (the forwarder's `connection`).
type ConnectionId = u64;

/// One participant's connection with the server.
struct Connection {
    pc: RTCPeerConnection,
    room: String,
    peer: String,
    kind: ConnectionKind,
    /// The address its media last went to (its ICE agent's selected pair).
    nominated: Option<SocketAddr>,
    /// Publish connections: the tracks it sends, by the stack's track id.
    sends: HashMap<String, Sent>,
    /// Subscribe connections: its copies of other participants' tracks.
    copies: HashMap<TrackId, Copy>,
    /// Subscribe connections: an offer awaits its answer.
    offering: bool,
    /// Subscribe connections: the bandwidth towards the participant, and the trials above it.
    send_side: Option<SendSide>,
    climb: Climb,
    /// Publish connections: what the participant may send; subscribe connections: what it may
    /// be sent again on its NACKs ([`RESENT_BITRATE`]).
    policer: Policer,
    /// Its stack's next timer, as last read ([`MediaServer::poll_timeout`]).
    next_timer: Option<Instant>,
}

impl Connection {
    /// A packet of the subscriber's copy of `track` with these numbers and the payload `payload`
    /// makes (made only if the packet can go), numbered for TWCC if the subscriber's bandwidth is
    /// estimated, and sealed for the wire past webrtc-rs's pipeline ([`RTCPeerConnection::seal_rtp`]):
    /// `None` if the connection has no such copy or its subscriber has not answered for it yet;
    /// an error if it cannot be sealed yet (before DTLS has completed).
    fn seal_copy(
        &mut self,
        track: TrackId,
        numbers: Numbers,
        payload: impl FnOnce() -> Bytes,
        scratch: &mut Sealing,
        now: Instant,
    ) -> Option<Result<TaggedBytesMut, rtc::shared::error::Error>> {
        let copy = self.copies.get_mut(&track)?;
        let payload_type = copy.payload_type?;
        let payload = payload();
        let Sealing { header, plaintext } = scratch;
        header.version = 2;
        header.marker = numbers.marker;
        header.payload_type = payload_type;
        header.sequence_number = numbers.sequence_number;
        header.timestamp = numbers.timestamp;
        header.ssrc = copy.ssrc;
        header.extension = false;
        header.extensions.clear();
        header.extensions_padding = 0;
        let numbered = match (self.send_side.as_mut(), copy.transport_wide) {
            (Some(side), Some(extension)) => {
                let number = side.number(RTP_HEADER + TRANSPORT_WIDE_EXTENSION + payload.len(), now);
                let _ = header.set_extension(extension, transport_wide_number(number));
                true
            }
            _ => false,
        };
        plaintext.clear();
        plaintext.resize(header.marshal_size(), 0);
        let sealed = header.marshal_to(plaintext).and_then(|_| {
            plaintext.extend_from_slice(&payload);
            self.pc.seal_rtp(now, header, plaintext)
        });
        match &sealed {
            Ok(_) => {
                copy.packets = copy.packets.wrapping_add(1);
                copy.octets = copy.octets.wrapping_add(payload.len() as u32);
            }
            Err(_) if numbered => self.send_side.as_mut().map_or((), SendSide::unnumber),
            Err(_) => {}
        }
        Some(sealed)
    }
}

/// What sealing a copy reuses from one copy to the next, so that it allocates only the sealed
/// datagram.
#[derive(Default)]
struct Sealing {
    header: rtc::rtp::header::Header,
    plaintext: Vec<u8>,
}

/// Every 16-bit number in network order, so that a TWCC extension's payload is a slice of it
/// rather than an allocation per copy.
static NUMBERS: [u8; 2 << 16] = {
    let mut numbers = [0; 2 << 16];
    let mut number = 0;
    while number < 1 << 16 {
        numbers[2 * number] = (number >> 8) as u8;
        numbers[2 * number + 1] = number as u8;
        number += 1;
    }
    numbers
};

/// `number` as a TWCC extension's payload.
fn transport_wide_number(number: u16) -> Bytes {
    let at = 2 * usize::from(number);
    Bytes::from_static(&NUMBERS[at..at + 2])
}

/// A packet's numbers in a subscriber's stream.
#[derive(Debug, Clone, Copy)]
struct Numbers {
    sequence_number: u16,
    timestamp: u32,
    marker: bool,
}

/// A track a participant sends.
struct Sent {
    track: TrackId,
    receiver: RTCRtpReceiverId,
    /// Audio: the id its packets carry their level in, if negotiated.
    audio_level: Option<u8>,
}

/// A subscriber's copy of a track, as its connection sends it.
struct Copy {
    down: DownId,
    sender: RTCRtpSenderId,
    ssrc: u32,
    /// Known once the subscriber answered.
    payload_type: Option<u8>,
    /// The id of the TWCC extension on it, if the answer kept it.
    transport_wide: Option<u8>,
    /// Packets and payload bytes sent, for its sender reports (they wrap, as RTCP's do).
    packets: u32,
    octets: u32,
}

/// A track published in a room.
struct Published {
    publisher: String,
    /// The connection it arrives on.
    connection: ConnectionId,
    /// Its id in subscribers' descriptions (`a=msid:<publisher> <id>`).
    id: String,
    kind: RtpCodecKind,
    /// The codec it arrives in, which subscribers' copies are offered in.
    codec: RTCRtpCodec,
}

/// A room the server serves.
struct RoomMedia {
    room: Room,
    forwarder: Forwarder,
    tracks: HashMap<TrackId, Published>,
    /// Each participant's connections.
    publish: HashMap<String, ConnectionId>,
    subscribe: HashMap<String, ConnectionId>,
    /// Which subscribe connection each copy belongs to.
    copies: HashMap<DownId, ConnectionId>,
    speakers: Speakers<String>,
    /// When the dominant speaker was last looked for.
    speakers_polled: Option<Instant>,
}

pub struct MediaServer {
    /// The shared port's address, as participants reach it.
    address: SocketAddr,
    rooms: HashMap<String, RoomMedia>,
    connections: HashMap<ConnectionId, Connection>,
    demux: Demux<ConnectionId>,
    next_connection: ConnectionId,
    next_ssrc: u32,
    outputs: VecDeque<Output>,
    actions: Vec<Action>,
    /// Reused by every copy sealed.
    sealing: Sealing,
    counts: Counts,
    /// When subscribers' bandwidth is next shared out, and their sender reports next written.
    next_allocation: Instant,
    next_report: Instant,
    /// When every connection's next timer is next read again ([`TIMERS_READ_EVERY`]).
    next_timers_read: Instant,
}

/// What the server did since it started, for the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Packets handed to subscribers' connections.
    pub forwarded: u64,
    /// Forwarded packets the stack refused to send (no SSRC or codec on that leg).
    pub unsendable: u64,
    /// Keyframe requests (PLI) sent to publishers.
    pub keyframe_requests: u64,
    /// Offers refused: not allowed to publish, unknown peer, or unreadable.
    pub refused: u64,
    /// Publishers' packets dropped beyond their cap ([`crate::publish_cap`]).
    pub over_cap: u64,
    /// Packets subscribers' NACKs asked for again, and those sent again from the publishers'
    /// caches (the rest: no longer cached, or beyond the subscriber's [`RESENT_BITRATE`]).
    pub nacked: u64,
    pub resent: u64,
}

/// The server's state and counts, for the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub rooms: usize,
    pub connections: usize,
    pub published_tracks: usize,
    /// Subscribers' copies of tracks.
    pub copies: usize,
    pub counts: Counts,
    /// Dropped by the forwarders (summed over rooms) and by the shared port's demultiplexer.
    pub forwarder_drops: Drops,
    pub demux_drops: Dropped,
    /// Copies moved between simulcast layers, summed over rooms.
    pub layer_switches: LayerSwitches,
}

impl MediaServer {
    pub fn new(address: SocketAddr) -> Self {
        Self {
            address,
            rooms: HashMap::new(),
            connections: HashMap::new(),
            demux: Demux::default(),
            next_connection: 1,
            next_ssrc: getrandom::u32().unwrap_or(0x5f0_0000),
            outputs: VecDeque::new(),
            actions: Vec::new(),
            sealing: Sealing::default(),
            counts: Counts::default(),
            next_allocation: Instant::now(),
            next_report: Instant::now(),
            next_timers_read: Instant::now(),
        }
    }

    pub fn stats(&self) -> Stats {
        let mut forwarder_drops = Drops::default();
        let mut layer_switches = LayerSwitches::default();
        for media in self.rooms.values() {
            let switches = media.forwarder.layer_switches();
            layer_switches.up += switches.up;
            layer_switches.down += switches.down;
            let drops = media.forwarder.drops();
            forwarder_drops.unknown_ssrc += drops.unknown_ssrc;
            forwarder_drops.oversized += drops.oversized;
            forwarder_drops.nack_misses += drops.nack_misses;
        }
        Stats {
            rooms: self.rooms.len(),
            connections: self.connections.len(),
            published_tracks: self.rooms.values().map(|media| media.tracks.len()).sum(),
            copies: self.rooms.values().map(|media| media.copies.len()).sum(),
            counts: self.counts,
            forwarder_drops,
            demux_drops: self.demux.dropped(),
            layer_switches,
        }
    }

    /// Each subscribe connection's bandwidth estimate, bits per second, for the metrics.
    pub fn estimates(&self) -> impl Iterator<Item = u64> + '_ {
        self.connections.values().filter_map(|connection| connection.send_side.as_ref().map(SendSide::estimate))
    }

    /// The server starts serving `room`.
    pub fn open_room(&mut self, room: &str, mode: RoomMode) {
        self.rooms.entry(room.to_owned()).or_insert_with(|| RoomMedia {
            room: Room::new(mode),
            forwarder: Forwarder::default(),
            tracks: HashMap::new(),
            publish: HashMap::new(),
            subscribe: HashMap::new(),
            copies: HashMap::new(),
            speakers: Speakers::default(),
            speakers_polled: None,
        });
    }

    /// The server stops serving `room`: every connection in it closes.
    pub fn close_room(&mut self, room: &str) {
        let Some(media) = self.rooms.remove(room) else { return };
        for id in media.publish.values().chain(media.subscribe.values()) {
            self.drop_connection(*id);
        }
    }

    /// `peer` is in `room`'s call in `role`: a person, or the recorder (which receives every track
    /// and publishes none).
    pub fn peer_joined(&mut self, room: &str, peer: &str, role: CallRole, now: Instant) {
        let Some(media) = self.rooms.get_mut(room) else { return };
        media.room.join(peer, role);
        self.refresh_subscriptions(room, now);
    }

    /// `peer` left `room`'s call: its connections close, and what it published ends.
    pub fn peer_left(&mut self, room: &str, peer: &str, now: Instant) {
        let Some(media) = self.rooms.get_mut(room) else { return };
        media.room.leave(peer);
        media.speakers.forget(&peer.to_owned());
        let connections = [media.publish.remove(peer), media.subscribe.remove(peer)];
        for id in connections.into_iter().flatten() {
            self.end_connection(id);
        }
        self.refresh_subscriptions(room, now);
    }

    /// A moderator let `peer` speak in `room` (a lecture's viewer may now publish).
    pub fn let_speak(&mut self, room: &str, peer: &str) {
        if let Some(media) = self.rooms.get_mut(room) {
            let _ = media.room.let_speak(peer);
        }
    }

    /// A moderator took the word back from `peer`: in a lecture, its publish connection closes
    /// and what it published ends for everyone.
    pub fn silence(&mut self, room: &str, peer: &str, now: Instant) {
        let Some(media) = self.rooms.get_mut(room) else { return };
        let Ok(ended) = media.room.silence(peer) else { return };
        if ended.is_empty() {
            return;
        }
        if let Some(id) = media.publish.remove(peer) {
            self.end_connection(id);
        }
        self.refresh_subscriptions(room, now);
    }

    /// A signal from `from` in `room` about its `connection`.
    pub fn signal(&mut self, room: &str, from: &str, connection: ConnectionKind, message: Incoming, now: Instant) {
        let existing = self.rooms.get(room).and_then(|media| match connection {
            ConnectionKind::Publish => media.publish.get(from),
            ConnectionKind::Subscribe => media.subscribe.get(from),
        });
        let existing = existing.copied();
        match (connection, message) {
            (ConnectionKind::Publish, Incoming::Offer(sdp)) => self.answer_publisher(room, from, existing, sdp, now),
            (ConnectionKind::Subscribe, Incoming::Answer(sdp)) => {
                if let Some(id) = existing {
                    self.subscriber_answered(id, sdp, now);
                }
            }
            (_, Incoming::Candidate(candidate)) => {
                if let Some(connection) = existing.and_then(|id| self.connections.get_mut(&id)) {
                    // A candidate the stack cannot read is the participant's loss alone.
                    let _ = connection.pc.add_remote_candidate(candidate);
                }
            }
            (ConnectionKind::Subscribe, Incoming::TrackRequest { track_id, shown }) => {
                // Without a subscribe connection nothing is received: unknown too.
                if !existing.is_some_and(|id| self.show(id, &track_id, shown, now)) {
                    self.signal_out(room, from, connection, Outgoing::Refused(UNKNOWN_TRACK));
                }
            }
            // The server offers subscribe connections and answers publish ones, and tracks are
            // asked for on the connection that receives them; anything else is a confused client,
            // whose connection stays as it was.
            (ConnectionKind::Publish, Incoming::Answer(_) | Incoming::TrackRequest { .. })
            | (ConnectionKind::Subscribe, Incoming::Offer(_)) => {}
        }
        if let Some(id) = existing {
            self.pump(id, now);
        }
    }

    /// A datagram that arrived on the shared port.
    pub fn datagram(&mut self, from: SocketAddr, datagram: &[u8], now: Instant) {
        let Some(id) = self.demux.route(from, datagram) else { return };
        let Some(connection) = self.connections.get_mut(&id) else { return };
        let transport = TransportContext {
            local_addr: self.address,
            peer_addr: from,
            ecn: None,
            transport_protocol: TransportProtocol::UDP,
        };
        let _ = connection.pc.handle_read(TaggedBytesMut { now, transport, message: BytesMut::from(datagram) });
        self.pump(id, now);
    }

    /// When [`MediaServer::timeout`] is next due: the earliest of the connections' timers, as
    /// last read (reading a stack's timers walks its interceptors, DTLS and ICE: with hundreds of
    /// connections, reading them all at every look cost a tenth of the server's time), and the
    /// server's own.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let connections = self.connections.values().filter_map(|connection| connection.next_timer).min();
        let own = (!self.connections.is_empty())
            .then_some(self.next_allocation.min(self.next_report).min(self.next_timers_read));
        connections.into_iter().chain(own).min()
    }

    /// Lets the connections' due timers run (ICE checks, DTLS retransmissions, RTCP reports), and
    /// shares each subscriber's bandwidth among what it receives every [`ALLOCATE_EVERY`].
    pub fn timeout(&mut self, now: Instant) {
        if now >= self.next_report {
            self.next_report = now + REPORT_EVERY;
            self.report_to_subscribers(now);
        }
        if now >= self.next_allocation {
            self.next_allocation = now + ALLOCATE_EVERY;
            let subscribers: Vec<ConnectionId> =
                self.connections.iter().filter(|(_, c)| c.send_side.is_some()).map(|(id, _)| *id).collect();
            for id in subscribers {
                self.allocate(id, now);
            }
        }
        if now >= self.next_timers_read {
            self.next_timers_read = now + TIMERS_READ_EVERY;
            for connection in self.connections.values_mut() {
                connection.next_timer = connection.pc.poll_timeout();
            }
        }
        let due: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter_map(|(id, connection)| connection.next_timer.is_some_and(|at| at <= now).then_some(*id))
            .collect();
        for id in due {
            if let Some(connection) = self.connections.get_mut(&id) {
                let _ = connection.pc.handle_timeout(now);
            }
            self.pump(id, now);
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn answer_publisher(&mut self, room: &str, peer: &str, existing: Option<ConnectionId>, sdp: String, now: Instant) {
        let Some(media) = self.rooms.get(room) else { return };
        if !media.room.may_publish(peer) {
            let refusal =
                if media.room.peers().any(|p| p == peer) { Refusal::NotAllowedToPublish } else { Refusal::UnknownPeer };
            self.signal_out(room, peer, ConnectionKind::Publish, Outgoing::Refused(refusal.code()));
            return;
        }
        // A camera publishes the H.264 and G.711 it offers, a participant VP8 and Opus.
        let codecs = if self.rooms.get(room).is_some_and(|media| media.room.is_camera(peer)) {
            let offered = CameraOffer::parse(&sdp);
            let Some(profile_level_id) = offered.profile_level_id else {
                self.signal_out(room, peer, ConnectionKind::Publish, Outgoing::Refused(UNSUPPORTED_CODECS));
                return;
            };
            Codecs::Camera { profile_level_id, audio: offered.g711 }
        } else {
            Codecs::Participant
        };
        // An offer from another DTLS endpoint (the participant's page reloaded: same peer id, new
        // connections) starts afresh: its old connections are dead, and its new page waits for
        // a subscribe offer of its own. An ICE restart keeps the fingerprint and the connection.
        let existing = match existing {
            Some(id) if self.fingerprint_changed(id, &sdp) => {
                self.end_connection(id);
                if let Some(subscribe) = self.rooms.get_mut(room).and_then(|media| media.subscribe.remove(peer)) {
                    self.end_connection(subscribe);
                }
                self.refresh_subscriptions(room, now);
                None
            }
            existing => existing,
        };
        let id = match existing {
            Some(id) => id,
            None => match self.new_connection(room, peer, ConnectionKind::Publish, &codecs, now) {
                Some(id) => id,
                None => return,
            },
        };
        let Some(connection) = self.connections.get_mut(&id) else { return };
        let answer = RTCSessionDescription::offer(sdp).and_then(|offer| {
            connection.pc.set_remote_description(now, offer)?;
            let answer = connection.pc.create_answer(None)?;
            connection.pc.set_local_description(now, answer.clone())?;
            Ok(answer)
        });
        match answer {
            Ok(answer) => {
                let answer = publish_cap::announce(&answer.sdp);
                self.signal_out(room, peer, ConnectionKind::Publish, Outgoing::Answer(answer));
            }
            Err(_) => {
                self.signal_out(room, peer, ConnectionKind::Publish, Outgoing::Refused(INVALID_DESCRIPTION));
                if existing.is_none() {
                    self.end_connection(id);
                }
            }
        }
        self.pump(id, now);
    }

    /// Whether `offer` comes from another DTLS certificate than connection `id`'s remote one.
    fn fingerprint_changed(&self, id: ConnectionId, offer: &str) -> bool {
        let Some(current) = self.connections.get(&id).and_then(|c| c.pc.remote_description()) else { return false };
        fingerprint(&current.sdp) != fingerprint(offer)
    }

    fn subscriber_answered(&mut self, id: ConnectionId, sdp: String, now: Instant) {
        let Some(connection) = self.connections.get_mut(&id) else { return };
        if !connection.offering {
            return;
        }
        let applied =
            RTCSessionDescription::answer(sdp).and_then(|answer| connection.pc.set_remote_description(now, answer));
        connection.offering = false;
        if applied.is_err() {
            let (room, peer) = (connection.room.clone(), connection.peer.clone());
            self.signal_out(&room, &peer, ConnectionKind::Subscribe, Outgoing::Refused(INVALID_DESCRIPTION));
            return;
        }
        let mut new_copies = Vec::new();
        let tracks = self.rooms.get(&connection.room).map(|media| &media.tracks);
        for (track, copy) in connection.copies.iter_mut().filter(|(_, copy)| copy.payload_type.is_none()) {
            // Sent at the payload type the subscriber gave the track's own codec; none if its
            // answer put another codec there (a stack that answers what it was not offered).
            let mime_type = tracks.and_then(|tracks| tracks.get(track)).map(|t| t.codec.mime_type.as_str());
            if let Some(mut sender) = connection.pc.rtp_sender(copy.sender) {
                let parameters = &sender.get_parameters().rtp_parameters;
                let own = parameters
                    .codecs
                    .iter()
                    .find(|c| mime_type.is_some_and(|m| c.rtp_codec.mime_type.eq_ignore_ascii_case(m)));
                copy.payload_type = own.map(|c| c.payload_type);
                // Numbered for TWCC if the answer kept its extension.
                let transport_wide =
                    parameters.header_extensions.iter().find(|extension| extension.uri == TRANSPORT_CC_URI);
                copy.transport_wide = transport_wide.and_then(|extension| u8::try_from(extension.id).ok());
            }
            new_copies.push(copy.down);
        }
        let room = connection.room.clone();
        // New copies get the top layer until the subscriber says how it shows them; changes held
        // back while the offer was out go now.
        if let Some(media) = self.rooms.get_mut(&room) {
            for down in new_copies {
                media.forwarder.request(down, Some(TOP_LAYER), now);
            }
        }
        self.allocate(id, now);
        self.refresh_subscriptions(&room, now);
    }

    /// Shares subscribe connection `id`'s bandwidth among its video copies that are not paused:
    /// after what its audio needs, each keeps what it costs now and the rest is split equally
    /// (or, short of that, each gets its share of what there is). The bandwidth is the estimate,
    /// or more while the server tries a layer up ([`Climb`]).
    fn allocate(&mut self, id: ConnectionId, now: Instant) {
        let Some(connection) = self.connections.get_mut(&id) else { return };
        let Some(media) = self.rooms.get_mut(&connection.room) else { return };
        let Some(estimate) = connection.send_side.as_ref().map(SendSide::estimate) else {
            // Not estimated (the recorder's, inside the deployment): nothing limits its copies.
            for copy in connection.copies.values() {
                media.forwarder.estimate(copy.down, u64::MAX, now);
            }
            return;
        };
        let videos: Vec<(DownId, Cost)> = connection
            .copies
            .values()
            .filter_map(|copy| Some((copy.down, media.forwarder.costs(copy.down, now)?)))
            .collect();
        let audios = connection.copies.values().filter(|copy| is_audio(&media.tracks, copy.down.track)).count();
        let reserve = AUDIO_RESERVE * audios as u64;
        let costs_now: u64 = videos.iter().map(|(_, cost)| cost.now).sum();
        let wanted = videos
            .iter()
            .any(|(_, cost)| cost.upgrade.is_some())
            .then(|| reserve + videos.iter().map(|(_, cost)| cost.upgrade.unwrap_or(cost.now)).sum::<u64>());
        let budget = connection.climb.budget(estimate, wanted, now).saturating_sub(reserve);
        let count = videos.len().max(1) as u64;
        for (down, cost) in videos {
            let share = match budget.checked_sub(costs_now) {
                Some(left) => cost.now + left / count,
                None if costs_now > 0 => cost.now * budget / costs_now,
                None => budget / count,
            };
            media.forwarder.estimate(down, share, now);
        }
    }

    /// Subscribe connection `id` shows its copy of `track_id` as `shown`; whether it has one.
    fn show(&mut self, id: ConnectionId, track_id: &str, shown: Shown, now: Instant) -> bool {
        let Some(connection) = self.connections.get(&id) else { return false };
        let Some(media) = self.rooms.get_mut(&connection.room) else { return false };
        let copy = copy_named(connection, &media.tracks, track_id);
        let Some((track, copy)) = copy else { return false };
        if media.tracks.get(track).is_some_and(|t| t.kind == RtpCodecKind::Video) {
            let (wants, tile) = match shown {
                Shown::Tile(width, height) => (Some(TOP_LAYER), Some((width, height))),
                Shown::AnySize => (Some(TOP_LAYER), None),
                Shown::Paused => (None, None),
            };
            media.forwarder.request(copy.down, wants, now);
            media.forwarder.fit(copy.down, tile, now);
        }
        self.allocate(id, now);
        true
    }

    /// Brings every participant's subscribe connection in `room` in line with the tracks others
    /// publish: new copies, ended ones removed, one offer per change.
    fn refresh_subscriptions(&mut self, room: &str, now: Instant) {
        let Some(media) = self.rooms.get(room) else { return };
        let peers: Vec<String> =
            media.room.peers().filter(|peer| !media.room.is_camera(peer)).map(str::to_owned).collect();
        for peer in peers {
            self.refresh_subscriber(room, &peer, now);
        }
    }

    fn refresh_subscriber(&mut self, room: &str, peer: &str, now: Instant) {
        let Some(media) = self.rooms.get(room) else { return };
        let wanted: Vec<TrackId> =
            media.tracks.iter().filter(|(_, track)| track.publisher != peer).map(|(id, _)| *id).collect();
        let existing = media.subscribe.get(peer).copied();
        // A new connection speaks the H.264 profiles of the room's cameras exactly.
        let camera_profiles = match existing {
            None => media.tracks.values().filter_map(|track| h264_profile_of(&track.codec)).collect(),
            Some(_) => Vec::new(),
        };
        let codecs = Codecs::Subscriber { camera_profiles };
        let id = match existing {
            Some(id) => id,
            None if wanted.is_empty() => return,
            None => match self.new_connection(room, peer, ConnectionKind::Subscribe, &codecs, now) {
                Some(id) => id,
                None => return,
            },
        };
        let Some(connection) = self.connections.get_mut(&id) else { return };
        let Some(media) = self.rooms.get_mut(room) else { return };
        let ended: Vec<TrackId> = connection.copies.keys().filter(|track| !wanted.contains(track)).copied().collect();
        let added: Vec<TrackId> = wanted.into_iter().filter(|track| !connection.copies.contains_key(track)).collect();
        if connection.offering || (ended.is_empty() && added.is_empty() && existing.is_some()) {
            return;
        }
        // Whether the offer would change anything: a copy that cannot be made (the subscriber
        // declined its codec at the first answer) is not worth renegotiating for, over and over.
        let mut changed = existing.is_none() || !ended.is_empty();
        for track in ended {
            if let Some(copy) = connection.copies.remove(&track) {
                let _ = connection.pc.remove_track(copy.sender);
                media.forwarder.unsubscribe(copy.down);
                media.copies.remove(&copy.down);
            }
        }
        for track in added {
            let Some(published) = media.tracks.get(&track) else { continue };
            let Some(down) = media.forwarder.subscribe(track) else { continue };
            self.next_ssrc = self.next_ssrc.wrapping_add(1);
            let ssrc = self.next_ssrc;
            let encoding = RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                codec: published.codec.clone(),
                ..Default::default()
            };
            let copy_of = MediaStreamTrack::new(
                published.publisher.clone(),
                published.id.clone(),
                published.id.clone(),
                published.kind,
                vec![encoding],
            );
            // A new send-only section per copy, never a reused one: `add_track` would hand an
            // ended copy's transceiver (its mid, its receiver at the subscriber) to another
            // track, which clients that key receivers by section (aiortc) cannot follow; ended
            // copies' sections stay `inactive`.
            let send_only =
                RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Sendonly, ..Default::default() };
            match connection.pc.add_transceiver_from_track(copy_of, Some(send_only)).map(RTCRtpSenderId::from) {
                Ok(sender) => {
                    connection.copies.insert(
                        track,
                        Copy { down, sender, ssrc, payload_type: None, transport_wide: None, packets: 0, octets: 0 },
                    );
                    media.copies.insert(down, id);
                    changed = true;
                }
                Err(_) => media.forwarder.unsubscribe(down),
            }
        }
        if !changed {
            return;
        }
        let offer = connection.pc.create_offer(None).and_then(|offer| {
            connection.pc.set_local_description(now, offer.clone())?;
            Ok(offer)
        });
        if let Ok(offer) = offer {
            connection.offering = true;
            self.signal_out(room, peer, ConnectionKind::Subscribe, Outgoing::Offer(offer.sdp));
        }
        self.pump(id, now);
    }

    fn new_connection(
        &mut self,
        room: &str,
        peer: &str,
        kind: ConnectionKind,
        codecs: &Codecs,
        now: Instant,
    ) -> Option<ConnectionId> {
        let ufrag = random_token(8);
        let pc = new_peer_connection(kind, codecs, self.address, &ufrag, &random_token(24), now).ok()?;
        // The recorder is inside the deployment and records the top layers: its bandwidth is not
        // estimated, so none of its copies is ever held to a lower layer.
        let recorder = self.rooms.get(room)?.room.role(peer) == Some(CallRole::Recorder);
        let send_side = (kind == ConnectionKind::Subscribe && !recorder).then(|| SendSide::new(now));
        let id = self.next_connection;
        self.next_connection += 1;
        self.demux.register(&ufrag, id);
        let connection = Connection {
            pc,
            room: room.to_owned(),
            peer: peer.to_owned(),
            kind,
            nominated: None,
            sends: HashMap::new(),
            copies: HashMap::new(),
            offering: false,
            send_side,
            climb: Climb::default(),
            next_timer: Some(now),
            policer: match kind {
                ConnectionKind::Publish => Policer::default(),
                ConnectionKind::Subscribe => Policer::new(RESENT_BITRATE),
            },
        };
        self.connections.insert(id, connection);
        let media = self.rooms.get_mut(room)?;
        match kind {
            ConnectionKind::Publish => media.publish.insert(peer.to_owned(), id),
            ConnectionKind::Subscribe => media.subscribe.insert(peer.to_owned(), id),
        };
        Some(id)
    }

    /// Closes connection `id` and ends what it carried: the tracks it published, or its copies.
    fn end_connection(&mut self, id: ConnectionId) {
        let Some(connection) = self.drop_connection(id) else { return };
        let Some(media) = self.rooms.get_mut(&connection.room) else { return };
        for sent in connection.sends.values() {
            media.forwarder.unpublish(sent.track);
            if let Some(track) = media.tracks.remove(&sent.track) {
                media.room.unpublish(&connection.peer, &track.id);
            }
        }
        for copy in connection.copies.values() {
            media.forwarder.unsubscribe(copy.down);
            media.copies.remove(&copy.down);
        }
        let slots = match connection.kind {
            ConnectionKind::Publish => &mut media.publish,
            ConnectionKind::Subscribe => &mut media.subscribe,
        };
        if slots.get(&connection.peer) == Some(&id) {
            slots.remove(&connection.peer);
        }
    }

    fn drop_connection(&mut self, id: ConnectionId) -> Option<Connection> {
        let mut connection = self.connections.remove(&id)?;
        self.demux.forget(id);
        let _ = connection.pc.close();
        Some(connection)
    }

    /// Handles everything connection `id` has for the server after an input: its events, the
    /// media and feedback it received, and the datagrams it has to send.
    fn pump(&mut self, id: ConnectionId, now: Instant) {
        let mut ended = false;
        let mut published = false;
        while let Some(event) = self.connections.get_mut(&id).and_then(|c| c.pc.poll_event()) {
            match event {
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    published |=
                        self.track_opened(id, &init.track_id, init.receiver_id, init.ssrc, init.rid.as_deref());
                }
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed,
                ) => ended = true,
                _ => {}
            }
        }
        while let Some(message) = self.connections.get_mut(&id).and_then(|c| c.pc.poll_read()) {
            match message.message {
                RTCMessage::RtpPacket(track_id, packet) => {
                    self.hear(id, &track_id, &packet, now);
                    self.forward(id, &packet, now);
                }
                // Only the RTCP the server acts on is delivered ([`crate::rtcp_delivery`]).
                RTCMessage::RtcpPacket(track_id, packets) => self.rtcp(id, &track_id, &packets, now),
                _ => {}
            }
        }
        self.transmit(id);
        if ended {
            let room = self.connections.get(&id).map(|c| c.room.clone());
            self.end_connection(id);
            if let Some(room) = room {
                self.refresh_subscriptions(&room, now);
            }
        } else if published && let Some(room) = self.connections.get(&id).map(|c| c.room.clone()) {
            self.refresh_subscriptions(&room, now);
        }
    }

    /// A publish connection receives a track's stream (a layer, for simulcast); whether that is a
    /// new track.
    fn track_opened(
        &mut self,
        id: ConnectionId,
        track_id: &str,
        receiver: RTCRtpReceiverId,
        ssrc: u32,
        rid: Option<&str>,
    ) -> bool {
        let Some(connection) = self.connections.get_mut(&id) else { return false };
        if connection.kind != ConnectionKind::Publish {
            return false;
        }
        let Some(media) = self.rooms.get_mut(&connection.room) else { return false };
        let (kind, rids, audio_level, negotiated) = match connection.pc.rtp_receiver(receiver) {
            Some(mut receiver) => {
                let track = receiver.track();
                let rids: Vec<String> = track
                    .codings()
                    .iter()
                    .map(|c| c.rtp_coding_parameters.rid.clone())
                    .filter(|r| !r.is_empty())
                    .collect();
                let kind = track.kind();
                let parameters = &receiver.get_parameters().rtp_parameters;
                let audio_level =
                    parameters.header_extensions.iter().find(|e| e.uri == AUDIO_LEVEL_URI).map(|e| e.id as u8);
                let negotiated = parameters.codecs.first().map(|codec| codec.rtp_codec.clone());
                (kind, rids, audio_level, negotiated)
            }
            None => return false,
        };
        let layer = rid.and_then(|rid| rids.iter().position(|r| r == rid)).unwrap_or(0) as Layer;
        let mut new_track = false;
        let track = match connection.sends.get(track_id) {
            Some(sent) => sent.track,
            None => {
                // Only what the connection's codecs allow was negotiated ([`Codecs`]).
                let Some(negotiated) = negotiated else { return false };
                let media_kind = if kind == RtpCodecKind::Video { MediaKind::Video } else { MediaKind::Audio };
                let codec = video_codec(&negotiated.mime_type);
                if media_kind == MediaKind::Video && codec.is_none() {
                    return false;
                }
                let clock_rate = negotiated.clock_rate;
                // Short and unique in the room, whatever the publisher named its track (msid track
                // ids may be 64 characters, and a track request names this one).
                let id_in_room = format!("{}-{}", connection.peer, connection.sends.len());
                let publication = Publication { track_id: id_in_room.clone(), kind: media_kind };
                if media.room.publish(&connection.peer, publication).is_err() {
                    return false;
                }
                let Ok(track) = media.forwarder.publish(id, codec, clock_rate, rids.len().max(1)) else {
                    media.room.unpublish(&connection.peer, &id_in_room);
                    return false;
                };
                let audio_level = audio_level.filter(|_| kind == RtpCodecKind::Audio);
                connection.sends.insert(track_id.to_owned(), Sent { track, receiver, audio_level });
                let published = Published {
                    publisher: connection.peer.clone(),
                    connection: id,
                    id: id_in_room,
                    kind,
                    codec: negotiated,
                };
                media.tracks.insert(track, published);
                new_track = true;
                track
            }
        };
        let _ = media.forwarder.bind(track, layer, ssrc);
        new_track
    }

    /// An audio packet's level (RFC 6464: the V bit, then 0 loudest to 127 silence) counts
    /// towards its publisher's loudness; the room's dominant speaker is looked for every
    /// [`SPEAKER_POLL`] and announced when it changes.
    fn hear(&mut self, from: ConnectionId, track_id: &str, packet: &rtc::rtp::packet::Packet, now: Instant) {
        let Some(connection) = self.connections.get(&from) else { return };
        let Some(extension) = connection.sends.get(track_id).and_then(|sent| sent.audio_level) else { return };
        let Some(&level) = packet.header.get_extension(extension).as_deref().and_then(<[u8]>::first) else { return };
        let Some(media) = self.rooms.get_mut(&connection.room) else { return };
        media.speakers.heard(&connection.peer, level & 0x7f, None, now);
        if media.speakers_polled.is_some_and(|at| now.saturating_duration_since(at) < SPEAKER_POLL) {
            return;
        }
        media.speakers_polled = Some(now);
        if let Some(peer_id) = media.speakers.poll(now) {
            self.outputs.push_back(Output::Speaker { room: connection.room.clone(), peer_id });
        }
    }

    /// An RTP packet from publish connection `from`, to every copy the forwarder picks.
    fn forward(&mut self, from: ConnectionId, packet: &rtc::rtp::packet::Packet, now: Instant) {
        let Some(connection) = self.connections.get_mut(&from) else { return };
        if !connection.policer.allows(RTP_HEADER + packet.payload.len(), now) {
            self.counts.over_cap += 1;
            return;
        }
        let Some(media) = self.rooms.get_mut(&connection.room) else { return };
        let header = &packet.header;
        let incoming = Packet {
            connection: from,
            ssrc: header.ssrc,
            sequence_number: header.sequence_number,
            timestamp: header.timestamp,
            marker: header.marker,
            payload: &packet.payload,
        };
        let mut actions = std::mem::take(&mut self.actions);
        media.forwarder.on_packet(&incoming, now, &mut actions);
        // Copies that need the same new picture numbers (moved at the same keyframe) share one
        // renumbered payload.
        let mut renumbered: Option<(Renumbering, Bytes)> = None;
        let mut asks_for_keyframes = false;
        for action in &actions {
            match *action {
                Action::Forward { down, sequence_number, timestamp, marker, starts_segment } => {
                    let Some(&to) = media.copies.get(&down) else { continue };
                    let Some(connection) = self.connections.get_mut(&to) else { continue };
                    // Shared, unless this subscriber's copy needs other picture numbers.
                    let forwarder = &mut media.forwarder;
                    let payload = || match forwarder.renumber_payload(down, &packet.payload, starts_segment) {
                        Some(renumbering) => match &renumbered {
                            Some((made, payload)) if *made == renumbering => payload.clone(),
                            _ => {
                                let payload = renumber(&packet.payload, renumbering);
                                renumbered = Some((renumbering, payload.clone()));
                                payload
                            }
                        },
                        None => packet.payload.clone(),
                    };
                    let numbers = Numbers { sequence_number, timestamp, marker };
                    match connection.seal_copy(down.track, numbers, payload, &mut self.sealing, now) {
                        Some(Ok(datagram)) => {
                            self.counts.forwarded += 1;
                            queue_datagram(to, connection, &mut self.demux, &mut self.outputs, datagram);
                        }
                        Some(Err(_)) => self.counts.unsendable += 1,
                        None => {}
                    }
                }
                Action::RequestKeyframe { .. } => asks_for_keyframes = true,
                Action::Resend { .. } => {}
            }
        }
        if asks_for_keyframes && let Some(room) = self.connections.get(&from).map(|c| c.room.clone()) {
            for action in &actions {
                if let Action::RequestKeyframe { track, ssrc } = *action {
                    self.request_keyframe(&room, track, ssrc, now);
                }
            }
        }
        self.actions = actions;
    }

    /// RTCP connection `id` delivered about `track_id`: a subscriber's keyframe requests and
    /// NACKs, a publisher's sender reports.
    fn rtcp(&mut self, id: ConnectionId, track_id: &str, packets: &[Box<dyn rtc::rtcp::packet::Packet>], now: Instant) {
        if packets.iter().any(|packet| asks_for_keyframe(packet.as_ref())) {
            self.keyframe_requested(id, track_id, now);
        }
        let nacks = packets.iter().filter_map(|packet| as_nack(packet.as_ref()));
        let lost: Vec<u16> = nacks.flat_map(|nack| &nack.nacks).flat_map(|pair| pair.packet_list()).collect();
        if !lost.is_empty() {
            self.resend(id, track_id, &lost, now);
        }
        let Some(connection) = self.connections.get_mut(&id) else { return };
        if let Some(side) = connection.send_side.as_mut() {
            for feedback in packets.iter().filter_map(|packet| as_transport_feedback(packet.as_ref())) {
                side.on_feedback(feedback, now);
            }
        }
        let Some(media) = self.rooms.get_mut(&connection.room) else { return };
        for report in packets.iter().filter_map(|packet| as_sender_report(packet.as_ref())) {
            media.forwarder.on_sender_report(id, report.ssrc, report.ntp_time, report.rtp_time);
        }
    }

    /// Subscribe connection `id` lost packets of its copy of `track_id` (`lost`, in its own
    /// numbers): those the publisher's cache still holds are sent again as they were sent, as
    /// far as the subscriber's [`RESENT_BITRATE`] allows.
    fn resend(&mut self, id: ConnectionId, track_id: &str, lost: &[u16], now: Instant) {
        let Some(connection) = self.connections.get_mut(&id) else { return };
        let Some(media) = self.rooms.get_mut(&connection.room) else { return };
        let Some((_, copy)) = copy_named(connection, &media.tracks, track_id) else { return };
        let down = copy.down;
        self.counts.nacked += lost.len() as u64;
        let mut actions = std::mem::take(&mut self.actions);
        media.forwarder.on_nack(down, lost, now, &mut actions);
        for action in &actions {
            let Action::Resend { layer, original, sequence_number, timestamp, marker, .. } = *action else { continue };
            let Some(cached) = media.forwarder.cached(down.track, layer, original, now) else { continue };
            if !connection.policer.allows(RTP_HEADER + cached.len(), now) {
                break;
            }
            let mut payload = BytesMut::from(cached);
            if let Some(renumbering) = media.forwarder.renumber_payload(down, &payload, false) {
                renumbering.apply(&mut payload);
            }
            let numbers = Numbers { sequence_number, timestamp, marker };
            let sealed = connection.seal_copy(down.track, numbers, || payload.freeze(), &mut self.sealing, now);
            if let Some(Ok(datagram)) = sealed {
                self.counts.resent += 1;
                queue_datagram(id, connection, &mut self.demux, &mut self.outputs, datagram);
            }
        }
        self.actions = actions;
    }

    /// Writes each subscriber its copies' sender reports, from their publishers' clocks
    /// ([`Forwarder::sender_report`]), with what was sent on each.
    fn report_to_subscribers(&mut self, now: Instant) {
        let mut touched = Vec::new();
        for (id, connection) in self.connections.iter_mut().filter(|(_, c)| c.kind == ConnectionKind::Subscribe) {
            let Some(media) = self.rooms.get(&connection.room) else { continue };
            for copy in connection.copies.values() {
                let Some((ntp_time, rtp_time)) = media.forwarder.sender_report(copy.down) else { continue };
                let report = SenderReport {
                    ssrc: copy.ssrc,
                    ntp_time,
                    rtp_time,
                    packet_count: copy.packets,
                    octet_count: copy.octets,
                    ..SenderReport::default()
                };
                if let Some(mut sender) = connection.pc.rtp_sender(copy.sender) {
                    let _ = sender.write_rtcp(now, vec![Box::new(report)]);
                }
            }
            touched.push(*id);
        }
        for id in touched {
            self.transmit(id);
        }
    }

    /// Subscribe connection `id` asked for a keyframe of its copy of `track_id` (`a=msid`).
    fn keyframe_requested(&mut self, id: ConnectionId, track_id: &str, now: Instant) {
        let Some(connection) = self.connections.get(&id) else { return };
        let room = connection.room.clone();
        let Some(media) = self.rooms.get_mut(&room) else { return };
        let copy = copy_named(connection, &media.tracks, track_id);
        let Some((_, copy)) = copy else { return };
        if let Some(Action::RequestKeyframe { track, ssrc }) = media.forwarder.on_keyframe_request(copy.down, now) {
            self.request_keyframe(&room, track, ssrc, now);
        }
    }

    /// Sends the publisher of `room`'s `track` a PLI for its stream `ssrc`.
    fn request_keyframe(&mut self, room: &str, track: TrackId, ssrc: u32, now: Instant) {
        let Some(publisher) = self.rooms.get(room).and_then(|media| media.tracks.get(&track)).map(|t| t.connection)
        else {
            return;
        };
        let Some(connection) = self.connections.get_mut(&publisher) else { return };
        let Some(sent) = connection.sends.values().find(|sent| sent.track == track) else { return };
        if let Some(mut receiver) = connection.pc.rtp_receiver(sent.receiver) {
            let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc };
            if receiver.write_rtcp(now, vec![Box::new(pli)]).is_ok() {
                self.counts.keyframe_requests += 1;
            }
        }
        self.transmit(publisher);
    }

    /// Queues every datagram connection `id` has to send.
    fn transmit(&mut self, id: ConnectionId) {
        let Some(connection) = self.connections.get_mut(&id) else { return };
        queue_datagrams(id, connection, &mut self.demux, &mut self.outputs);
    }

    fn signal_out(&mut self, room: &str, to: &str, connection: ConnectionKind, message: Outgoing) {
        if matches!(message, Outgoing::Refused(_)) {
            self.counts.refused += 1;
        }
        self.outputs.push_back(Output::Signal { room: room.to_owned(), to: to.to_owned(), connection, message });
    }
}

/// Queues every datagram `connection` (numbered `id`) has to send, tells the demultiplexer
/// which addresses its ICE agent vouches for, and reads its next timer, which whatever made the
/// datagrams may have moved.
fn queue_datagrams(
    id: ConnectionId,
    connection: &mut Connection,
    demux: &mut Demux<ConnectionId>,
    outputs: &mut VecDeque<Output>,
) {
    while let Some(datagram) = connection.pc.poll_write() {
        queue_datagram(id, connection, demux, outputs, datagram);
    }
    connection.next_timer = connection.pc.poll_timeout();
}

/// Queues one datagram of connection `id`'s for sending.
fn queue_datagram(
    id: ConnectionId,
    connection: &mut Connection,
    demux: &mut Demux<ConnectionId>,
    outputs: &mut VecDeque<Output>,
    datagram: TaggedBytesMut,
) {
    let to = datagram.transport.peer_addr;
    // The agent answers a check with success only if it carried the connection's password,
    // and sends media only to the pair it selected: either way the address is the
    // participant's. Its own checks' responses come back from where they went.
    if is_binding_success(&datagram.message) || (!is_stun(&datagram.message) && connection.nominated != Some(to)) {
        connection.nominated = Some(to);
        demux.nominate(id, to);
    } else if is_stun(&datagram.message) {
        demux.checking(id, to);
    }
    outputs.push_back(Output::Transmit { to, datagram: datagram.message });
}

/// `payload` with a subscriber's own VP8 picture numbers.
fn renumber(payload: &[u8], renumbering: Renumbering) -> Bytes {
    let mut payload = BytesMut::from(payload);
    renumbering.apply(&mut payload);
    payload.freeze()
}

/// A description's DTLS certificate fingerprint (`a=fingerprint:`), the first one it states.
fn fingerprint(sdp: &str) -> Option<&str> {
    sdp.lines().find_map(|line| line.strip_prefix("a=fingerprint:")).map(str::trim)
}

/// Connection `connection`'s copy of the track named `track_id` in its description (`a=msid`).
fn copy_named<'a>(
    connection: &'a Connection,
    tracks: &HashMap<TrackId, Published>,
    track_id: &str,
) -> Option<(&'a TrackId, &'a Copy)> {
    connection.copies.iter().find(|(track, _)| tracks.get(track).is_some_and(|t| t.id == track_id))
}

/// The forwarder's codec for a negotiated video MIME type; `None` for audio (and anything else).
fn video_codec(mime_type: &str) -> Option<Codec> {
    if mime_type.eq_ignore_ascii_case(MIME_TYPE_VP8) {
        Some(Codec::Vp8)
    } else if mime_type.eq_ignore_ascii_case(MIME_TYPE_H264) {
        Some(Codec::H264)
    } else {
        None
    }
}

/// The `profile-level-id` an H.264 track (a camera's) was negotiated at.
fn h264_profile_of(codec: &RTCRtpCodec) -> Option<String> {
    let is_h264 = codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_H264);
    is_h264.then(|| camera_profile::packetization_mode_1_profile(&codec.sdp_fmtp_line)).flatten()
}

fn is_audio(tracks: &HashMap<TrackId, Published>, track: TrackId) -> bool {
    tracks.get(&track).is_some_and(|track| track.kind == RtpCodecKind::Audio)
}

/// STUN, by RFC 7983's first byte.
fn is_stun(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|byte| *byte < 4)
}

/// A STUN binding success response (RFC 5389 §6: type 0x0101).
fn is_binding_success(datagram: &[u8]) -> bool {
    datagram.starts_with(&[0x01, 0x01])
}

/// A random string of ICE characters (`ufrag` and `pwd`, RFC 8839 §5.4).
fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    bytes.into_iter().map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char).collect()
}
