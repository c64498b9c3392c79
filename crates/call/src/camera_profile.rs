//! What a camera's connection carries, defined once for both of its ends: the ingest offers it
//! and the recorder answers it. H.264 with packetization-mode 1 at the camera's own profile and
//! level (webrtc-rs matches H.264 by profile, so both ends must name the same one), and the
//! camera's G.711 variant; nothing is transcoded.

use std::io::Cursor;

use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters};
use rtc::sdp::SessionDescription;

/// The profile and level offered (and answered) when the camera's SPS does not tell:
/// Constrained Baseline 3.1.
pub const DEFAULT_PROFILE_LEVEL_ID: &str = "42e01f";

const H264_PAYLOAD_TYPE: u8 = 102;

/// A camera's audio codec, forwarded as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711 {
    Pcmu,
    Pcma,
}

impl G711 {
    /// From an SDP encoding name (`PCMU`/`PCMA`, any case).
    pub fn from_encoding_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "pcmu" => Some(G711::Pcmu),
            "pcma" => Some(G711::Pcma),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            G711::Pcmu => "pcmu",
            G711::Pcma => "pcma",
        }
    }
}

/// H.264, packetization-mode 1, at `profile_level_id` (six hex digits).
pub fn h264(profile_level_id: &str) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "video/H264".to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: format!(
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile_level_id}"
            ),
            rtcp_feedback: video_feedback(),
        },
        payload_type: H264_PAYLOAD_TYPE,
    }
}

/// G.711 at its static payload type.
pub fn g711(codec: G711) -> RTCRtpCodecParameters {
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

/// The RTCP feedback video is negotiated with: bandwidth estimates, keyframe requests, NACKs.
pub fn video_feedback() -> Vec<RTCPFeedback> {
    [("goog-remb", ""), ("ccm", "fir"), ("nack", ""), ("nack", "pli")]
        .into_iter()
        .map(|(typ, parameter)| RTCPFeedback { typ: typ.to_owned(), parameter: parameter.to_owned() })
        .collect()
}

/// What a camera's offer proposes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CameraOffer {
    /// Of the first H.264 payload type (in m-line order) with packetization-mode 1, lower case.
    pub profile_level_id: Option<String>,
    /// Every H.264 profile offered with packetization-mode 1, in order, each once (the media
    /// server's subscribe offers list several).
    pub h264_profiles: Vec<String>,
    /// The first of PCMU and PCMA offered.
    pub g711: Option<G711>,
}

impl CameraOffer {
    /// Reads an offer; what does not parse offers nothing.
    pub fn parse(offer_sdp: &str) -> Self {
        let mut offered = Self::default();
        let Ok(description) = SessionDescription::unmarshal(&mut Cursor::new(offer_sdp.as_bytes())) else {
            return offered;
        };
        for media in &description.media_descriptions {
            let codecs = media.codecs();
            let in_order = media.media_name.formats.iter().filter_map(|format| format.parse::<u8>().ok());
            for codec in in_order.filter_map(|payload_type| codecs.get(&payload_type)) {
                if codec.name.eq_ignore_ascii_case("H264") {
                    let Some(profile) = packetization_mode_1_profile(&codec.fmtp) else { continue };
                    offered.profile_level_id.get_or_insert_with(|| profile.clone());
                    if !offered.h264_profiles.contains(&profile) {
                        offered.h264_profiles.push(profile);
                    }
                } else if offered.g711.is_none() {
                    offered.g711 = G711::from_encoding_name(&codec.name);
                }
            }
        }
        offered
    }
}

/// The `profile-level-id` of H.264 format parameters with packetization-mode 1, lower case.
pub fn packetization_mode_1_profile(fmtp: &str) -> Option<String> {
    let parameter =
        |name: &str| fmtp.split(';').find_map(|p| p.trim().strip_prefix(name)?.strip_prefix('=')).map(str::trim);
    let profile = parameter("profile-level-id").filter(|id| id.len() == 6 && id.chars().all(|c| c.is_ascii_hexdigit()));
    profile.filter(|_| parameter("packetization-mode") == Some("1")).map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(body: &str) -> String {
        format!("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n{body}")
    }

    #[test]
    fn a_camera_offer_names_its_h264_profile_and_g711_variant() {
        let sdp = offer(
            "m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=rtpmap:96 H264/90000\r\n\
             a=fmtp:96 packetization-mode=0;profile-level-id=640028\r\na=rtpmap:102 H264/90000\r\n\
             a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4D001F\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 8 0\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n",
        );
        let offered = CameraOffer::parse(&sdp);
        let profiles = vec!["4d001f".to_owned()];
        let expected =
            CameraOffer { profile_level_id: Some("4d001f".into()), h264_profiles: profiles, g711: Some(G711::Pcma) };
        assert_eq!(offered, expected);
    }

    #[test]
    fn what_the_ingest_offers_the_recorder_reads_back() {
        let (video, audio) = (h264("640028"), g711(G711::Pcmu));
        let sdp = offer(&format!(
            "m=video 9 UDP/TLS/RTP/SAVPF {vpt}\r\na=rtpmap:{vpt} H264/90000\r\na=fmtp:{vpt} {fmtp}\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF {apt}\r\na=rtpmap:{apt} PCMU/8000\r\n",
            vpt = video.payload_type,
            fmtp = video.rtp_codec.sdp_fmtp_line,
            apt = audio.payload_type,
        ));
        assert_eq!(
            CameraOffer::parse(&sdp),
            CameraOffer {
                profile_level_id: Some("640028".into()),
                h264_profiles: vec!["640028".into()],
                g711: Some(G711::Pcmu)
            }
        );
    }

    #[test]
    fn a_media_servers_offer_lists_each_h264_profile_once() {
        let sdp = offer(
            "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 H264/90000\r\n\
             a=fmtp:97 packetization-mode=1;profile-level-id=42e01f\r\na=rtpmap:98 H264/90000\r\n\
             a=fmtp:98 packetization-mode=1;profile-level-id=4d0034\r\na=rtpmap:99 H264/90000\r\n\
             a=fmtp:99 packetization-mode=1;profile-level-id=42E01F\r\n",
        );
        let offered = CameraOffer::parse(&sdp);
        assert_eq!(offered.profile_level_id.as_deref(), Some("42e01f"));
        assert_eq!(offered.h264_profiles, ["42e01f", "4d0034"]);
    }

    #[test]
    fn other_codecs_bad_profiles_and_garbage_offer_nothing() {
        let vp8 = offer("m=video 9 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n");
        assert_eq!(CameraOffer::parse(&vp8), CameraOffer::default());
        let bad_profile = offer(
            "m=video 9 RTP/AVP 1\r\na=rtpmap:1 H264/90000\r\na=fmtp:1 packetization-mode=1;profile-level-id=zz;\r\n",
        );
        assert_eq!(CameraOffer::parse(&bad_profile), CameraOffer::default());
        for garbage in ["", "a=rtpmap:x\r\n", "v=0\r\nm=video\r\n"] {
            assert_eq!(CameraOffer::parse(garbage), CameraOffer::default());
        }
    }
}
