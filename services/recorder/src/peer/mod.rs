//! The recorder's receiving end of one send-only WebRTC connection (webrtc-rs): a participant's
//! own, or the media server's, which carries every publisher's tracks. It answers the offer
//! accepting VP8, VP9 and Opus only (a camera's: the H.264 profile it offers, packetization-mode
//! 1, and PCMU or PCMA; the media server's: all of those), trickles ICE candidates both ways and
//! forwards every RTP packet and RTCP sender report, stamped with its arrival time and its
//! track's stream id, to one channel per connection. It holds no media logic: the receiver of
//! that channel feeds [`crate::media::Participant`], which decides what a frame is and when to
//! ask for a keyframe ([`ReceivePeer::request_keyframe`]).

mod rtcp;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use confab_call::camera_profile::{self, CameraOffer, DEFAULT_PROFILE_LEVEL_ID, G711, video_feedback};
pub use confab_call::{IceCandidate, IceServer};
use confab_domain::CallRole;
use rtc::interceptor::Slot;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, RTCConfigurationBuilder, RTCSessionDescription, Registry,
    SettingEngineBuilder, register_default_interceptors,
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

/// One item of a connection's media channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub track: RemoteTrack,
    /// The track's stream id (`a=msid`): on the media server's connection, its publisher's peer
    /// id.
    pub stream_id: Arc<str>,
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
        let media_engine = match source {
            Source::Participant => recording_media_engine()?,
            Source::Camera => camera_media_engine(offer_sdp)?,
        };
        Self::answer_with(media_engine, offer_sdp, true, config).await
    }

    /// Like [`ReceivePeer::answer`], for the media server's offer of every publisher's tracks
    /// (each publisher's stream id is its peer id): people's codecs and cameras' are accepted, and
    /// the connection takes further offers as publishers come and go
    /// ([`ReceivePeer::renegotiate`]).
    pub async fn answer_media_server(offer_sdp: &str, config: &PeerConfig) -> Result<Answered, PeerError> {
        Self::answer_with(media_server_media_engine(offer_sdp)?, offer_sdp, false, config).await
    }

    /// `one_of_each`: the offer is a participant's, answered with one audio and one video section.
    async fn answer_with(
        mut media_engine: MediaEngine,
        offer_sdp: &str,
        one_of_each: bool,
        config: &PeerConfig,
    ) -> Result<Answered, PeerError> {
        let (media_tx, media) = mpsc::channel(config.media_channel_capacity.max(1));
        let tracks = TrackMap::default();
        let dropped = Arc::new(AtomicU64::new(0));
        let (handler, events) = confab_call::peer_events();
        let taker = TrackTaker { media_tx, tracks: Arc::clone(&tracks), dropped: Arc::clone(&dropped), next_index: 0 };
        tokio::spawn(taker.take(events.tracks));
        let local_candidates = events.candidates;

        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?
            .with(Slot::from(SENDER_REPORT_SLOT), rtcp::SenderReportForwarder::default());
        let ice_servers = confab_call::rtc_ice_servers(&config.ice_servers);
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

        if one_of_each {
            for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
                let init =
                    RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() };
                if let Err(error) = peer.connection.add_transceiver_from_kind(kind, Some(init)).await {
                    let _ = peer.close().await;
                    return Err(error.into());
                }
            }
        }
        match peer.renegotiate(offer_sdp).await {
            Ok(answer_sdp) => Ok(Answered { peer, answer_sdp, media, local_candidates }),
            Err(error) => {
                let _ = peer.close().await;
                Err(error)
            }
        }
    }

    /// Applies an offer on the connection and answers it: the first, or a later one of the media
    /// server's (each receiving section it offers gets a receiving section in the answer).
    pub async fn renegotiate(&self, offer_sdp: &str) -> Result<String, PeerError> {
        self.connection.set_remote_description(RTCSessionDescription::offer(offer_sdp.to_owned())?).await?;
        let answer = self.connection.create_answer(None).await?;
        let answer_sdp = answer.sdp.clone();
        self.connection.set_local_description(answer).await?;
        Ok(self.connection.local_description().await.map_or(answer_sdp, |description| description.sdp))
    }

    /// Adds a candidate the participant trickled.
    pub async fn add_remote_candidate(&self, candidate: IceCandidate) -> Result<(), PeerError> {
        Ok(self.connection.add_ice_candidate(confab_call::rtc_candidate(candidate)).await?)
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
    engine
        .register_codec(codec("video/VP8", 90_000, 0, "", VP8_PAYLOAD_TYPE, video_feedback()), RtpCodecKind::Video)?;
    let vp9 = codec("video/VP9", 90_000, 0, "profile-id=0", VP9_PAYLOAD_TYPE, video_feedback());
    engine.register_codec(vp9, RtpCodecKind::Video)?;
    engine.register_codec(
        codec("audio/opus", 48_000, 2, "minptime=10;useinbandfec=1", OPUS_PAYLOAD_TYPE, Vec::new()),
        RtpCodecKind::Audio,
    )?;
    Ok(engine)
}

/// The payload types the recorder registers its codecs at (an answer takes the offer's).
const VP8_PAYLOAD_TYPE: u8 = 96;
const VP9_PAYLOAD_TYPE: u8 = 98;
const OPUS_PAYLOAD_TYPE: u8 = 111;
/// The media server's H.264 profiles, one payload type each, from here up.
const FIRST_H264_PAYLOAD_TYPE: u8 = 100;

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

/// For a camera: H.264 with packetization-mode 1 and the profile the camera offered, and the
/// G.711 variant it offered ([`camera_profile`]); nothing else.
fn camera_media_engine(offer_sdp: &str) -> Result<MediaEngine, PeerError> {
    let offered = CameraOffer::parse(offer_sdp);
    let profile_level_id = offered.profile_level_id.as_deref().unwrap_or(DEFAULT_PROFILE_LEVEL_ID);
    let mut engine = MediaEngine::default();
    engine.register_codec(camera_profile::h264(profile_level_id), RtpCodecKind::Video)?;
    engine.register_codec(camera_profile::g711(offered.g711.unwrap_or(G711::Pcmu)), RtpCodecKind::Audio)?;
    Ok(engine)
}

/// For the media server: what people and cameras send, since it forwards both; H.264 in every
/// profile its offer lists (webrtc-rs matches H.264 by profile and settles a connection's formats
/// at its first answer, and the SFU's first offer lists each profile it may ever send).
fn media_server_media_engine(offer_sdp: &str) -> Result<MediaEngine, PeerError> {
    let mut engine = recording_media_engine()?;
    let payload_types = (FIRST_H264_PAYLOAD_TYPE..128).filter(|pt| ![VP9_PAYLOAD_TYPE, OPUS_PAYLOAD_TYPE].contains(pt));
    for (profile, payload_type) in CameraOffer::parse(offer_sdp).h264_profiles.iter().zip(payload_types) {
        let h264 = RTCRtpCodecParameters { payload_type, ..camera_profile::h264(profile) };
        engine.register_codec(h264, RtpCodecKind::Video)?;
    }
    for g711 in [G711::Pcmu, G711::Pcma] {
        engine.register_codec(camera_profile::g711(g711), RtpCodecKind::Audio)?;
    }
    Ok(engine)
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

/// Starts forwarding each remote track as the connection reports it, numbering them.
struct TrackTaker {
    media_tx: mpsc::Sender<Received>,
    tracks: TrackMap,
    dropped: Arc<AtomicU64>,
    next_index: usize,
}

impl TrackTaker {
    /// Until the connection is gone.
    async fn take(mut self, mut tracks: mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>) {
        while let Some(track) = tracks.recv().await {
            self.track_started(track).await;
        }
    }

    async fn track_started(&mut self, track: Arc<dyn TrackRemote>) {
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
        let remote = RemoteTrack { index: self.next_index, codec, ssrc };
        let stream_id: Arc<str> = track.stream_id().await.into();
        self.next_index += 1;
        {
            let mut tracks = self.tracks.lock().expect("track map poisoned");
            for ssrc in ssrcs {
                tracks.insert(ssrc, Arc::clone(&track));
            }
        }
        tokio::spawn(forward_track(track, remote, stream_id, self.media_tx.clone(), Arc::clone(&self.dropped)));
    }
}

/// Forwards one track's packets until it ends. Never waits for the channel: a full channel drops
/// (and counts) the packet, as the network would.
async fn forward_track(
    track: Arc<dyn TrackRemote>,
    remote: RemoteTrack,
    stream_id: Arc<str>,
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
            let stream_id = Arc::clone(&stream_id);
            if media_tx.try_send(Received { track: remote, stream_id, at, media }).is_err() {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let _ = media_tx.send(Received { track: remote, stream_id, at: Instant::now(), media: Media::Ended }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cameras_are_recorded_as_matroska_and_everyone_else_as_webm() {
        assert_eq!(Source::of_role("camera"), Source::Camera);
        assert_eq!(Source::of_role("member"), Source::Participant);
        assert_eq!((Source::Camera.file_extension(), Source::Participant.file_extension()), ("mkv", "webm"));
    }
}
