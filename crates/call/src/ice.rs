//! ICE servers and trickled candidates between the signaling protocol's types (a browser's
//! `RTCIceServer` and `RTCIceCandidateInit`) and webrtc-rs's.
//!
//! Every candidate a service sends names the media section it belongs to, by `sdp_mid` and
//! `sdp_mline_index` both: W3C `addIceCandidate` and other stacks (aiortc) refuse a candidate
//! with neither. webrtc-rs does not know it (its `RTCIceCandidateInit` says mid `""`, index 0
//! whatever the SDP), so the section is read from the local description: the services bundle
//! every m-line on one transport, whose candidates belong to the bundle's first m-line.

use std::io::Cursor;

use confab_protocol::signal::{IceCandidate, IceServer};
use rtc::sdp::SessionDescription;
use webrtc::peer_connection::{RTCIceCandidateInit, RTCIceServer, RTCPeerConnectionIceEvent};

/// The servers of a `welcome`, as webrtc-rs configures them.
pub fn rtc_ice_servers(servers: &[IceServer]) -> Vec<RTCIceServer> {
    let server = |s: &IceServer| RTCIceServer {
        urls: s.urls.clone(),
        username: s.username.clone(),
        credential: s.credential.clone(),
    };
    servers.iter().map(server).collect()
}

/// A candidate a peer trickled, as webrtc-rs takes it (an index past `u16` is left out).
pub fn rtc_candidate(candidate: IceCandidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: candidate.candidate,
        sdp_mid: candidate.sdp_mid,
        sdp_mline_index: candidate.sdp_mline_index.and_then(|index| u16::try_from(index).ok()),
        username_fragment: Some(candidate.username_fragment).filter(|ufrag| !ufrag.is_empty()),
        ..RTCIceCandidateInit::default()
    }
}

/// A local candidate webrtc-rs gathered, without its section (see [`MediaSection::place`]);
/// `None` (logged) if it cannot be written out.
pub(crate) fn gathered(event: &RTCPeerConnectionIceEvent) -> Option<IceCandidate> {
    match event.candidate.to_json() {
        Ok(init) => Some(IceCandidate { candidate: init.candidate, ..IceCandidate::default() }),
        Err(error) => {
            tracing::warn!(error = %error, "a local ICE candidate could not be serialised");
            None
        }
    }
}

/// The media section (m-line) an SDP's ICE candidates belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// Its `a=mid`; `None` only for an SDP that names no mids.
    pub mid: Option<String>,
    /// Its position among the m-lines, from 0.
    pub mline_index: u32,
}

impl MediaSection {
    /// Where the candidates of the connection with local description `sdp` belong: the first
    /// m-line of its first `a=group:BUNDLE` (the transport all bundled m-lines share), else the
    /// first m-line. Never fails: an SDP that does not parse gives index 0 without a mid.
    pub fn of_candidates(sdp: &str) -> Self {
        let Ok(description) = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes())) else {
            return Self { mid: None, mline_index: 0 };
        };
        let mids: Vec<Option<&str>> =
            description.media_descriptions.iter().map(|media| media.attribute("mid").flatten()).collect();
        let bundle_tag = description
            .attribute("group")
            .and_then(|group| group.strip_prefix("BUNDLE"))
            .and_then(|tags| tags.split_whitespace().next());
        let index = bundle_tag.and_then(|tag| mids.iter().position(|mid| *mid == Some(tag))).unwrap_or(0);
        Self {
            mid: mids.get(index).copied().flatten().map(str::to_owned),
            mline_index: u32::try_from(index).unwrap_or_default(),
        }
    }

    /// `candidate`, said to belong to this section.
    pub fn place(&self, candidate: IceCandidate) -> IceCandidate {
        IceCandidate { sdp_mid: self.mid.clone(), sdp_mline_index: Some(self.mline_index), ..candidate }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> IceCandidate {
        IceCandidate { candidate: "candidate:1 1 udp 2130706431 192.0.2.1 50000 typ host".into(), ..Default::default() }
    }

    fn sdp(body: &str) -> String {
        format!("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n{body}")
    }

    #[test]
    fn a_candidate_names_the_first_bundled_section_by_mid_and_index() {
        let answer = sdp("a=group:BUNDLE 0 1\r\n\
                          m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\n\
                          m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=recvonly\r\n");
        let section = MediaSection::of_candidates(&answer);
        assert_eq!(section, MediaSection { mid: Some("0".into()), mline_index: 0 });
        let placed = section.place(local());
        assert_eq!((placed.sdp_mid.as_deref(), placed.sdp_mline_index), (Some("0"), Some(0)));
        let json = serde_json::to_value(&placed).unwrap();
        assert_eq!(json, serde_json::json!({"candidate": local().candidate, "sdp_mid": "0", "sdp_mline_index": 0}));
    }

    #[test]
    fn the_bundle_tag_decides_when_it_is_not_the_first_m_line() {
        let answer = sdp("a=group:BUNDLE video audio\r\nm=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n\
                          a=mid:data\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:audio\r\n\
                          m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:video\r\n");
        let section = MediaSection::of_candidates(&answer);
        assert_eq!(section, MediaSection { mid: Some("video".into()), mline_index: 2 });
    }

    #[test]
    fn without_bundle_or_mids_the_first_m_line_by_index_only() {
        let unbundled = sdp("m=video 9 RTP/AVP 96\r\na=mid:v\r\nm=audio 9 RTP/AVP 0\r\na=mid:a\r\n");
        assert_eq!(MediaSection::of_candidates(&unbundled), MediaSection { mid: Some("v".into()), mline_index: 0 });
        let no_mids = sdp("a=group:BUNDLE x\r\nm=video 9 RTP/AVP 96\r\n");
        let section = MediaSection::of_candidates(&no_mids);
        assert_eq!(section, MediaSection { mid: None, mline_index: 0 });
        let json = serde_json::to_value(section.place(local())).unwrap();
        assert_eq!(json["sdp_mline_index"], 0);
        assert!(json.get("sdp_mid").is_none());
        for garbage in ["", "not sdp", "v=0\r\nm=\r\n"] {
            assert_eq!(MediaSection::of_candidates(garbage), MediaSection { mid: None, mline_index: 0 });
        }
    }

    #[test]
    fn a_received_candidate_keeps_what_it_says() {
        let full: IceCandidate =
            serde_json::from_str(r#"{"candidate": "candidate:x", "sdp_mid": "0", "sdp_mline_index": 0}"#).unwrap();
        let init = rtc_candidate(full);
        assert_eq!((init.sdp_mid.as_deref(), init.sdp_mline_index), (Some("0"), Some(0)));
        let bare = rtc_candidate(serde_json::from_str(r#"{"candidate": "candidate:x"}"#).unwrap());
        assert_eq!((bare.sdp_mid, bare.sdp_mline_index, bare.username_fragment), (None, None, None));
        let huge = rtc_candidate(serde_json::from_str(r#"{"candidate": "c", "sdp_mline_index": 70000}"#).unwrap());
        assert_eq!(huge.sdp_mline_index, None);
    }
}
