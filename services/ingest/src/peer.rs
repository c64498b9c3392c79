//! A camera's send-only WebRTC connection to one viewer (webrtc-rs). The camera offers H.264
//! (packetization-mode 1, the profile and level of the camera's own SPS) and, when the camera has
//! it, its G.711 audio as PCMU or PCMA; it sends what the camera sends, never transcoding, and
//! receives nothing. Candidates trickle both ways. Media logic (which frame a viewer starts at)
//! lives in the caller, `crate::seat`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
pub use confab_call::{IceCandidate, IceServer};
use rtc::media::Sample;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, RTCConfigurationBuilder, RTCPeerConnectionState,
    RTCSessionDescription, Registry, SettingEngineBuilder, register_default_interceptors,
};
use webrtc::rtp_transceiver::RtpTransceiver;

use confab_call::camera_profile::{self, G711};

/// How a [`SendPeer`] connects.
#[derive(Debug, Clone, Default)]
pub struct PeerConfig {
    /// STUN/TURN servers, from the gateway's `welcome`.
    pub ice_servers: Vec<IceServer>,
    /// Local UDP addresses to gather host candidates on; port 0 picks one.
    pub bind_addrs: Vec<String>,
    /// Offer loopback candidates too. Only for tests, where both peers are on one machine.
    pub include_loopback_candidates: bool,
}

/// What the camera sends on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offering {
    /// `profile-level-id`: six hex digits.
    pub profile_level_id: String,
    pub audio: Option<G711>,
}

/// The result of [`SendPeer::offer`].
pub struct Offered {
    pub peer: SendPeer,
    /// The SDP offer for the viewer (`a=sendonly`).
    pub offer_sdp: String,
    /// Local ICE candidates to send to the viewer as they are gathered.
    pub local_candidates: mpsc::UnboundedReceiver<IceCandidate>,
}

#[derive(Debug)]
pub struct PeerError(webrtc::error::Error);

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebRTC: {}", self.0)
    }
}

impl std::error::Error for PeerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl From<webrtc::error::Error> for PeerError {
    fn from(error: webrtc::error::Error) -> Self {
        PeerError(error)
    }
}

/// One outgoing track and, once the answer is in, the payload type the viewer accepted.
struct Outgoing {
    track: Arc<TrackLocalStaticSample>,
    transceiver: Arc<dyn RtpTransceiver>,
    ssrc: u32,
    payload_type: Option<u8>,
}

impl Outgoing {
    async fn write(&self, data: Bytes, duration: Duration) {
        let Some(payload_type) = self.payload_type else { return };
        let sample = Sample { data, duration, ..Sample::new(Instant::now()) };
        // A write before the connection is up, or after it failed, is dropped: media is live.
        let _ = self.track.sample_writer(self.ssrc, payload_type).write_sample(&sample).await;
    }
}

/// The camera's connection to one viewer.
pub struct SendPeer {
    connection: Arc<dyn PeerConnection>,
    video: Outgoing,
    audio: Option<Outgoing>,
    connected: watch::Receiver<RTCPeerConnectionState>,
}

impl SendPeer {
    /// Builds a connection with a send-only H.264 track (and G.711 track) and creates the offer.
    /// Candidates are trickled: the offer carries none, they come on [`Offered::local_candidates`].
    pub async fn offer(offering: &Offering, config: &PeerConfig) -> Result<Offered, PeerError> {
        let (handler, events) = confab_call::peer_events();
        let (local_candidates, connected) = (events.candidates, events.state);
        let h264 = camera_profile::h264(&offering.profile_level_id);
        let g711 = offering.audio.map(camera_profile::g711);
        let mut media_engine = MediaEngine::default();
        media_engine.register_codec(h264.clone(), RtpCodecKind::Video)?;
        if let Some(g711) = &g711 {
            media_engine.register_codec(g711.clone(), RtpCodecKind::Audio)?;
        }
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
        let ice_servers = confab_call::rtc_ice_servers(&config.ice_servers);
        let setting_engine =
            SettingEngineBuilder::new().with_include_loopback_candidate(config.include_loopback_candidates).build();
        let bind_addrs =
            if config.bind_addrs.is_empty() { vec!["0.0.0.0:0".to_owned()] } else { config.bind_addrs.clone() };
        let connection = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().with_ice_servers(ice_servers).build())
            .with_media_engine(media_engine)
            .with_setting_engine(setting_engine)
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_udp_addrs(bind_addrs)
            .build()
            .await?;
        let connection: Arc<dyn PeerConnection> = Arc::new(connection);
        let built = async {
            let video = add_track(&connection, RtpCodecKind::Video, h264.rtp_codec).await?;
            let audio = match g711 {
                Some(g711) => Some(add_track(&connection, RtpCodecKind::Audio, g711.rtp_codec).await?),
                None => None,
            };
            let offer = connection.create_offer(None).await?;
            let offer_sdp = offer.sdp.clone();
            connection.set_local_description(offer).await?;
            Ok::<_, PeerError>((video, audio, offer_sdp))
        };
        match built.await {
            Ok((video, audio, offer_sdp)) => {
                Ok(Offered { peer: SendPeer { connection, video, audio, connected }, offer_sdp, local_candidates })
            }
            Err(error) => {
                let _ = connection.close().await;
                Err(error)
            }
        }
    }

    /// Applies the viewer's answer; from then on frames are sent.
    pub async fn answered(&mut self, answer_sdp: &str) -> Result<(), PeerError> {
        self.connection.set_remote_description(RTCSessionDescription::answer(answer_sdp.to_owned())?).await?;
        self.video.payload_type = confab_call::negotiated_payload_type(&self.video.transceiver).await;
        if let Some(audio) = &mut self.audio {
            audio.payload_type = confab_call::negotiated_payload_type(&audio.transceiver).await;
        }
        Ok(())
    }

    /// Whether the viewer's answer has been applied.
    pub fn is_answered(&self) -> bool {
        self.video.payload_type.is_some()
    }

    /// Answered and connected: frames written now reach the viewer (before DTLS is up they
    /// could not be encrypted).
    pub fn is_sending(&self) -> bool {
        self.is_answered() && self.state() == RTCPeerConnectionState::Connected
    }

    /// The connection's state, as a browser's `connectionState`.
    pub fn state(&self) -> RTCPeerConnectionState {
        *self.connected.borrow()
    }

    /// Adds a candidate the viewer trickled.
    pub async fn add_remote_candidate(&self, candidate: IceCandidate) -> Result<(), PeerError> {
        Ok(self.connection.add_ice_candidate(confab_call::rtc_candidate(candidate)).await?)
    }

    /// Sends one H.264 access unit, given as its NAL units, lasting `duration`.
    pub async fn send_video(&self, nal_units: &[Bytes], duration: Duration) {
        self.video.write(annex_b(nal_units), duration).await;
    }

    /// Sends one G.711 frame, if audio was negotiated.
    pub async fn send_audio(&self, payload: Bytes, duration: Duration) {
        if let Some(audio) = &self.audio {
            audio.write(payload, duration).await;
        }
    }

    pub async fn close(&self) {
        let _ = self.connection.close().await;
    }
}

/// The one place H.264 is joined into Annex B (start codes): a sample is one access unit (its
/// last packet gets the marker bit and the timestamp advances after it), and rtc-rtp's H.264
/// payloader finds the NAL units inside a sample only by their start codes.
fn annex_b(nal_units: &[Bytes]) -> Bytes {
    const START_CODE: [u8; 4] = [0, 0, 0, 1];
    let mut joined = Vec::with_capacity(nal_units.iter().map(|unit| START_CODE.len() + unit.len()).sum());
    for unit in nal_units {
        joined.extend_from_slice(&START_CODE);
        joined.extend_from_slice(unit);
    }
    Bytes::from(joined)
}

async fn add_track(
    connection: &Arc<dyn PeerConnection>,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
) -> Result<Outgoing, PeerError> {
    let mut ssrc = [0u8; 4];
    getrandom::fill(&mut ssrc).expect("the OS random source is available");
    let ssrc = u32::from_be_bytes(ssrc);
    let track = confab_call::sample_track("camera", kind, ssrc, codec)?;
    let transceiver = confab_call::add_send_only(connection, track.clone()).await?;
    Ok(Outgoing { track, transceiver, ssrc, payload_type: None })
}
