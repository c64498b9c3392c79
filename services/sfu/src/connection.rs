//! One participant's WebRTC connection with the media server, on webrtc-rs's sans-IO `rtc` (the
//! WebRTC stack of the tree; the choice is in docs/design/sfu-stack.md). Each participant has up
//! to two (docs/protocol.md): the one it publishes on, which it offers, and the one it receives
//! on, which the server offers. A participant publishes VP8 and Opus only, so that what one
//! browser sends every other can receive without transcoding; a camera publishes the H.264 and
//! G.711 it has (its profile, [`confab_call::camera_profile`]), and subscribe connections speak
//! all of these, so that each copy goes out in its track's own codec ([`Codecs`]). The server's
//! single host candidate is in every
//! description it makes (no trickling from this side), and its ICE username fragment is its own,
//! so that the shared UDP port can tell connections apart ([`crate::demux`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::rtcp_delivery::DeliverRtcp;
use confab_call::camera_profile::{self, G711};
use rtc::interceptor::{NackGeneratorBuilder, ReceiverReportBuilder, Registry, Slot, TwccReceiverBuilder};
use rtc::peer_connection::configuration::interceptor_registry::configure_simulcast_extension_headers;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::RTCRtpTransceiverDirection;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};

/// Which of a participant's two connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionKind {
    /// The participant sends its media; it offers.
    Publish,
    /// The participant receives everyone else's media; the server offers.
    Subscribe,
}

impl ConnectionKind {
    /// As `Signal.connection` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "publish" => Some(Self::Publish),
            "subscribe" => Some(Self::Subscribe),
            _ => None,
        }
    }
}

/// VP8 as the server forwards it, with the feedback browsers use.
pub fn vp8() -> RTCRtpCodec {
    let feedback = |typ: &str, parameter: &str| RTCPFeedback { typ: typ.to_owned(), parameter: parameter.to_owned() };
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![
            feedback("nack", ""),
            feedback("nack", "pli"),
            feedback("ccm", "fir"),
            feedback("transport-cc", ""),
        ],
    }
}

/// Opus as the server forwards it.
pub fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// RFC 6464's header extension: the level of each audio packet's sound.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// How long a subscribe connection stays disconnected (ICE: nothing heard from the participant
/// for 5 s) before it fails: the server then ends it and, if the participant is still in the
/// call, offers it a fresh one. A page that reloaded (it resumes the participant's peer id, with
/// no connection of its own) gets its media again that way about 8 s later; a viewer has no
/// offer of its own to make that would tell the server sooner. webrtc-rs's default is 25 s.
const SUBSCRIBE_FAILS_AFTER: Duration = Duration::from_secs(3);

/// The payload types the server offers its codecs at.
const VP8_PAYLOAD_TYPE: u8 = 96;
const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Subscribe connections' H.264 entries, one payload type each, from here up.
const FIRST_H264_PAYLOAD_TYPE: u8 = 97;

/// The H.264 profiles (`profile_idc` and constraint flags, as `profile-level-id`'s first four hex
/// digits) a subscribe connection can carry besides those of the room's cameras when it was
/// made: constrained baseline (as two encoders flag it), baseline, main (with and without constraint_set1, which x264
/// sets), constrained high and high. webrtc-rs tells H.264 formats apart by these two bytes.
const H264_PROFILES: [&str; 7] = ["42e0", "42c0", "4200", "4d40", "4d00", "640c", "6400"];
/// The level those are stated at: 5.2, the highest of H.264's levels before 6, so a stream of
/// any camera's level fits under it.
const ANY_LEVEL: &str = "34";

/// What a connection's media engine speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codecs {
    /// A participant's publish connection: VP8 and Opus.
    Participant,
    /// A camera's publish connection: H.264 (packetization-mode 1) at its own
    /// `profile-level-id`, and its G.711 variant if it has audio.
    Camera { profile_level_id: String, audio: Option<G711> },
    /// A subscribe connection: VP8, Opus, PCMU and PCMA, and H.264 at the `profile-level-id`s of
    /// the room's cameras first (so their copies are offered at exactly the camera's), then at
    /// [`H264_PROFILES`] (a camera that publishes later gets its profile at level 5.2: webrtc-rs
    /// cannot add a format to a connection once made).
    Subscriber { camera_profiles: Vec<String> },
}

impl Codecs {
    fn register(&self, media_engine: &mut MediaEngine) -> Result<(), rtc::shared::error::Error> {
        let mut register = |rtp_codec: RTCRtpCodec, payload_type: u8, kind: RtpCodecKind| {
            media_engine.register_codec(RTCRtpCodecParameters { rtp_codec, payload_type }, kind)
        };
        match self {
            Self::Participant => {
                register(vp8(), VP8_PAYLOAD_TYPE, RtpCodecKind::Video)?;
                register(opus(), OPUS_PAYLOAD_TYPE, RtpCodecKind::Audio)?;
            }
            Self::Camera { profile_level_id, audio } => {
                let h264 = camera_profile::h264(profile_level_id);
                register(h264.rtp_codec, h264.payload_type, RtpCodecKind::Video)?;
                if let Some(audio) = audio {
                    let g711 = camera_profile::g711(*audio);
                    register(g711.rtp_codec, g711.payload_type, RtpCodecKind::Audio)?;
                }
            }
            Self::Subscriber { camera_profiles } => {
                register(vp8(), VP8_PAYLOAD_TYPE, RtpCodecKind::Video)?;
                register(opus(), OPUS_PAYLOAD_TYPE, RtpCodecKind::Audio)?;
                for g711 in [G711::Pcmu, G711::Pcma].map(camera_profile::g711) {
                    register(g711.rtp_codec, g711.payload_type, RtpCodecKind::Audio)?;
                }
                let mut profiles: Vec<String> = Vec::new();
                let any_level = H264_PROFILES.iter().map(|profile| format!("{profile}{ANY_LEVEL}"));
                for profile in camera_profiles.iter().cloned().chain(any_level) {
                    if !profiles.contains(&profile) {
                        profiles.push(profile);
                    }
                }
                let payload_types = (FIRST_H264_PAYLOAD_TYPE..).filter(|pt| *pt != OPUS_PAYLOAD_TYPE);
                for (profile, payload_type) in profiles.iter().zip(payload_types).take_while(|(_, pt)| *pt < 128) {
                    register(camera_profile::h264(profile).rtp_codec, payload_type, RtpCodecKind::Video)?;
                }
            }
        }
        Ok(())
    }
}

/// A new connection of the server's, speaking `codecs`, answering to `ufrag` / `password`, with
/// one host candidate at `address` (what participants reach the shared port at).
pub fn new_peer_connection(
    kind: ConnectionKind,
    codecs: &Codecs,
    address: SocketAddr,
    ufrag: &str,
    password: &str,
    now: Instant,
) -> Result<RTCPeerConnection, rtc::shared::error::Error> {
    let mut media_engine = MediaEngine::default();
    codecs.register(&mut media_engine)?;
    // Each audio packet's level, for the room's active speaker (crate::speakers).
    media_engine.register_header_extension(
        RTCRtpHeaderExtensionCapability { uri: AUDIO_LEVEL_URI.to_owned() },
        RtpCodecKind::Audio,
        None,
    )?;
    // What webrtc-rs's default interceptors negotiate (NACK and PLI, which `vp8` states, the
    // mid/rid extensions simulcast is received by, TWCC feedback and its extension), but on each
    // connection only the interceptors its direction uses: every one in the chain handles every
    // packet, and a subscribe connection sends each forwarded copy through its chain.
    // The extensions are registered in the order the defaults registered them, so that
    // descriptions keep their extension ids.
    let registry = match kind {
        // It receives: asks for lost packets, reports arrival times (TWCC) and reception.
        ConnectionKind::Publish => {
            configure_simulcast_extension_headers(&mut media_engine)?;
            negotiate_twcc(&mut media_engine)?;
            Registry::new()
                .with(Slot::NackGenerator, NackGeneratorBuilder::new().build())
                .with(Slot::TwccReceiver, TwccReceiverBuilder::new().build())
                .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build())
        }
        // It sends, and none of webrtc-rs's interceptors: each would handle every forwarded copy.
        // The server numbers packets for TWCC and estimates the bandwidth from the feedback
        // itself ([`crate::send_side`]), and answers the subscriber's NACKs from the publishers'
        // packet caches, one per published stream (`crate::forward::PacketCache`), where
        // webrtc-rs's responder would keep every forwarded packet again per copy. Nor webrtc-rs's
        // pacer: it would hold forwarded packets to the estimate (seconds of queue when the
        // estimate lags), while the server already fits what it forwards to the estimate by
        // choosing layers.
        ConnectionKind::Subscribe => {
            negotiate_twcc(&mut media_engine)?;
            configure_simulcast_extension_headers(&mut media_engine)?;
            Registry::new()
        }
    };
    // The RTCP the server reads itself, in place of webrtc-rs's sender reports.
    let registry = registry.with(Slot::SenderReport, DeliverRtcp::default());
    let settings = SettingEngineBuilder::new()
        .with_ice_credentials(ufrag.to_owned(), password.to_owned())
        .with_answering_dtls_role(RTCDtlsRole::Server)
        // A participant is mostly learned from its own checks (a peer-reflexive candidate) before
        // its trickled candidates arrive, if they are usable at all (mDNS names): on the one port
        // the server has, that pair is as good as any, so it is nominated at once instead of
        // after the default second (the subscribe connection, where the server nominates).
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
        .with_ice_timeouts(None, (kind == ConnectionKind::Subscribe).then_some(SUBSCRIBE_FAILS_AFTER), None)
        .build();
    let mut connection = RTCPeerConnectionBuilder::new()
        .with_setting_engine(settings)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(now)?;
    add_host_candidate(&mut connection, address)?;
    if kind == ConnectionKind::Subscribe {
        offer_every_codec(&mut connection)?;
    }
    Ok(connection)
}

/// Opens a subscribe connection with one `inactive` section of each kind that lists every codec
/// the connection speaks, and never carries a track. webrtc-rs settles which codecs of a kind a
/// connection may send at the first answer, from that answer's first section of the kind: were
/// that a copy's section (one codec), a connection whose first copy was a camera's H.264 could
/// never carry a participant's VP8 afterwards, nor the other way round.
fn offer_every_codec(connection: &mut RTCPeerConnection) -> Result<(), rtc::shared::error::Error> {
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        let id = connection.add_transceiver_from_kind(kind, None)?;
        if let Some(mut section) = connection.rtp_transceiver(id) {
            section.set_direction(RTCRtpTransceiverDirection::Inactive);
        }
    }
    Ok(())
}

/// TWCC feedback and its header extension for both codecs, as webrtc-rs's `configure_twcc` states
/// them in descriptions.
fn negotiate_twcc(media_engine: &mut MediaEngine) -> Result<(), rtc::shared::error::Error> {
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        media_engine.register_feedback(RTCPFeedback { typ: "transport-cc".to_owned(), parameter: String::new() }, kind);
        let extension = RTCRtpHeaderExtensionCapability { uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned() };
        media_engine.register_header_extension(extension, kind, None)?;
    }
    Ok(())
}

/// Gives a webrtc-rs sans-IO connection its one ICE candidate: a UDP host candidate at
/// `address`, the socket the caller drives it over (the server's shared port; a test's or a load
/// tool's peer's own).
pub fn add_host_candidate(
    connection: &mut RTCPeerConnection,
    address: SocketAddr,
) -> Result<(), rtc::shared::error::Error> {
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
    .new_candidate_host()?;
    connection.add_local_candidate(RTCIceCandidate::from(&candidate).to_json()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_kinds_read_as_the_protocol_names_them() {
        for kind in [ConnectionKind::Publish, ConnectionKind::Subscribe] {
            assert_eq!(ConnectionKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ConnectionKind::parse("Publish"), None);
        assert_eq!(ConnectionKind::parse(""), None);
    }
}
