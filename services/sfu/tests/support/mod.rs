//! Participants of a call through the media server, in process: webrtc-rs `rtc` peers on the
//! other side of a [`MediaServer`], their datagrams handed across by [`Call::run`] as a network
//! would (every datagram, in order, no loss unless a test drops it), their signals by the test.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_domain::{CallRole, RoomMode, RoomRole};
use confab_sfu::connection::{AUDIO_LEVEL_URI, ConnectionKind, add_host_candidate, opus, vp8};
use confab_sfu::rtcp_delivery::{DeliverRtcp, as_sender_report, asks_for_keyframe};
use confab_sfu::server::{Incoming, MediaServer, Outgoing, Output, Shown};
use rtc::interceptor::{Registry, Slot};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

pub const ROOM: &str = "room-1";
const SERVER: &str = "127.0.0.1:3478";

/// A participant: its peer id and connections to the server, each on its own address (as a
/// browser gathers a port per connection).
pub struct Participant {
    pub peer_id: String,
    /// Its publish connection's address; the subscribe connection's is the next port.
    address: SocketAddr,
    pub publish: Option<RTCPeerConnection>,
    pub subscribe: Option<RTCPeerConnection>,
    /// Its camera's sender on the publish connection, and the numbers of its packets.
    camera: Option<(RTCRtpSenderId, Vec<Layer>)>,
    /// Its microphone's sender, and the level (RFC 6464: 0 loudest, 127 silence) it sends at.
    microphone: Option<RTCRtpSenderId>,
    pub level: u8,
    sequence_number: u16,
    picture_id: u16,
    /// RTP packets received on the subscribe connection, by the track's id (`a=msid`).
    pub received: Vec<(String, Packet)>,
    /// Streams (`a=msid` stream ids: publishers' peer ids) of the tracks it receives.
    pub streams: Vec<String>,
    /// The receivers of those tracks, with their SSRCs.
    receivers: Vec<(RTCRtpReceiverId, u32)>,
    /// Keyframe requests that reached its publish connection.
    pub keyframe_requests: usize,
    /// Sender reports received on its subscribe connection: SSRC, NTP time, RTP time.
    pub sender_reports: Vec<(u32, u64, u32)>,
    /// Offers of its subscribe connection so far.
    pub offers: usize,
    /// What the server refused it, with the connection.
    pub refusals: Vec<(ConnectionKind, &'static str)>,
}

pub struct Call {
    pub server: MediaServer,
    pub participants: Vec<Participant>,
    /// Signals from the server not yet handled by the test.
    pub signals: VecDeque<(String, ConnectionKind, Outgoing)>,
    /// The dominant speakers the server announced, in order.
    pub speakers: Vec<String>,
    /// The answers to publish offers, as the server sent them.
    pub answers: Vec<String>,
    /// Participants' RTP and RTCP datagrams to the server: every `n`th is lost.
    pub lose_every: Option<u64>,
    /// The server's datagrams to subscribe connections: at most this many bits a second get
    /// through (a policer over 100 ms windows); the rest are lost.
    pub downlink_limit: Option<u64>,
    downlink_window: (Option<Instant>, u64),
    sent_media: u64,
    pub lost: u64,
}

const CAMERA_SSRC: u32 = 0x0ca_0001;

/// One layer of a camera: its rid (empty without simulcast), SSRC and picture size.
#[derive(Debug, Clone, Copy)]
struct Layer {
    rid: &'static str,
    ssrc: u32,
    size: (u16, u16),
    /// The bytes of each of its frames (one packet each): 30 a second.
    bytes: usize,
}

const SIMULCAST: [Layer; 3] = [
    Layer { rid: "q", ssrc: 0x5c_0001, size: (320, 180), bytes: 200 },
    Layer { rid: "h", ssrc: 0x5c_0002, size: (640, 360), bytes: 500 },
    Layer { rid: "f", ssrc: 0x5c_0003, size: (1280, 720), bytes: 1100 },
];
const MICROPHONE_SSRC: u32 = 0x0a1_0001;
const FRAME: Duration = Duration::from_millis(33);

impl Call {
    pub fn new(mode: RoomMode) -> Self {
        let mut server = MediaServer::new(SERVER.parse().unwrap());
        server.open_room(ROOM, mode);
        Self {
            server,
            participants: Vec::new(),
            signals: VecDeque::new(),
            speakers: Vec::new(),
            answers: Vec::new(),
            lose_every: None,
            downlink_limit: None,
            downlink_window: (None, 0),
            sent_media: 0,
            lost: 0,
        }
    }

    /// A participant joins; its index.
    pub fn join(&mut self, peer_id: &str, role: RoomRole) -> usize {
        self.join_as(peer_id, CallRole::Person(role))
    }

    /// A peer joins in `role` (a person, or the recorder); its index.
    pub fn join_as(&mut self, peer_id: &str, role: CallRole) -> usize {
        let n = self.participants.len();
        let address = SocketAddr::from(([127, 0, 0, 1], 40_000 + 2 * n as u16));
        self.participants.push(Participant {
            peer_id: peer_id.to_owned(),
            address,
            publish: None,
            subscribe: None,
            camera: None,
            microphone: None,
            level: 127,
            sequence_number: 0,
            picture_id: 0,
            received: Vec::new(),
            streams: Vec::new(),
            receivers: Vec::new(),
            keyframe_requests: 0,
            sender_reports: Vec::new(),
            offers: 0,
            refusals: Vec::new(),
        });
        self.server.peer_joined(ROOM, peer_id, role, Instant::now());
        n
    }

    /// Participant `n`'s page reloads: its connections are gone, its peer id stays (it resumed).
    pub fn reload(&mut self, n: usize) {
        let participant = &mut self.participants[n];
        (participant.publish, participant.subscribe, participant.camera) = (None, None, None);
    }

    pub fn leave(&mut self, n: usize) {
        let peer_id = self.participants[n].peer_id.clone();
        self.server.peer_left(ROOM, &peer_id, Instant::now());
    }

    /// Participant `n` offers to publish a VP8 camera of one 640x360 layer.
    pub fn publish_camera(&mut self, n: usize) {
        self.publish(n, &[Layer { rid: "", ssrc: CAMERA_SSRC, size: (640, 360), bytes: 800 }]);
    }

    /// Participant `n` offers to publish a VP8 camera in three simulcast layers (rids q, h, f),
    /// as browsers do.
    pub fn publish_simulcast_camera(&mut self, n: usize) {
        self.publish(n, &SIMULCAST);
    }

    /// Participant `n` offers to publish an Opus microphone (and nothing else).
    pub fn publish_microphone(&mut self, n: usize) {
        let participant = &mut self.participants[n];
        let mut pc = peer_connection(participant.address);
        let encoding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(MICROPHONE_SSRC), ..Default::default() },
            codec: opus(),
            ..Default::default()
        };
        let stream = participant.peer_id.clone();
        let track = MediaStreamTrack::new(stream, "mic".into(), "mic".into(), RtpCodecKind::Audio, vec![encoding]);
        participant.microphone = Some(pc.add_track(track).unwrap());
        self.offer_to_publish(n, pc);
    }

    fn publish(&mut self, n: usize, layers: &[Layer]) {
        let participant = &mut self.participants[n];
        let mut pc = peer_connection(participant.address);
        let encodings = layers
            .iter()
            .map(|layer| RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    rid: layer.rid.to_owned(),
                    ssrc: Some(layer.ssrc),
                    ..Default::default()
                },
                codec: vp8(),
                ..Default::default()
            })
            .collect();
        let stream = participant.peer_id.clone();
        let track = MediaStreamTrack::new(stream, "camera".into(), "camera".into(), RtpCodecKind::Video, encodings);
        participant.camera = Some((pc.add_track(track).unwrap(), layers.to_vec()));
        self.offer_to_publish(n, pc);
    }

    fn offer_to_publish(&mut self, n: usize, mut pc: RTCPeerConnection) {
        let participant = &mut self.participants[n];
        let offer = pc.create_offer(None).unwrap();
        pc.set_local_description(Instant::now(), offer.clone()).unwrap();
        participant.publish = Some(pc);
        let peer_id = participant.peer_id.clone();
        self.server.signal(ROOM, &peer_id, ConnectionKind::Publish, Incoming::Offer(offer.sdp), Instant::now());
    }

    /// Participant `n` sends 20 ms of sound at its level.
    fn send_sound(&mut self, n: usize) {
        let participant = &mut self.participants[n];
        let (Some(pc), Some(microphone)) = (participant.publish.as_mut(), participant.microphone) else { return };
        participant.sequence_number = participant.sequence_number.wrapping_add(1);
        let Some(mut sender) = pc.rtp_sender(microphone) else { return };
        let parameters = sender.get_parameters().rtp_parameters.clone();
        let level = parameters.header_extensions.iter().find(|e| e.uri == AUDIO_LEVEL_URI).map(|e| e.id as u8);
        let mut header = Header {
            version: 2,
            payload_type: parameters.codecs.first().map_or(111, |codec| codec.payload_type),
            sequence_number: participant.sequence_number,
            timestamp: u32::from(participant.sequence_number) * 960,
            ssrc: MICROPHONE_SSRC,
            ..Default::default()
        };
        header.set_extension(level.expect("the audio level extension"), Bytes::from(vec![participant.level])).unwrap();
        let _ = sender.write_rtp(Instant::now(), Packet { header, payload: Bytes::from_static(&[0xfc; 60]) });
    }

    /// Participant `n` sends one VP8 frame of one packet on each of its camera's layers (a
    /// keyframe every 30, stating the layer's size), with the mid and rid extensions of simulcast.
    pub fn send_frame(&mut self, n: usize) {
        let participant = &mut self.participants[n];
        let (Some(pc), Some((sender, layers))) = (participant.publish.as_mut(), participant.camera.as_ref()) else {
            return;
        };
        participant.sequence_number = participant.sequence_number.wrapping_add(1);
        participant.picture_id = (participant.picture_id + 1) & 0x7fff;
        let keyframe = participant.picture_id % 30 == 1;
        let Some(mut sender) = pc.rtp_sender(*sender) else { return };
        let parameters = sender.get_parameters().rtp_parameters.clone();
        let extension = |uri: &str| parameters.header_extensions.iter().find(|e| e.uri == uri).map(|e| e.id as u8);
        let mid = extension("urn:ietf:params:rtp-hdrext:sdes:mid");
        let rid = extension("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id");
        let payload_type = parameters.codecs.first().map_or(96, |codec| codec.payload_type);
        for layer in layers {
            let mut header = Header {
                version: 2,
                marker: true,
                payload_type,
                sequence_number: participant.sequence_number,
                timestamp: u32::from(participant.picture_id) * 3000,
                ssrc: layer.ssrc,
                ..Default::default()
            };
            if !layer.rid.is_empty()
                && let (Some(mid), Some(rid)) = (mid, rid)
            {
                header.set_extension(mid, Bytes::from_static(b"0")).unwrap();
                header.set_extension(rid, Bytes::from(layer.rid.as_bytes().to_vec())).unwrap();
            }
            let payload = vp8_frame(participant.picture_id, keyframe.then_some(layer.size), layer.bytes);
            let _ = sender.write_rtp(Instant::now(), Packet { header, payload });
        }
    }

    /// Moves datagrams and signals, the participants in `senders` sending what they publish 30
    /// times a second, until `done` (true) or 15 s have passed (false).
    pub fn run(&mut self, senders: &[usize], done: impl FnMut(&Self) -> bool) -> bool {
        self.run_within(Duration::from_secs(15), senders, done)
    }

    /// [`Call::run`] giving up after `limit`.
    pub fn run_within(&mut self, limit: Duration, senders: &[usize], mut done: impl FnMut(&Self) -> bool) -> bool {
        let give_up = Instant::now() + limit;
        let mut next_frame = Instant::now();
        loop {
            let now = Instant::now();
            if now > give_up {
                return false;
            }
            if done(self) {
                return true;
            }
            if now >= next_frame {
                for &n in senders {
                    self.send_frame(n);
                    self.send_sound(n);
                }
                next_frame = now + FRAME;
            }
            let moved = self.step(now);
            if !moved {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// One round: every participant's datagrams to the server, the server's back, timers, signals.
    fn step(&mut self, now: Instant) -> bool {
        let server_address: SocketAddr = SERVER.parse().unwrap();
        let mut moved = false;
        for participant in &mut self.participants {
            let addresses = [participant.address, subscribe_address(participant)];
            let connections = [participant.publish.as_mut(), participant.subscribe.as_mut()];
            for (address, pc) in addresses.into_iter().zip(connections) {
                let Some(pc) = pc else { continue };
                if pc.poll_timeout().is_some_and(|at| at <= now) {
                    let _ = pc.handle_timeout(now);
                }
                while let Some(datagram) = pc.poll_write() {
                    moved = true;
                    let is_media = datagram.message.first().is_some_and(|byte| (128..192).contains(byte));
                    if is_media && self.lose_every.is_some_and(|n| self.sent_media % n == n - 1) {
                        self.sent_media += 1;
                        self.lost += 1;
                        continue;
                    }
                    self.sent_media += u64::from(is_media);
                    self.server.datagram(address, &datagram.message, now);
                }
            }
        }
        if self.server.poll_timeout().is_some_and(|at| at <= now) {
            self.server.timeout(now);
        }
        while let Some(output) = self.server.poll_output() {
            moved = true;
            match output {
                Output::Transmit { to, datagram } => {
                    let transport = TransportContext {
                        local_addr: to,
                        peer_addr: server_address,
                        ecn: None,
                        transport_protocol: TransportProtocol::UDP,
                    };
                    let to_subscriber = self.participants.iter().any(|p| subscribe_address(p) == to);
                    if to_subscriber && !self.downlink_allows(datagram.len(), now) {
                        continue;
                    }
                    let pc = self.participants.iter_mut().find_map(|participant| {
                        if participant.address == to {
                            participant.publish.as_mut()
                        } else if subscribe_address(participant) == to {
                            participant.subscribe.as_mut()
                        } else {
                            None
                        }
                    });
                    if let Some(pc) = pc {
                        let _ = pc.handle_read(TaggedBytesMut { now, transport, message: datagram });
                    }
                }
                Output::Signal { to, connection, message, .. } => self.signals.push_back((to, connection, message)),
                Output::Speaker { peer_id, .. } => self.speakers.push(peer_id),
            }
        }
        while let Some((to, connection, message)) = self.signals.pop_front() {
            self.answer(&to, connection, message, now);
        }
        for participant in &mut self.participants {
            read(participant);
        }
        moved
    }

    /// Whether a datagram of `len` bytes to a subscriber fits the downlink limit now.
    fn downlink_allows(&mut self, len: usize, now: Instant) -> bool {
        let Some(limit) = self.downlink_limit else { return true };
        const WINDOW: Duration = Duration::from_millis(100);
        let (start, sent) = &mut self.downlink_window;
        if start.is_none_or(|start| now >= start + WINDOW) {
            (*start, *sent) = (Some(now), 0);
        }
        let fits = (*sent + len as u64) * 8 <= limit / 10;
        if fits {
            *sent += len as u64;
        }
        fits
    }

    /// Participants act on the server's signals as a client does: answer offers, apply answers.
    fn answer(&mut self, to: &str, connection: ConnectionKind, message: Outgoing, now: Instant) {
        let Some(participant) = self.participants.iter_mut().find(|p| p.peer_id == to) else { return };
        match (connection, message) {
            (_, Outgoing::Refused(code)) => participant.refusals.push((connection, code)),
            (ConnectionKind::Publish, Outgoing::Answer(sdp)) => {
                self.answers.push(sdp.clone());
                if let Some(pc) = participant.publish.as_mut() {
                    pc.set_remote_description(now, RTCSessionDescription::answer(sdp).unwrap()).unwrap();
                }
            }
            (ConnectionKind::Subscribe, Outgoing::Offer(sdp)) => {
                participant.offers += 1;
                let address = subscribe_address(participant);
                let pc = participant.subscribe.get_or_insert_with(|| peer_connection(address));
                pc.set_remote_description(now, RTCSessionDescription::offer(sdp).unwrap()).unwrap();
                let answer = pc.create_answer(None).unwrap();
                pc.set_local_description(now, answer.clone()).unwrap();
                let peer_id = participant.peer_id.clone();
                self.server.signal(ROOM, &peer_id, ConnectionKind::Subscribe, Incoming::Answer(answer.sdp), now);
            }
            (connection, message) => panic!("the server sent {message:?} about a {connection:?} connection"),
        }
    }

    /// Participant `n` cannot decode what it receives: a PLI for every track.
    pub fn ask_for_keyframes(&mut self, n: usize) {
        let participant = &mut self.participants[n];
        let Some(pc) = participant.subscribe.as_mut() else { return };
        for &(receiver, media_ssrc) in &participant.receivers {
            if let Some(mut receiver) = pc.rtp_receiver(receiver) {
                let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc };
                receiver.write_rtcp(Instant::now(), vec![Box::new(pli)]).unwrap();
            }
        }
    }

    /// Participant `n` tells the server how it shows the track of `publisher` it receives.
    pub fn show(&mut self, n: usize, publisher: &str, shown: Shown) {
        let participant = &self.participants[n];
        let track_id = participant.received.iter().find(|(track, _)| track.starts_with(publisher)).map(|(t, _)| t);
        let message = Incoming::TrackRequest { track_id: track_id.expect("a track received").clone(), shown };
        let peer_id = participant.peer_id.clone();
        self.server.signal(ROOM, &peer_id, ConnectionKind::Subscribe, message, Instant::now());
    }

    /// The sizes of the keyframes participant `n` received from `publisher`, from the `from`th
    /// packet on.
    pub fn keyframe_sizes(&self, n: usize, publisher: &str, from: usize) -> Vec<(u16, u16)> {
        let received = self.participants[n].received.iter().filter(|(track, _)| track.starts_with(publisher));
        received.skip(from).filter_map(|(_, packet)| keyframe_size(packet)).collect()
    }

    /// The addresses of participant `n`'s publish and subscribe connections.
    pub fn addresses(&self, n: usize) -> [SocketAddr; 2] {
        let participant = &self.participants[n];
        [participant.address, subscribe_address(participant)]
    }

    /// VP8 packets participant `n` received from the track of publisher `from`.
    pub fn received_from(&self, n: usize, from: &str) -> usize {
        self.participants[n].received.iter().filter(|(track, _)| track.starts_with(from)).count()
    }
}

/// A VP8 frame of one packet: descriptor with a 15-bit PictureID, then a frame tag, and for a
/// keyframe the picture size (RFC 6386 §9.1).
fn vp8_frame(picture_id: u16, keyframe_of: Option<(u16, u16)>, bytes: usize) -> Bytes {
    let [high, low] = (0x8000 | picture_id).to_be_bytes();
    let mut payload = vec![0x90, 0x80, high, low];
    match keyframe_of {
        Some((width, height)) => {
            payload.extend_from_slice(&[0x50, 0x00, 0x00, 0x9d, 0x01, 0x2a]);
            payload.extend_from_slice(&width.to_le_bytes());
            payload.extend_from_slice(&height.to_le_bytes());
        }
        None => payload.push(0x51),
    }
    payload.resize(bytes, 0);
    Bytes::from(payload)
}

/// The picture size a received VP8 keyframe states.
fn keyframe_size(packet: &Packet) -> Option<(u16, u16)> {
    match packet.payload.get(4..14)? {
        [0x50, _, _, 0x9d, 0x01, 0x2a, w0, w1, h0, h1] => {
            Some((u16::from_le_bytes([*w0, *w1]), u16::from_le_bytes([*h0, *h1])))
        }
        _ => None,
    }
}

fn subscribe_address(participant: &Participant) -> SocketAddr {
    SocketAddr::new(participant.address.ip(), participant.address.port() + 1)
}

fn read(participant: &mut Participant) {
    if let Some(pc) = participant.publish.as_mut() {
        while let Some(message) = pc.poll_read() {
            if let RTCMessage::RtcpPacket(_, packets) = message.message {
                participant.keyframe_requests += packets.iter().filter(|p| asks_for_keyframe(p.as_ref())).count();
            }
        }
        while pc.poll_event().is_some() {}
    }
    let Some(pc) = participant.subscribe.as_mut() else { return };
    while let Some(event) = pc.poll_event() {
        if let RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) = event {
            participant.streams.extend(init.stream_ids);
            participant.receivers.push((init.receiver_id, init.ssrc));
        }
    }
    while let Some(message) = pc.poll_read() {
        match message.message {
            RTCMessage::RtpPacket(track, packet) => participant.received.push((track, packet)),
            RTCMessage::RtcpPacket(_, packets) => {
                let reports = packets.iter().filter_map(|packet| as_sender_report(packet.as_ref()));
                participant.sender_reports.extend(reports.map(|sr| (sr.ssrc, sr.ntp_time, sr.rtp_time)));
            }
            _ => {}
        }
    }
}

fn peer_connection(address: SocketAddr) -> RTCPeerConnection {
    let mut media_engine = MediaEngine::default();
    let codecs: [(RTCRtpCodec, u8, RtpCodecKind); 2] =
        [(vp8(), 96, RtpCodecKind::Video), (opus(), 111, RtpCodecKind::Audio)];
    for (rtp_codec, payload_type, kind) in codecs {
        media_engine.register_codec(RTCRtpCodecParameters { rtp_codec, payload_type }, kind).unwrap();
    }
    media_engine
        .register_header_extension(
            RTCRtpHeaderExtensionCapability { uri: AUDIO_LEVEL_URI.to_owned() },
            RtpCodecKind::Audio,
            None,
        )
        .unwrap();
    // Keyframe requests and sender reports delivered, so that the test sees them, as the server
    // does (before webrtc-rs's own interceptors, as its `rtcp-processing` example places it).
    let registry = Registry::new().with(Slot::from(14_000), DeliverRtcp::default());
    let registry = register_default_interceptors(registry, &mut media_engine).unwrap();
    let settings = SettingEngineBuilder::new().with_answering_dtls_role(RTCDtlsRole::Client).build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_setting_engine(settings)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(Instant::now())
        .unwrap();
    add_host_candidate(&mut pc, address).unwrap();
    pc
}
