//! Participants of a call through the media server, in process: webrtc-rs `rtc` peers on the
//! other side of a [`MediaServer`], their datagrams handed across by [`Call::run`] as a network
//! would (every datagram, in order, no loss unless a test drops it), their signals by the test.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use confab_domain::{RoomMode, RoomRole};
use confab_sfu::connection::{ConnectionKind, opus, vp8};
use confab_sfu::keyframe_requests::{KeyframeRequests, asks_for_keyframe};
use confab_sfu::server::{Incoming, MediaServer, Outgoing, Output};
use rtc::interceptor::{Registry, Slot};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

pub const ROOM: &str = "room-1";
const SERVER: &str = "127.0.0.1:3478";

/// A participant: its peer id, address and connections to the server.
pub struct Participant {
    pub peer_id: String,
    address: SocketAddr,
    pub publish: Option<RTCPeerConnection>,
    pub subscribe: Option<RTCPeerConnection>,
    /// Its camera's sender on the publish connection, and the numbers of its packets.
    camera: Option<(RTCRtpSenderId, u32)>,
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
}

const CAMERA_SSRC: u32 = 0x0ca_0001;
const FRAME: Duration = Duration::from_millis(33);

impl Call {
    pub fn new(mode: RoomMode) -> Self {
        let mut server = MediaServer::new(SERVER.parse().unwrap());
        server.open_room(ROOM, mode);
        Self { server, participants: Vec::new(), signals: VecDeque::new() }
    }

    /// A participant joins; its index.
    pub fn join(&mut self, peer_id: &str, role: RoomRole) -> usize {
        let n = self.participants.len();
        let address = SocketAddr::from(([127, 0, 0, 1], 40_000 + n as u16));
        self.participants.push(Participant {
            peer_id: peer_id.to_owned(),
            address,
            publish: None,
            subscribe: None,
            camera: None,
            sequence_number: 0,
            picture_id: 0,
            received: Vec::new(),
            streams: Vec::new(),
            receivers: Vec::new(),
            keyframe_requests: 0,
            offers: 0,
            refusals: Vec::new(),
        });
        self.server.peer_joined(ROOM, peer_id, role, Instant::now());
        n
    }

    pub fn leave(&mut self, n: usize) {
        let peer_id = self.participants[n].peer_id.clone();
        self.server.peer_left(ROOM, &peer_id, Instant::now());
    }

    /// Participant `n` offers to publish a VP8 camera.
    pub fn publish_camera(&mut self, n: usize) {
        let participant = &mut self.participants[n];
        let mut pc = peer_connection(participant.address);
        let encoding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(CAMERA_SSRC), ..Default::default() },
            codec: vp8(),
            ..Default::default()
        };
        let stream = participant.peer_id.clone();
        let track =
            MediaStreamTrack::new(stream, "camera".into(), "camera".into(), RtpCodecKind::Video, vec![encoding]);
        let sender = pc.add_track(track).unwrap();
        let offer = pc.create_offer(None).unwrap();
        pc.set_local_description(Instant::now(), offer.clone()).unwrap();
        participant.publish = Some(pc);
        participant.camera = Some((sender, CAMERA_SSRC));
        let peer_id = participant.peer_id.clone();
        self.server.signal(ROOM, &peer_id, ConnectionKind::Publish, Incoming::Offer(offer.sdp), Instant::now());
    }

    /// Participant `n` sends one VP8 frame of one packet (a keyframe every 30).
    pub fn send_frame(&mut self, n: usize) {
        let participant = &mut self.participants[n];
        let (Some(pc), Some((sender, ssrc))) = (participant.publish.as_mut(), participant.camera) else { return };
        participant.sequence_number = participant.sequence_number.wrapping_add(1);
        participant.picture_id = (participant.picture_id + 1) & 0x7fff;
        let keyframe = participant.picture_id % 30 == 1;
        let [high, low] = (0x8000 | participant.picture_id).to_be_bytes();
        let mut payload = vec![0x90, 0x80, high, low, if keyframe { 0x50 } else { 0x51 }];
        payload.resize(800, 0);
        let header = Header {
            version: 2,
            marker: true,
            payload_type: 96,
            sequence_number: participant.sequence_number,
            timestamp: u32::from(participant.picture_id) * 3000,
            ssrc,
            ..Default::default()
        };
        if let Some(mut sender) = pc.rtp_sender(sender) {
            let _ = sender.write_rtp(Instant::now(), Packet { header, payload: Bytes::from(payload) });
        }
    }

    /// Moves datagrams and signals, the participants in `cameras` sending 30 frames a second,
    /// until `done` (true) or 15 s have passed (false).
    pub fn run(&mut self, cameras: &[usize], mut done: impl FnMut(&Self) -> bool) -> bool {
        let give_up = Instant::now() + Duration::from_secs(15);
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
                for &n in cameras {
                    self.send_frame(n);
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
            for pc in [participant.publish.as_mut(), participant.subscribe.as_mut()].into_iter().flatten() {
                if pc.poll_timeout().is_some_and(|at| at <= now) {
                    let _ = pc.handle_timeout(now);
                }
                while let Some(datagram) = pc.poll_write() {
                    self.server.datagram(participant.address, &datagram.message, now);
                    moved = true;
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
                    let Some(participant) = self.participants.iter_mut().find(|p| p.address == to) else { continue };
                    deliver(participant, server_address, datagram, now);
                }
                Output::Signal { to, connection, message, .. } => self.signals.push_back((to, connection, message)),
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

    /// Participants act on the server's signals as a client does: answer offers, apply answers.
    fn answer(&mut self, to: &str, connection: ConnectionKind, message: Outgoing, now: Instant) {
        let Some(participant) = self.participants.iter_mut().find(|p| p.peer_id == to) else { return };
        match (connection, message) {
            (_, Outgoing::Refused(code)) => participant.refusals.push((connection, code)),
            (ConnectionKind::Publish, Outgoing::Answer(sdp)) => {
                if let Some(pc) = participant.publish.as_mut() {
                    pc.set_remote_description(now, RTCSessionDescription::answer(sdp).unwrap()).unwrap();
                }
            }
            (ConnectionKind::Subscribe, Outgoing::Offer(sdp)) => {
                participant.offers += 1;
                let address = participant.address;
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

    /// VP8 packets participant `n` received from the track of publisher `from`.
    pub fn received_from(&self, n: usize, from: &str) -> usize {
        self.participants[n].received.iter().filter(|(track, _)| track.starts_with(from)).count()
    }
}

fn deliver(participant: &mut Participant, from: SocketAddr, datagram: BytesMut, now: Instant) {
    // The same address serves both connections: the one whose ICE agent knows it takes it.
    for pc in [participant.publish.as_mut(), participant.subscribe.as_mut()].into_iter().flatten() {
        let transport = TransportContext {
            local_addr: participant.address,
            peer_addr: from,
            ecn: None,
            transport_protocol: TransportProtocol::UDP,
        };
        let _ = pc.handle_read(TaggedBytesMut { now, transport, message: datagram.clone() });
    }
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
        if let RTCMessage::RtpPacket(track, packet) = message.message {
            participant.received.push((track, packet));
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
    // Keyframe requests delivered, so that a publisher sees them, as the server does.
    let registry = Registry::new().with(Slot::from(14_000), KeyframeRequests::default());
    let registry = register_default_interceptors(registry, &mut media_engine).unwrap();
    let settings = SettingEngineBuilder::new().with_answering_dtls_role(RTCDtlsRole::Client).build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_setting_engine(settings)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(Instant::now())
        .unwrap();
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: address.ip().to_string(),
            port: address.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .unwrap();
    pc.add_local_candidate(RTCIceCandidate::from(&candidate).to_json().unwrap()).unwrap();
    pc
}
