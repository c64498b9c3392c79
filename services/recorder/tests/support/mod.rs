//! Synthetic media for the recorder's tests to send (the sending peer is
//! `confab_testkit::SenderPeer`, the committed clips are `confab_testkit::media`): VP8 with real
//! keyframe headers and Opus for send-only tracks; `camera` makes an RTSP camera's H.264 and PCMU.
//! Each test binary uses a part of it.
#![allow(dead_code)]

pub mod camera;

use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_recorder::peer::PeerConfig;
pub use confab_testkit::TempDir;
pub use confab_testkit::media::*;
use rtc::media::Sample;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;

pub const WIDTH: u16 = 640;
pub const HEIGHT: u16 = 360;
pub const VIDEO_FRAMES: usize = 90;
pub const AUDIO_FRAMES: usize = 150;

pub fn loopback_config() -> PeerConfig {
    PeerConfig {
        bind_addrs: vec!["127.0.0.1:0".to_owned()],
        include_loopback_candidates: true,
        ..PeerConfig::default()
    }
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
