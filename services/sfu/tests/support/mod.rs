//! Participants of a call through the media server, in process: webrtc-rs `rtc` peers on the
//! other side of a [`MediaServer`], their datagrams handed across by [`Call::run`] as a network
//! would (every datagram, in order, no loss unless a test drops it), their signals by the test.
//! A camera among them publishes as the ingest does: H.264 (the committed clip
//! `crates/testkit/clips/video.h264`, packetized by webrtc-rs's payloader) and PCMU.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_call::camera_profile::{self, G711};
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
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp::packetizer::Payloader;
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
    /// A camera's H.264 and G.711 senders, and the next access unit of the clip it sends.
    h264: Option<(RTCRtpSenderId, RTCRtpSenderId, usize)>,
    pub level: u8,
    sequence_number: u16,
    picture_id: u16,
    /// RTP packets received on the subscribe connection, by the track's id (`a=msid`).
    pub received: Vec<(String, Packet)>,
    /// Streams (`a=msid` stream ids: publishers' peer ids) of the tracks it receives.
    pub streams: Vec<String>,
    /// The receivers of those tracks, with their SSRCs.
    receivers: Vec<(RTCRtpReceiverId, u32)>,
    /// The codec each received track was negotiated in: track id, MIME type, format parameters.
    pub codecs: Vec<(String, String, String)>,
    /// Whether its subscribe connection takes H.264 (a client may not).
    pub decodes_h264: bool,
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
    /// The server's RTP and RTCP datagrams to subscribe connections: every `n`th is lost.
    pub lose_downlink_every: Option<u64>,
    sent_downlink_media: u64,
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
const H264_SSRC: u32 = 0x264_0001;
const G711_SSRC: u32 = 0x711_0001;
/// The camera clip's `profile-level-id`, from its SPS: Main (constraint_set1), level 3.0.
pub const CLIP_PROFILE: &str = "4d401e";
/// An RTP payload's largest size, as webrtc-rs's payloader is told.
const MTU: usize = 1200;
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
            lose_downlink_every: None,
            sent_downlink_media: 0,
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

    /// A peer joins in `role` (a person, a camera, or the recorder); its index.
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
            h264: None,
            level: 127,
            sequence_number: 0,
            picture_id: 0,
            received: Vec::new(),
            streams: Vec::new(),
            receivers: Vec::new(),
            codecs: Vec::new(),
            decodes_h264: true,
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
        (participant.publish, participant.subscribe, participant.camera, participant.h264) = (None, None, None, None);
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

    /// Camera `n` offers to publish as the ingest does: a send-only H.264 track
    /// (packetization-mode 1 at `profile_level_id`) and a PCMU track, and nothing else.
    pub fn publish_h264_camera(&mut self, n: usize, profile_level_id: &str) {
        let participant = &mut self.participants[n];
        let (h264, pcmu) = (camera_profile::h264(profile_level_id), camera_profile::g711(G711::Pcmu));
        let mut media_engine = MediaEngine::default();
        media_engine.register_codec(h264.clone(), RtpCodecKind::Video).unwrap();
        media_engine.register_codec(pcmu.clone(), RtpCodecKind::Audio).unwrap();
        let mut pc = build(media_engine, participant.address);
        let stream = participant.peer_id.clone();
        let track = |id: &str, kind, ssrc, codec| {
            let encoding = RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                codec,
                ..Default::default()
            };
            MediaStreamTrack::new(stream.clone(), id.into(), id.into(), kind, vec![encoding])
        };
        let video = pc.add_track(track("video", RtpCodecKind::Video, H264_SSRC, h264.rtp_codec)).unwrap();
        let audio = pc.add_track(track("audio", RtpCodecKind::Audio, G711_SSRC, pcmu.rtp_codec)).unwrap();
        participant.h264 = Some((video, audio, 0));
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

    /// Camera `n` sends the clip's next access unit, packetized as webrtc-rs does (SPS and PPS
    /// aggregated in a STAP-A before an IDR, FU-A past the MTU, the marker on the last packet),
    /// and a frame's length of PCMU; the clip loops.
    fn send_camera_frame(&mut self, n: usize) {
        let participant = &mut self.participants[n];
        let (Some(pc), Some((video, audio, next))) = (participant.publish.as_mut(), participant.h264.as_mut()) else {
            return;
        };
        let clip = h264_clip();
        let frame = *next;
        *next = (frame + 1) % clip.len();
        let timestamp = frame as u32 * 3000;
        let mut payloader = H264Payloader::default();
        let payloads = payloader.payload(MTU, &Bytes::from(clip[frame].clone())).unwrap();
        if let Some(mut sender) = pc.rtp_sender(*video) {
            let payload_type = sender.get_parameters().rtp_parameters.codecs.first().map(|c| c.payload_type).unwrap();
            let last = payloads.len() - 1;
            for (i, payload) in payloads.into_iter().enumerate() {
                participant.sequence_number = participant.sequence_number.wrapping_add(1);
                let header = Header {
                    version: 2,
                    marker: i == last,
                    payload_type,
                    sequence_number: participant.sequence_number,
                    timestamp,
                    ssrc: H264_SSRC,
                    ..Default::default()
                };
                let _ = sender.write_rtp(Instant::now(), Packet { header, payload });
            }
        }
        if let Some(mut sender) = pc.rtp_sender(*audio) {
            let header = Header {
                version: 2,
                payload_type: 0,
                sequence_number: frame as u16,
                timestamp: frame as u32 * 264,
                ssrc: G711_SSRC,
                ..Default::default()
            };
            let _ = sender.write_rtp(Instant::now(), Packet { header, payload: Bytes::from_static(&[0xff; 264]) });
        }
    }

    /// Participant `n` sends one VP8 frame of one packet on each of its camera's layers (a
    /// keyframe every 30, stating the layer's size), with the mid and rid extensions of simulcast.
    pub fn send_frame(&mut self, n: usize) {
        self.send_camera_frame(n);
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
                    let is_media = datagram.first().is_some_and(|byte| (128..192).contains(byte));
                    if to_subscriber && is_media {
                        self.sent_downlink_media += 1;
                        if self.lose_downlink_every.is_some_and(|n| self.sent_downlink_media.is_multiple_of(n)) {
                            self.lost += 1;
                            continue;
                        }
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
                let decodes_h264 = participant.decodes_h264;
                let pc = participant.subscribe.get_or_insert_with(|| receiving_peer_connection(address, decodes_h264));
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

    /// Participant `n` says it lost `count` packets of each stream it receives, numbered back
    /// from `newest` (a NACK per stream, as many pairs as that takes).
    pub fn nack(&mut self, n: usize, newest: u16, count: u16) {
        let participant = &mut self.participants[n];
        let Some(pc) = participant.subscribe.as_mut() else { return };
        let first = newest.wrapping_sub(count - 1);
        let nacks = (0..count.div_ceil(17))
            .map(|pair| {
                let packet_id = first.wrapping_add(pair * 17);
                let following = (count - pair * 17 - 1).min(16);
                NackPair { packet_id, lost_packets: ((1u32 << following) - 1) as u16 }
            })
            .collect();
        for &(receiver, media_ssrc) in &participant.receivers {
            if let Some(mut receiver) = pc.rtp_receiver(receiver) {
                let nack = TransportLayerNack { sender_ssrc: 0, media_ssrc, nacks: Clone::clone(&nacks) };
                receiver.write_rtcp(Instant::now(), vec![Box::new(nack)]).unwrap();
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
            if let Some(mut receiver) = pc.rtp_receiver(init.receiver_id)
                && let Some(codec) = receiver.get_parameters().rtp_parameters.codecs.first()
            {
                let (mime, fmtp) = (codec.rtp_codec.mime_type.clone(), codec.rtp_codec.sdp_fmtp_line.clone());
                participant.codecs.push((init.track_id, mime, fmtp));
            }
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

/// A participant's publish connection: VP8 and Opus, as a browser publishes to the server.
fn peer_connection(address: SocketAddr) -> RTCPeerConnection {
    build(participant_codecs(), address)
}

/// A participant's subscribe connection: besides VP8 and Opus, what a browser decodes of a
/// camera's (H.264 in packetization-mode 1 at a baseline profile and at the clip's, unless
/// `decodes_h264` is false; PCMU, PCMA).
fn receiving_peer_connection(address: SocketAddr, decodes_h264: bool) -> RTCPeerConnection {
    let mut media_engine = participant_codecs();
    let h264 = [camera_profile::DEFAULT_PROFILE_LEVEL_ID, CLIP_PROFILE].map(camera_profile::h264);
    for (payload_type, codec) in [102, 104].into_iter().zip(h264).filter(|_| decodes_h264) {
        media_engine.register_codec(RTCRtpCodecParameters { payload_type, ..codec }, RtpCodecKind::Video).unwrap();
    }
    for g711 in [G711::Pcmu, G711::Pcma].map(camera_profile::g711) {
        media_engine.register_codec(g711, RtpCodecKind::Audio).unwrap();
    }
    build(media_engine, address)
}

fn participant_codecs() -> MediaEngine {
    let mut media_engine = MediaEngine::default();
    let codecs: [(RTCRtpCodec, u8, RtpCodecKind); 2] =
        [(vp8(), 96, RtpCodecKind::Video), (opus(), 111, RtpCodecKind::Audio)];
    for (rtp_codec, payload_type, kind) in codecs {
        media_engine.register_codec(RTCRtpCodecParameters { rtp_codec, payload_type }, kind).unwrap();
    }
    media_engine
}

/// The H.264 clip's access units (one frame each, SPS and PPS before each keyframe), in Annex B
/// with four-byte start codes, as the ingest hands webrtc-rs a camera's frames.
pub fn h264_clip() -> &'static [Vec<u8>] {
    static CLIP: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    CLIP.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../crates/testkit/clips/video.h264");
        access_units(&std::fs::read(path).expect("the committed H.264 clip"))
    })
}

/// Splits an Annex B stream into access units: a new one at each SPS or slice (the clip has one
/// slice per picture), each NAL unit behind a four-byte start code.
fn access_units(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units: Vec<Vec<u8>> = Vec::new();
    let mut previous_type = None;
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(stream.len(), |next| next - 3);
        let mut nal = &stream[start..end];
        while nal.last() == Some(&0) {
            nal = &nal[..nal.len() - 1];
        }
        let nal_type = nal[0] & 0x1f;
        let starts_unit = match nal_type {
            7 => true,
            1 | 5 => !matches!(previous_type, Some(7 | 8)),
            _ => false,
        };
        if starts_unit || units.is_empty() {
            units.push(Vec::new());
        }
        let unit = units.last_mut().unwrap();
        unit.extend_from_slice(&[0, 0, 0, 1]);
        unit.extend_from_slice(nal);
        previous_type = Some(nal_type);
    }
    units
}

fn build(mut media_engine: MediaEngine, address: SocketAddr) -> RTCPeerConnection {
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
