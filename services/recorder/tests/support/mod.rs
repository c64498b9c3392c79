//! A participant-like webrtc-rs peer for the recorder's tests: sends synthetic VP8 (with real
//! keyframe headers) and Opus from send-only tracks, and reports its candidates and connection.
//! Each test binary uses a part of it.
#![allow(dead_code, unused_imports)]

use std::future::Future;
use std::io::Cursor;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_recorder::capture::Capture;
use confab_recorder::media::Codec;
use confab_recorder::peer::{Answered, IceCandidate, Media, PeerConfig, ReceivePeer};
use matroska_demuxer::{Frame as ReadFrame, MatroskaFile};
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateInit,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
    register_default_interceptors,
};
use webrtc::rtp_transceiver::RtpTransceiver;

pub const WIDTH: u16 = 640;
pub const HEIGHT: u16 = 360;
pub const VIDEO_FRAMES: usize = 90;
pub const AUDIO_FRAMES: usize = 150;
pub const VIDEO_SSRC: u32 = 0x1111_0001;
pub const AUDIO_SSRC: u32 = 0x2222_0002;

pub type BoxFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// The participant side's events: its local candidates and whether it is connected.
pub struct SenderHandler {
    candidates: mpsc::UnboundedSender<RTCIceCandidateInit>,
    connected: watch::Sender<bool>,
}

impl PeerConnectionEventHandler for SenderHandler {
    fn on_ice_candidate<'life0, 'async_trait>(&'life0 self, event: RTCPeerConnectionIceEvent) -> BoxFuture<'async_trait>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            if let Ok(init) = event.candidate.to_json() {
                let _ = self.candidates.send(init);
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
            if state == RTCPeerConnectionState::Connected {
                let _ = self.connected.send(true);
            }
        })
    }
}

pub fn loopback_config() -> PeerConfig {
    PeerConfig {
        bind_addrs: vec!["127.0.0.1:0".to_owned()],
        include_loopback_candidates: true,
        ..PeerConfig::default()
    }
}

pub fn codec(mime_type: &str, clock_rate: u32, channels: u16) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: mime_type.to_owned(),
        clock_rate,
        channels,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

pub fn sample_track(kind: RtpCodecKind, ssrc: u32, codec: RTCRtpCodec) -> Arc<TrackLocalStaticSample> {
    let track = MediaStreamTrack::new(
        "participant".to_owned(),
        format!("{kind}-track"),
        format!("{kind}"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec,
            ..Default::default()
        }],
    );
    Arc::new(TrackLocalStaticSample::new(Instant::now(), track).unwrap())
}

/// A VP8 keyframe: frame tag (key_frame bit 0, show_frame), start code, 14-bit sizes, filler.
pub fn vp8_keyframe(len: usize) -> Vec<u8> {
    let tag: u32 = ((len as u32) << 5) | (1 << 4);
    let mut data = tag.to_le_bytes()[..3].to_vec();
    data.extend_from_slice(&[0x9d, 0x01, 0x2a]);
    data.extend_from_slice(&WIDTH.to_le_bytes());
    data.extend_from_slice(&HEIGHT.to_le_bytes());
    data.resize(len, 0x55);
    data
}

pub fn vp8_delta(len: usize) -> Vec<u8> {
    let tag: u32 = ((len as u32) << 5) | (1 << 4) | 1;
    let mut data = tag.to_le_bytes()[..3].to_vec();
    data.resize(len, 0x33);
    data
}

pub struct SenderPeer {
    pub connection: Arc<dyn PeerConnection>,
    pub candidates: mpsc::UnboundedReceiver<RTCIceCandidateInit>,
    pub connected: watch::Receiver<bool>,
}

/// A participant-like peer; like a browser it sends sender reports and answers NACKs and PLIs.
pub async fn sender_peer(mut media_engine: MediaEngine) -> SenderPeer {
    let (candidates_tx, candidates) = mpsc::unbounded_channel();
    let (connected_tx, connected) = watch::channel(false);
    let registry = register_default_interceptors(Registry::new(), &mut media_engine).unwrap();
    let connection = PeerConnectionBuilder::new()
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(SettingEngineBuilder::new().with_include_loopback_candidate(true).build())
        .with_handler(Arc::new(SenderHandler { candidates: candidates_tx, connected: connected_tx }))
        .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
        .build()
        .await
        .unwrap();
    SenderPeer { connection: Arc::new(connection), candidates, connected }
}

/// Adds `track` send-only.
pub async fn add_send_only(
    connection: &Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticSample>,
) -> Arc<dyn RtpTransceiver> {
    let init = RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Sendonly, ..Default::default() };
    connection.add_transceiver_from_track(track, Some(init)).await.unwrap()
}

/// The payload type negotiated for a transceiver's sender (known once the answer is applied).
pub async fn payload_type(transceiver: &Arc<dyn RtpTransceiver>) -> u8 {
    let sender = transceiver.sender().await.unwrap().expect("a sender");
    sender.get_parameters().await.unwrap().rtp_parameters.codecs[0].payload_type
}

pub async fn send_video(track: Arc<TrackLocalStaticSample>, payload_type: u8) {
    let mut ticker = tokio::time::interval(Duration::from_millis(33));
    for n in 0..VIDEO_FRAMES {
        ticker.tick().await;
        let data = match n {
            n if n % 30 == 0 => vp8_keyframe(4_000),
            n if n % 3 == 0 => vp8_delta(1_800),
            _ => vp8_delta(400),
        };
        let sample = Sample { data: data.into(), duration: Duration::from_millis(33), ..Sample::new(Instant::now()) };
        track.sample_writer(VIDEO_SSRC, payload_type).write_sample(&sample).await.unwrap();
    }
}

pub async fn send_audio(track: Arc<TrackLocalStaticSample>, payload_type: u8) {
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..AUDIO_FRAMES {
        ticker.tick().await;
        let mut data = vec![0xfc];
        data.resize(81, 0x11);
        let sample = Sample { data: data.into(), duration: Duration::from_millis(20), ..Sample::new(Instant::now()) };
        track.sample_writer(AUDIO_SSRC, payload_type).write_sample(&sample).await.unwrap();
    }
}

pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
