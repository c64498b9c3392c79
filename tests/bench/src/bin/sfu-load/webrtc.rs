//! The WebRTC side of the load tool, for every target that speaks WebRTC (Janus; our SFU next):
//! webrtc-rs's sans-IO `RTCPeerConnection`s, one per publisher or subscriber, each on a UDP
//! socket of its own and driven by a task of the tool's one thread. A target only carries the
//! SDP: [`Publisher::offer`] → the server's answer → [`Publisher::start`];
//! the server's offer → [`Subscriber::answer`] → [`Subscriber::start`].
//! No interceptors: no NACK (a lost packet stays lost and is counted), no reports or TWCC.
//!
//! One subscriber in [`TIMED_EVERY`] decrypts its RTP and times each packet by its payload
//! ([`crate::timing`]); the others count their packets from the clear RTP header of each SRTP
//! datagram (SSRC and sequence number) and hand the stack only what is not RTP (ICE, DTLS,
//! RTCP). With every subscriber decrypting, the tool's one core, not the server's, ran out
//! first at 500 subscribers.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use confab_bench::simulcast::LAYERS;
use confab_call::vp8;
use confab_sfu::connection::add_host_candidate;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability,
    RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::Run;
use crate::pacing::Pacer;
use crate::reception::Reception;

const VP8_PAYLOAD_TYPE: u8 = 96;
const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
/// One subscriber in this many decrypts and times its packets.
const TIMED_EVERY: usize = 20;
/// How often a subscriber counting headers looks after its connection while packets stream in.
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// How long a connection may take from the answer to DTLS done.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection and the socket its one host candidate names.
struct Peer {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local: SocketAddr,
}

impl Peer {
    async fn new(local_ip: IpAddr, simulcast_extensions: bool) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind((local_ip, 0)).await?;
        let local = socket.local_addr()?;
        let mut media_engine = MediaEngine::default();
        let codec = RTCRtpCodecParameters { rtp_codec: vp8(), payload_type: VP8_PAYLOAD_TYPE };
        media_engine.register_codec(codec, RtpCodecKind::Video)?;
        let uris: &[&str] = if simulcast_extensions { &[MID_URI, RID_URI] } else { &[MID_URI] };
        for uri in uris {
            let extension = RTCRtpHeaderExtensionCapability { uri: (*uri).to_owned() };
            media_engine.register_header_extension(extension, RtpCodecKind::Video, None)?;
        }
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_media_engine(media_engine)
            .with_interceptor_registry(Registry::new())
            .build(Instant::now())?;
        add_host_candidate(&mut pc, local)?;
        Ok(Self { pc, socket, local })
    }

    fn read(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) -> anyhow::Result<()> {
        self.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.local,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: datagram.into(),
        })?;
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        while let Some(datagram) = self.pc.poll_write() {
            self.socket.send_to(&datagram.message, datagram.transport.peer_addr).await?;
        }
        Ok(())
    }

    fn run_timers(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        if self.pc.poll_timeout().is_some_and(|due| due <= now) {
            self.pc.handle_timeout(now)?;
        }
        Ok(())
    }

    /// Whether the connection came up since the last call; an error if it failed.
    fn became_connected(&mut self) -> anyhow::Result<bool> {
        let mut connected = false;
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
                match state {
                    RTCPeerConnectionState::Connected => connected = true,
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => bail!("the connection {state}"),
                    _ => {}
                }
            }
        }
        Ok(connected)
    }

    /// When the connection's next timer is due, but no later than `until`.
    fn next_timer(&mut self, until: Instant) -> Instant {
        self.pc.poll_timeout().map_or(until, |due| due.min(until))
    }

    /// Waits for a datagram, but not past `wake`; returns the datagram's length, sender and
    /// arrival instant.
    async fn wait(&mut self, buffer: &mut [u8], wake: Instant) -> anyhow::Result<Option<(usize, SocketAddr, Instant)>> {
        tokio::select! {
            received = self.socket.recv_from(buffer) => {
                let (len, from) = received?;
                Ok(Some((len, from, Instant::now())))
            }
            () = tokio::time::sleep_until(wake.into()) => Ok(None),
        }
    }
}

/// The publisher before the server has answered: one video track, three simulcast encodings.
pub struct Publisher {
    peer: Peer,
    sender: RTCRtpSenderId,
}

impl Publisher {
    /// A publisher and its offer (SDP).
    pub async fn offer(local_ip: IpAddr) -> anyhow::Result<(Self, String)> {
        let mut peer = Peer::new(local_ip, true).await?;
        let encodings = LAYERS
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
        let track =
            MediaStreamTrack::new("sfu-load".into(), "camera".into(), "camera".into(), RtpCodecKind::Video, encodings);
        let sender = peer.pc.add_track(track)?;
        let offer = peer.pc.create_offer(None)?;
        let sdp = offer.sdp.clone();
        peer.pc.set_local_description(Instant::now(), offer)?;
        Ok((Self { peer, sender }, sdp))
    }

    /// Applies the server's answer and spawns the task that sends the clip once connected.
    pub fn start(mut self, answer: String, run: Rc<Run>) -> anyhow::Result<()> {
        self.peer.pc.set_remote_description(Instant::now(), RTCSessionDescription::answer(answer)?)?;
        tokio::task::spawn_local(async move {
            if let Err(e) = self.send(&run).await {
                eprintln!("sfu-load: the publisher stopped: {e:#}");
                run.publisher_failed.set(true);
            }
        });
        Ok(())
    }

    async fn send(&mut self, run: &Run) -> anyhow::Result<()> {
        let mut buffer = vec![0u8; 2048];
        let mut pacer: Option<(Pacer, u8, u8)> = None;
        let mut due = Vec::new();
        let give_up = Instant::now() + CONNECT_TIMEOUT;
        loop {
            let until = match &pacer {
                Some((pacer, ..)) => pacer.next_at(&run.clip),
                None if Instant::now() > give_up => bail!("not connected after {CONNECT_TIMEOUT:?}"),
                None => Instant::now() + Duration::from_millis(100),
            };
            let wake = self.peer.next_timer(until);
            if let Some((len, from, now)) = self.peer.wait(&mut buffer, wake).await? {
                self.peer.read(&buffer[..len], from, now)?;
                while self.peer.pc.poll_read().is_some() {}
            }
            self.peer.run_timers()?;
            // Connected again after an ICE interruption, it goes on where it was: a browser does
            // not restart its sequence numbers on one SRTP session (the SFU would take them for
            // replays).
            if self.peer.became_connected()? && pacer.is_none() {
                let (mid, rid) = self.extension_ids()?;
                pacer = Some((Pacer::new(&run.clip, Instant::now(), VP8_PAYLOAD_TYPE, run.pacing_factor), mid, rid));
                run.publisher_connected.set(true);
            }
            if let Some((pacer, mid, rid)) = &mut pacer {
                pacer.take_due(&run.clip, Instant::now(), &mut due);
                let mut sender = self.peer.pc.rtp_sender(self.sender).context("the publisher's sender")?;
                for (layer, mut packet) in due.drain(..) {
                    packet.header.set_extension(*mid, "0".into())?;
                    packet.header.set_extension(*rid, LAYERS[layer].rid.into())?;
                    run.timing.borrow_mut().sent(layer, &packet.payload, Instant::now());
                    sender.write_rtp(Instant::now(), packet)?;
                }
            }
            self.peer.flush().await?;
        }
    }

    /// The negotiated ids of the mid and rid header extensions.
    fn extension_ids(&mut self) -> anyhow::Result<(u8, u8)> {
        let mut sender = self.peer.pc.rtp_sender(self.sender).context("the publisher's sender")?;
        let extensions = &sender.get_parameters().rtp_parameters.header_extensions;
        let id = |uri: &str| {
            extensions
                .iter()
                .find(|e| e.uri == uri)
                .map(|e| e.id as u8)
                .with_context(|| format!("{uri} not negotiated"))
        };
        Ok((id(MID_URI)?, id(RID_URI)?))
    }
}

/// A subscriber that has answered the server's offer.
pub struct Subscriber {
    peer: Peer,
    /// The server's later offers on the connection, each with where its answer goes
    /// ([`Subscriber::renegotiable`]).
    offers: Option<mpsc::UnboundedReceiver<(String, oneshot::Sender<anyhow::Result<String>>)>>,
}

/// Hands a running subscriber the server's later offers; each comes back answered.
pub type Renegotiation = mpsc::UnboundedSender<(String, oneshot::Sender<anyhow::Result<String>>)>;

impl Subscriber {
    /// A subscriber for the server's offer, and its answer (SDP).
    pub async fn answer(local_ip: IpAddr, offer: String) -> anyhow::Result<(Self, String)> {
        let mut peer = Peer::new(local_ip, false).await?;
        peer.pc.set_remote_description(Instant::now(), RTCSessionDescription::offer(offer)?)?;
        let answer = peer.pc.create_answer(None)?;
        let sdp = answer.sdp.clone();
        peer.pc.set_local_description(Instant::now(), answer)?;
        Ok((Self { peer, offers: None }, sdp))
    }

    /// Lets the server renegotiate the connection once it runs: its offers go in through what
    /// this returns.
    pub fn renegotiable(&mut self) -> Renegotiation {
        let (offers, received) = mpsc::unbounded_channel();
        self.offers = Some(received);
        offers
    }

    /// Applies an offer of the server's on the running connection; the answer.
    fn renegotiate(&mut self, offer: String) -> anyhow::Result<String> {
        self.peer.pc.set_remote_description(Instant::now(), RTCSessionDescription::offer(offer)?)?;
        let answer = self.peer.pc.create_answer(None)?;
        let sdp = answer.sdp.clone();
        self.peer.pc.set_local_description(Instant::now(), answer)?;
        Ok(sdp)
    }

    /// Spawns the task that connects, then counts every RTP packet that arrives (and times it,
    /// for one subscriber in [`TIMED_EVERY`]).
    pub fn start(mut self, run: Rc<Run>) -> Rc<RefCell<Reception>> {
        let reception = Rc::new(RefCell::new(Reception::new(false)));
        let counted = Rc::clone(&reception);
        let index = run.subscribers.get();
        run.subscribers.set(index + 1);
        let times = index.is_multiple_of(TIMED_EVERY);
        tokio::task::spawn_local(async move {
            if let Err(e) = self.receive(&run, &counted, times).await {
                eprintln!("sfu-load: a subscriber stopped: {e:#}");
                counted.borrow_mut().failed = true;
            }
        });
        reception
    }

    async fn receive(&mut self, run: &Run, reception: &RefCell<Reception>, times: bool) -> anyhow::Result<()> {
        let mut buffer = vec![0u8; 2048];
        let give_up = Instant::now() + CONNECT_TIMEOUT;
        // When the connection was last looked after (timers, events, renegotiations, datagrams
        // to send), and when it must be next: a datagram counted from its header alone needs
        // none of that.
        let mut looked = Instant::now();
        let mut wake = looked;
        loop {
            if !reception.borrow().connected && Instant::now() > give_up {
                bail!("not connected after {CONNECT_TIMEOUT:?}");
            }
            if let Some((len, from, arrived)) = self.peer.wait(&mut buffer, wake).await? {
                let datagram = &buffer[..len];
                if let Some((ssrc, sequence_number)) = rtp_numbers(datagram).filter(|_| !times) {
                    let mut reception = reception.borrow_mut();
                    reception.first_at.get_or_insert(arrived);
                    reception.count(ssrc, sequence_number);
                    if arrived < wake && arrived < looked + LOOK_EVERY {
                        continue;
                    }
                } else {
                    self.peer.read(datagram, from, arrived)?;
                    while let Some(message) = self.peer.pc.poll_read() {
                        if let RTCMessage::RtpPacket(_, packet) = message.message {
                            run.timing.borrow_mut().arrived(&packet.payload, arrived);
                            let mut reception = reception.borrow_mut();
                            reception.first_at.get_or_insert(arrived);
                            reception.count(packet.header.ssrc, packet.header.sequence_number);
                        }
                    }
                }
            }
            while let Some((offer, answer)) = self.offers.as_mut().and_then(|offers| offers.try_recv().ok()) {
                let _ = answer.send(self.renegotiate(offer));
            }
            self.peer.run_timers()?;
            if self.peer.became_connected()? {
                let mut reception = reception.borrow_mut();
                reception.connected = true;
                reception.connected_at.get_or_insert(Instant::now());
            }
            self.peer.flush().await?;
            looked = Instant::now();
            wake = self.peer.next_timer(looked + Duration::from_millis(100));
        }
    }
}

/// An RTP datagram's SSRC and sequence number, from its header (clear in SRTP); `None` for
/// anything else (STUN, DTLS and RTCP, told apart as RFC 7983 and RFC 5761 do).
fn rtp_numbers(datagram: &[u8]) -> Option<(u32, u16)> {
    let header = datagram.get(..12)?;
    let is_rtp = (128..=191).contains(&header[0]) && !rtc::shared::util::is_rtcp(datagram);
    is_rtp.then(|| {
        let sequence_number = u16::from_be_bytes([header[2], header[3]]);
        (u32::from_be_bytes([header[8], header[9], header[10], header[11]]), sequence_number)
    })
}
