//! ICE servers and trickled candidates as the signaling protocol writes them (a browser's
//! `RTCIceServer` and `RTCIceCandidateInit`, in snake case), and as webrtc-rs takes them.
//!
//! Every candidate a service sends names the media section it belongs to, by `sdp_mid` and
//! `sdp_mline_index` both: W3C `addIceCandidate` and other stacks (aiortc) refuse a candidate
//! with neither. webrtc-rs does not know it (its `RTCIceCandidateInit` says mid `""`, index 0
//! whatever the SDP), so the section is read from the local description: the services bundle
//! every m-line on one transport, whose candidates belong to the bundle's first m-line.

use serde_json::{Value, json};
use webrtc::peer_connection::{RTCIceCandidateInit, RTCIceServer, RTCPeerConnectionIceEvent};

/// One STUN or TURN server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

impl IceServer {
    /// The servers listed in a gateway's `welcome`.
    pub fn from_welcome(welcome: &Value) -> Vec<Self> {
        let servers = welcome["ice_servers"].as_array().into_iter().flatten();
        servers
            .map(|server| {
                let text = |key: &str| server[key].as_str().unwrap_or_default().to_owned();
                let urls = server["urls"].as_array().into_iter().flatten().filter_map(Value::as_str);
                Self {
                    urls: urls.map(str::to_owned).collect(),
                    username: text("username"),
                    credential: text("credential"),
                }
            })
            .collect()
    }

    pub fn to_rtc(&self) -> RTCIceServer {
        RTCIceServer { urls: self.urls.clone(), username: self.username.clone(), credential: self.credential.clone() }
    }
}

/// A trickled ICE candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCandidate {
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_mline_index: Option<u16>,
}

impl IceCandidate {
    /// Reads a signal's `candidate` object; missing fields are empty.
    pub fn from_json(candidate: &Value) -> Self {
        Self {
            candidate: candidate["candidate"].as_str().unwrap_or_default().to_owned(),
            sdp_mid: candidate["sdp_mid"].as_str().map(str::to_owned),
            sdp_mline_index: candidate["sdp_mline_index"].as_u64().and_then(|i| u16::try_from(i).ok()),
        }
    }

    /// The `signal` message that trickles this local candidate to peer `to`, in the media
    /// section `section` of the connection's local description (what webrtc-rs said is ignored).
    pub fn signal_to(&self, to: &str, section: &MediaSection) -> String {
        let mut candidate = json!({"candidate": self.candidate, "sdp_mline_index": section.mline_index});
        if let Some(mid) = &section.mid {
            candidate["sdp_mid"] = json!(mid);
        }
        json!({"signal": {"to": to, "candidate": candidate}}).to_string()
    }

    /// A local candidate webrtc-rs gathered; `None` (logged) if it cannot be written out.
    pub fn gathered(event: &RTCPeerConnectionIceEvent) -> Option<Self> {
        match event.candidate.to_json() {
            Ok(init) => {
                Some(Self { candidate: init.candidate, sdp_mid: init.sdp_mid, sdp_mline_index: init.sdp_mline_index })
            }
            Err(error) => {
                tracing::warn!(error = %error, "a local ICE candidate could not be serialised");
                None
            }
        }
    }

    pub fn into_rtc(self) -> RTCIceCandidateInit {
        RTCIceCandidateInit {
            candidate: self.candidate,
            sdp_mid: self.sdp_mid,
            sdp_mline_index: self.sdp_mline_index,
            ..Default::default()
        }
    }
}

/// The media section (m-line) an SDP's ICE candidates belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// Its `a=mid`; `None` only for an SDP that names no mids.
    pub mid: Option<String>,
    /// Its position among the m-lines, from 0.
    pub mline_index: u16,
}

impl MediaSection {
    /// Where the candidates of the connection with local description `sdp` belong: the first
    /// m-line of its first `a=group:BUNDLE` (the transport all bundled m-lines share), else the
    /// first m-line. Never fails: an SDP without m-lines gives index 0 without a mid.
    pub fn of_candidates(sdp: &str) -> Self {
        let mut bundle_tag: Option<&str> = None;
        let mut mids: Vec<Option<&str>> = Vec::new();
        for line in sdp.lines().map(str::trim_end) {
            if line.starts_with("m=") {
                mids.push(None);
            } else if let Some(mid) = line.strip_prefix("a=mid:") {
                if let Some(last) = mids.last_mut() {
                    *last = Some(mid.trim());
                }
            } else if let Some(group) = line.strip_prefix("a=group:BUNDLE") {
                bundle_tag = bundle_tag.or_else(|| group.split_whitespace().next());
            }
        }
        let tagged = bundle_tag.and_then(|tag| mids.iter().position(|mid| *mid == Some(tag)));
        let index = tagged.unwrap_or(0);
        Self {
            mid: mids.get(index).copied().flatten().map(str::to_owned),
            mline_index: u16::try_from(index).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(candidate: &IceCandidate, section: &MediaSection) -> Value {
        let message: Value = serde_json::from_str(&candidate.signal_to("p1", section)).unwrap();
        assert_eq!(message["signal"]["to"], "p1");
        message["signal"]["candidate"].clone()
    }

    /// What webrtc-rs 0.21 gives for a gathered candidate: mid "" and index 0, whatever the SDP.
    fn from_webrtc_rs() -> IceCandidate {
        IceCandidate {
            candidate: "candidate:1 1 udp 2130706431 192.0.2.1 50000 typ host".into(),
            sdp_mid: Some(String::new()),
            sdp_mline_index: Some(0),
        }
    }

    #[test]
    fn a_candidate_names_the_first_bundled_section_by_mid_and_index() {
        let answer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
                      m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\n\
                      m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=recvonly\r\n";
        let section = MediaSection::of_candidates(answer);
        assert_eq!(section, MediaSection { mid: Some("0".into()), mline_index: 0 });
        let candidate = sent(&from_webrtc_rs(), &section);
        assert_eq!(candidate, json!({"candidate": from_webrtc_rs().candidate, "sdp_mid": "0", "sdp_mline_index": 0}));
    }

    #[test]
    fn the_bundle_tag_decides_when_it_is_not_the_first_m_line() {
        let answer = "v=0\r\na=group:BUNDLE video audio\r\nm=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n\
                      a=mid:data\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:audio\r\n\
                      m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:video\r\n";
        let section = MediaSection::of_candidates(answer);
        assert_eq!(section, MediaSection { mid: Some("video".into()), mline_index: 2 });
        assert_eq!(sent(&from_webrtc_rs(), &section)["sdp_mline_index"], 2);
    }

    #[test]
    fn without_bundle_or_mids_the_first_m_line_by_index_only() {
        let unbundled = "v=0\nm=video 9 RTP/AVP 96\na=mid:v\nm=audio 9 RTP/AVP 0\na=mid:a\n";
        assert_eq!(MediaSection::of_candidates(unbundled), MediaSection { mid: Some("v".into()), mline_index: 0 });
        let no_mids = "v=0\r\na=group:BUNDLE x\r\nm=video 9 RTP/AVP 96\r\n";
        let section = MediaSection::of_candidates(no_mids);
        assert_eq!(section, MediaSection { mid: None, mline_index: 0 });
        let candidate = sent(&from_webrtc_rs(), &section);
        assert_eq!(candidate["sdp_mline_index"], 0);
        assert!(candidate.get("sdp_mid").is_none());
        assert_eq!(MediaSection::of_candidates(""), MediaSection { mid: None, mline_index: 0 });
    }

    #[test]
    fn a_received_candidate_keeps_what_it_says() {
        let full = IceCandidate::from_json(&json!({"candidate": "candidate:x", "sdp_mid": "0", "sdp_mline_index": 0}));
        assert_eq!((full.sdp_mid.as_deref(), full.sdp_mline_index), (Some("0"), Some(0)));
        let bare = IceCandidate::from_json(&json!({"candidate": "candidate:x"}));
        assert_eq!((bare.sdp_mid, bare.sdp_mline_index), (None, None));
    }
}
