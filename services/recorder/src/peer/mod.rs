//! The recorder's receiving end of one participant's send-only WebRTC connection (webrtc-rs). It
//! answers the participant's offer accepting VP8, VP9 and Opus only (a camera's: the H.264 profile
//! it offers, packetization-mode 1, and PCMU or PCMA), trickles ICE candidates both ways and
//! forwards every RTP packet and RTCP sender report, stamped with its arrival time, to one
//! channel per participant. It holds no media logic: the receiver of that channel feeds
//! [`crate::media::Participant`], which decides what a frame is and when to ask for a keyframe
//! ([`ReceivePeer::request_keyframe`]).

mod rtcp;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use confab_domain::CallRole;
pub use confab_seat::{IceCandidate, IceServer};
use rtc::interceptor::Slot;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCPeerConnectionIceEvent, RTCSessionDescription, Registry, SettingEngineBuilder, register_default_interceptors,
};

use crate::media::{Codec, RtpPacket, SenderReport};

/// Where the interceptor that hands sender reports to the tracks sits: after every built-in one.
const SENDER_REPORT_SLOT: usize = 14_000;

/// Who offers media to the recorder, which decides what the answer accepts and what file the
/// media goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A person's client: VP8 or VP9 and Opus, recorded as WebM.
    Participant,
    /// An RTSP camera joined by the ingest (room role `camera`): H.264 and G.711, recorded as
    /// Matroska.
    Camera,
}

impl Source {
    /// From a peer's room role, as the gateway lists it.
    pub fn of_role(role: &str) -> Self {
        if role.parse() == Ok(CallRole::Camera) { Source::Camera } else { Source::Participant }
    }

    /// The extension of the files its media goes to.
    pub fn file_extension(self) -> &'static str {
        match self {
            Source::Participant => "webm",
            Source::Camera => "mkv",
        }
    }
}

/// How a [`ReceivePeer`] connects.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// STUN/TURN servers, as a browser's `RTCConfiguration.iceServers`.
    pub ice_servers: Vec<IceServer>,
    /// Local UDP addresses to gather host candidates on; port 0 picks one.
    pub bind_addrs: Vec<String>,
    /// Offer loopback candidates too. Only for tests, where both peers are on one machine.
    pub include_loopback_candidates: bool,
    /// Capacity of the participant's media channel; what does not fit is dropped and counted.
    pub media_channel_capacity: usize,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            ice_servers: Vec::new(),
            bind_addrs: vec!["0.0.0.0:0".to_owned()],
            include_loopback_candidates: false,
            media_channel_capacity: 2048,
        }
    }
}

/// A remote track, as the media channel names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteTrack {
    /// 0 for the first track the participant sent, 1 for the second, …
    pub index: usize,
    pub codec: Codec,
    /// The SSRC the track started with.
    pub ssrc: u32,
}

/// What arrived on a track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    Rtp(RtpPacket),
    SenderReport(SenderReport),
    /// The track ended; nothing more comes for it.
    Ended,
}

/// One item of a participant's media channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub track: RemoteTrack,
    /// When the packet was taken from the WebRTC stack.
    pub at: Instant,
    pub media: Media,
}

/// The result of [`ReceivePeer::answer`].
pub struct Answered {
    pub peer: ReceivePeer,
    /// The SDP answer for the participant (`a=recvonly`; codecs other than VP8/VP9/Opus, or for a
    /// camera H.264/G.711, rejected).
    pub answer_sdp: String,
    /// Every track's packets and sender reports, in arrival order per track.
    pub media: mpsc::Receiver<Received>,
    /// Local ICE candidates to send to the participant as they are gathered.
    pub local_candidates: mpsc::UnboundedReceiver<IceCandidate>,
}

/// Why a peer operation failed.
#[derive(Debug)]
pub enum PeerError {
    /// webrtc-rs refused (a bad offer, a closed connection, …).
    WebRtc(webrtc::error::Error),
    /// [`ReceivePeer::request_keyframe`] for an SSRC no track has.
    UnknownSsrc(u32),
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::WebRtc(error) => write!(f, "WebRTC: {error}"),
            PeerError::UnknownSsrc(ssrc) => write!(f, "no remote track has SSRC {ssrc}"),
        }
    }
}

impl std::error::Error for PeerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PeerError::WebRtc(error) => Some(error),
            PeerError::UnknownSsrc(_) => None,
        }
    }
}

impl From<webrtc::error::Error> for PeerError {
    fn from(error: webrtc::error::Error) -> Self {
        PeerError::WebRtc(error)
    }
}

type TrackMap = Arc<Mutex<HashMap<u32, Arc<dyn TrackRemote>>>>;

/// The recorder's peer connection to one participant.
pub struct ReceivePeer {
    connection: Arc<dyn PeerConnection>,
    tracks: TrackMap,
    dropped: Arc<AtomicU64>,
}

impl ReceivePeer {
    /// Builds a connection, applies the participant's offer and creates the answer. Candidates
    /// are trickled: the answer carries none, they come on [`Answered::local_candidates`].
    pub async fn answer(offer_sdp: &str, source: Source, config: &PeerConfig) -> Result<Answered, PeerError> {
        let (media_tx, media) = mpsc::channel(config.media_channel_capacity.max(1));
        let (candidate_tx, local_candidates) = mpsc::unbounded_channel();
        let tracks = TrackMap::default();
        let dropped = Arc::new(AtomicU64::new(0));
        let handler = Arc::new(Handler {
            media_tx,
            candidate_tx,
            tracks: Arc::clone(&tracks),
            dropped: Arc::clone(&dropped),
            next_index: AtomicUsize::new(0),
        });

        let mut media_engine = match source {
            Source::Participant => recording_media_engine()?,
            Source::Camera => camera_media_engine(offer_sdp)?,
        };
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?
            .with(Slot::from(SENDER_REPORT_SLOT), rtcp::SenderReportForwarder::default());
        let ice_servers = config.ice_servers.iter().map(IceServer::to_rtc).collect();
        let setting_engine =
            SettingEngineBuilder::new().with_include_loopback_candidate(config.include_loopback_candidates).build();
        let connection = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().with_ice_servers(ice_servers).build())
            .with_media_engine(media_engine)
            .with_setting_engine(setting_engine)
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_udp_addrs(config.bind_addrs.clone())
            .build()
            .await?;
        let connection: Arc<dyn PeerConnection> = Arc::new(connection);
        let peer = ReceivePeer { connection, tracks, dropped };

        match peer.negotiate(offer_sdp).await {
            Ok(answer_sdp) => Ok(Answered { peer, answer_sdp, media, local_candidates }),
            Err(error) => {
                let _ = peer.close().await;
                Err(error)
            }
        }
    }

    async fn negotiate(&self, offer_sdp: &str) -> Result<String, PeerError> {
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            let init = RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() };
            self.connection.add_transceiver_from_kind(kind, Some(init)).await?;
        }
        self.connection.set_remote_description(RTCSessionDescription::offer(offer_sdp.to_owned())?).await?;
        let answer = self.connection.create_answer(None).await?;
        let answer_sdp = answer.sdp.clone();
        self.connection.set_local_description(answer).await?;
        Ok(self.connection.local_description().await.map_or(answer_sdp, |description| description.sdp))
    }

    /// Adds a candidate the participant trickled.
    pub async fn add_remote_candidate(&self, candidate: IceCandidate) -> Result<(), PeerError> {
        Ok(self.connection.add_ice_candidate(candidate.into_rtc()).await?)
    }

    /// Sends an RTCP PLI asking the participant for a keyframe of the stream `media_ssrc`.
    pub async fn request_keyframe(&self, media_ssrc: u32) -> Result<(), PeerError> {
        let track = self.tracks.lock().expect("track map poisoned").get(&media_ssrc).cloned();
        let track = track.ok_or(PeerError::UnknownSsrc(media_ssrc))?;
        track.write_rtcp(vec![Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc })]).await?;
        Ok(())
    }

    /// Packets and sender reports dropped because the media channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Closes the connection; every track then ends ([`Media::Ended`]).
    pub async fn close(&self) -> Result<(), PeerError> {
        Ok(self.connection.close().await?)
    }
}

/// VP8, VP9 (profile 0) and Opus only, so that the answer rejects every other codec.
fn recording_media_engine() -> Result<MediaEngine, PeerError> {
    let codec = codec_parameters;
    let mut engine = MediaEngine::default();
    engine.register_codec(codec("video/VP8", 90_000, 0, "", 96, video_feedback()), RtpCodecKind::Video)?;
    engine.register_codec(codec("video/VP9", 90_000, 0, "profile-id=0", 98, video_feedback()), RtpCodecKind::Video)?;
    engine.register_codec(
        codec("audio/opus", 48_000, 2, "minptime=10;useinbandfec=1", 111, Vec::new()),
        RtpCodecKind::Audio,
    )?;
    Ok(engine)
}

fn video_feedback() -> Vec<RTCPFeedback> {
    [("goog-remb", ""), ("ccm", "fir"), ("nack", ""), ("nack", "pli")]
        .into_iter()
        .map(|(typ, parameter)| RTCPFeedback { typ: typ.to_owned(), parameter: parameter.to_owned() })
        .collect()
}

fn codec_parameters(
    mime_type: &str,
    clock_rate: u32,
    channels: u16,
    fmtp: &str,
    payload_type: u8,
    rtcp_feedback: Vec<RTCPFeedback>,
) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime_type.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback,
        },
        payload_type,
    }
}

/// For a camera: H.264 with packetization-mode 1 and the profile the camera offered (webrtc-rs
/// matches H.264 by profile), and the G.711 variant it offered; nothing else.
fn camera_media_engine(offer_sdp: &str) -> Result<MediaEngine, PeerError> {
    let offered = OfferedByCamera::parse(offer_sdp);
    let profile_level_id = offered.profile_level_id.as_deref().unwrap_or(DEFAULT_PROFILE_LEVEL_ID);
    let mut engine = MediaEngine::default();
    engine.register_codec(
        codec_parameters(
            "video/H264",
            90_000,
            0,
            &format!("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile_level_id}"),
            102,
            video_feedback(),
        ),
        RtpCodecKind::Video,
    )?;
    let (mime_type, payload_type) = match offered.g711 {
        Some(Codec::Pcma) => ("audio/PCMA", 8),
        _ => ("audio/PCMU", 0),
    };
    engine.register_codec(codec_parameters(mime_type, 8_000, 0, "", payload_type, Vec::new()), RtpCodecKind::Audio)?;
    Ok(engine)
}

/// The profile answered when a camera's offer names none: Constrained Baseline 3.1, the ingest's
/// own default.
const DEFAULT_PROFILE_LEVEL_ID: &str = "42e01f";

/// What a camera's offer proposes that the recorder can take.
#[derive(Debug, Default, PartialEq, Eq)]
struct OfferedByCamera {
    /// Of the first H.264 payload type with packetization-mode 1.
    profile_level_id: Option<String>,
    /// The first of PCMU and PCMA offered.
    g711: Option<Codec>,
}

impl OfferedByCamera {
    fn parse(offer_sdp: &str) -> Self {
        let mut offered = Self::default();
        let mut h264_payload_types = Vec::new();
        for line in offer_sdp.lines() {
            if let Some(map) = line.strip_prefix("a=rtpmap:") {
                let (payload_type, encoding) = map.split_once(' ').unwrap_or_default();
                match encoding.split('/').next().unwrap_or_default().to_ascii_uppercase().as_str() {
                    "H264" => h264_payload_types.push(payload_type.to_owned()),
                    "PCMU" if offered.g711.is_none() => offered.g711 = Some(Codec::Pcmu),
                    "PCMA" if offered.g711.is_none() => offered.g711 = Some(Codec::Pcma),
                    _ => {}
                }
            }
        }
        for line in offer_sdp.lines() {
            let Some((payload_type, parameters)) = line.strip_prefix("a=fmtp:").and_then(|f| f.split_once(' ')) else {
                continue;
            };
            if !h264_payload_types.iter().any(|pt| pt == payload_type) {
                continue;
            }
            let parameter = |name: &str| {
                parameters.split(';').find_map(|p| p.trim().strip_prefix(name)?.strip_prefix('=')).map(str::trim)
            };
            let profile =
                parameter("profile-level-id").filter(|id| id.len() == 6 && id.chars().all(|c| c.is_ascii_hexdigit()));
            if parameter("packetization-mode") == Some("1")
                && let Some(profile) = profile
            {
                offered.profile_level_id = Some(profile.to_ascii_lowercase());
                break;
            }
        }
        offered
    }
}

fn codec_of(mime_type: &str) -> Option<Codec> {
    match mime_type.to_ascii_lowercase().as_str() {
        "video/vp8" => Some(Codec::Vp8),
        "video/vp9" => Some(Codec::Vp9),
        "audio/opus" => Some(Codec::Opus),
        "video/h264" => Some(Codec::H264),
        "audio/pcmu" => Some(Codec::Pcmu),
        "audio/pcma" => Some(Codec::Pcma),
        _ => None,
    }
}

struct Handler {
    media_tx: mpsc::Sender<Received>,
    candidate_tx: mpsc::UnboundedSender<IceCandidate>,
    tracks: TrackMap,
    dropped: Arc<AtomicU64>,
    next_index: AtomicUsize,
}

impl Handler {
    async fn track_started(&self, track: Arc<dyn TrackRemote>) {
        let ssrcs = track.ssrcs().await;
        let Some(&ssrc) = ssrcs.first() else {
            tracing::warn!("a remote track without SSRC is ignored");
            return;
        };
        let mime_type = track.codec(ssrc).await.map(|codec| codec.mime_type).unwrap_or_default();
        let Some(codec) = codec_of(&mime_type) else {
            tracing::warn!(track.mime_type = %mime_type, "a remote track with an unsupported codec is ignored");
            return;
        };
        let remote = RemoteTrack { index: self.next_index.fetch_add(1, Ordering::Relaxed), codec, ssrc };
        {
            let mut tracks = self.tracks.lock().expect("track map poisoned");
            for ssrc in ssrcs {
                tracks.insert(ssrc, Arc::clone(&track));
            }
        }
        tokio::spawn(forward_track(track, remote, self.media_tx.clone(), Arc::clone(&self.dropped)));
    }
}

/// Forwards one track's packets until it ends. Never waits for the channel: a full channel drops
/// (and counts) the packet, as the network would.
async fn forward_track(
    track: Arc<dyn TrackRemote>,
    remote: RemoteTrack,
    media_tx: mpsc::Sender<Received>,
    dropped: Arc<AtomicU64>,
) {
    while let Some(event) = track.poll().await {
        let at = Instant::now();
        let items: Vec<Media> = match event {
            TrackRemoteEvent::OnRtpPacket(packet) => vec![Media::Rtp(RtpPacket {
                sequence_number: packet.header.sequence_number,
                timestamp: packet.header.timestamp,
                ssrc: packet.header.ssrc,
                marker: packet.header.marker,
                payload_type: packet.header.payload_type,
                payload: packet.payload.to_vec(),
            })],
            TrackRemoteEvent::OnRtcpPacket(packets) => packets
                .iter()
                .filter_map(|packet| packet.as_any().downcast_ref::<rtc::rtcp::sender_report::SenderReport>())
                .map(|report| {
                    Media::SenderReport(SenderReport { ntp_time: report.ntp_time, rtp_timestamp: report.rtp_time })
                })
                .collect(),
            TrackRemoteEvent::OnEnded => break,
            _ => Vec::new(),
        };
        for media in items {
            if media_tx.try_send(Received { track: remote, at, media }).is_err() {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let _ = media_tx.send(Received { track: remote, at: Instant::now(), media: Media::Ended }).await;
}

type BoxFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

// `PeerConnectionEventHandler` is an `async_trait` trait; these are the signatures that macro
// would write, spelled out to avoid a dependency for two methods.
impl PeerConnectionEventHandler for Handler {
    fn on_track<'life0, 'async_trait>(&'life0 self, track: Arc<dyn TrackRemote>) -> BoxFuture<'async_trait>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.track_started(track))
    }

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_camera_offer_names_its_h264_profile_and_g711_variant() {
        let offer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=rtpmap:96 H264/90000\r\n\
                     a=fmtp:96 packetization-mode=0;profile-level-id=640028\r\na=rtpmap:102 H264/90000\r\n\
                     a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4D001F\r\n\
                     m=audio 9 UDP/TLS/RTP/SAVPF 8\r\na=rtpmap:8 PCMA/8000\r\n";
        let offered = OfferedByCamera::parse(offer);
        assert_eq!(offered, OfferedByCamera { profile_level_id: Some("4d001f".into()), g711: Some(Codec::Pcma) });
        assert_eq!(
            OfferedByCamera::parse("m=video 9 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n"),
            OfferedByCamera::default()
        );
        let hostile = "a=rtpmap:1 H264/90000\r\na=fmtp:1 packetization-mode=1;profile-level-id=zz;\r\na=rtpmap:x\r\n";
        assert_eq!(OfferedByCamera::parse(hostile), OfferedByCamera::default());
    }

    #[test]
    fn cameras_are_recorded_as_matroska_and_everyone_else_as_webm() {
        assert_eq!(Source::of_role("camera"), Source::Camera);
        assert_eq!(Source::of_role("member"), Source::Participant);
        assert_eq!((Source::Camera.file_extension(), Source::Participant.file_extension()), ("mkv", "webm"));
    }
}
