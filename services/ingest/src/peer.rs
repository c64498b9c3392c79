//! A camera's send-only WebRTC connection to one viewer (webrtc-rs). The camera offers H.264
//! (packetization-mode 1, the profile and level of the camera's own SPS) and, when the camera has
//! it, its G.711 audio as PCMU or PCMA; it sends what the camera sends, never transcoding, and
//! receives nothing. Candidates trickle both ways. Media logic (which frame a viewer starts at)
//! lives in the caller, `crate::seat`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
pub use confab_seat::{IceCandidate, IceServer};
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
    register_default_interceptors,
};
use webrtc::rtp_transceiver::RtpTransceiver;

use crate::frames::G711;

/// The profile and level offered when the camera's SPS is not known: Constrained Baseline 3.1.
pub const DEFAULT_PROFILE_LEVEL_ID: &str = "42e01f";

const H264_PAYLOAD_TYPE: u8 = 102;

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
        let (candidate_tx, local_candidates) = mpsc::unbounded_channel();
        let (state_tx, connected) = watch::channel(RTCPeerConnectionState::New);
        let handler = Arc::new(Handler { candidate_tx, state_tx });
        let h264 = h264_codec(&offering.profile_level_id);
        let g711 = offering.audio.map(g711_codec);
        let mut media_engine = MediaEngine::default();
        media_engine.register_codec(h264.clone(), RtpCodecKind::Video)?;
        if let Some(g711) = &g711 {
            media_engine.register_codec(g711.clone(), RtpCodecKind::Audio)?;
        }
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
        let ice_servers = config.ice_servers.iter().map(IceServer::to_rtc).collect();
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
        self.video.payload_type = payload_type(&self.video.transceiver).await;
        if let Some(audio) = &mut self.audio {
            audio.payload_type = payload_type(&audio.transceiver).await;
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
        Ok(self.connection.add_ice_candidate(candidate.into_rtc()).await?)
    }

    /// Sends one H.264 access unit (Annex B) lasting `duration`.
    pub async fn send_video(&self, annex_b: Bytes, duration: Duration) {
        self.video.write(annex_b, duration).await;
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

async fn add_track(
    connection: &Arc<dyn PeerConnection>,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
) -> Result<Outgoing, PeerError> {
    let mut ssrc = [0u8; 4];
    getrandom::fill(&mut ssrc).expect("the OS random source is available");
    let ssrc = u32::from_be_bytes(ssrc);
    let track = MediaStreamTrack::new(
        "camera".to_owned(),
        format!("camera-{kind}"),
        format!("{kind}"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec,
            ..Default::default()
        }],
    );
    let track = Arc::new(TrackLocalStaticSample::new(Instant::now(), track)?);
    let init = RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Sendonly, ..Default::default() };
    let transceiver = connection.add_transceiver_from_track(track.clone(), Some(init)).await?;
    Ok(Outgoing { track, transceiver, ssrc, payload_type: None })
}

/// The payload type the viewer accepted for a transceiver's sender; `None` when it refused it.
async fn payload_type(transceiver: &Arc<dyn RtpTransceiver>) -> Option<u8> {
    let sender = transceiver.sender().await.ok()??;
    let parameters = sender.get_parameters().await.ok()?;
    parameters.rtp_parameters.codecs.first().map(|codec| codec.payload_type)
}

fn h264_codec(profile_level_id: &str) -> RTCRtpCodecParameters {
    let rtcp_feedback = [("goog-remb", ""), ("ccm", "fir"), ("nack", ""), ("nack", "pli")]
        .into_iter()
        .map(|(typ, parameter)| RTCPFeedback { typ: typ.to_owned(), parameter: parameter.to_owned() })
        .collect();
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "video/H264".to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: format!(
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile_level_id}"
            ),
            rtcp_feedback,
        },
        payload_type: H264_PAYLOAD_TYPE,
    }
}

fn g711_codec(codec: G711) -> RTCRtpCodecParameters {
    let (mime_type, payload_type) = match codec {
        G711::Pcmu => ("audio/PCMU", 0),
        G711::Pcma => ("audio/PCMA", 8),
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime_type.to_owned(),
            clock_rate: 8_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: Vec::new(),
        },
        payload_type,
    }
}

struct Handler {
    candidate_tx: mpsc::UnboundedSender<IceCandidate>,
    state_tx: watch::Sender<RTCPeerConnectionState>,
}

type BoxFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

// `PeerConnectionEventHandler` is an `async_trait` trait; these are the signatures that macro
// would write, spelled out to avoid a dependency for two methods.
impl PeerConnectionEventHandler for Handler {
    fn on_ice_candidate<'life0, 'async_trait>(&'life0 self, event: RTCPeerConnectionIceEvent) -> BoxFuture<'async_trait>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            if let Some(candidate) = IceCandidate::gathered(&event) {
                let _ = self.candidate_tx.send(candidate);
            }
        })
    }

    fn on_connection_state_change<'life0, 'async_trait>(
        &'life0 self,
        state: RTCPeerConnectionState,
    ) -> BoxFuture<'async_trait>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let _ = self.state_tx.send(state);
        })
    }
}
