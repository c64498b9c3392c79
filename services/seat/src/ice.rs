//! ICE servers and trickled candidates as the signaling protocol writes them (a browser's
//! `RTCIceServer` and `RTCIceCandidateInit`, in snake case), and as webrtc-rs takes them.

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

    /// The `signal` message that trickles this candidate to peer `to`.
    pub fn signal_to(&self, to: &str) -> String {
        let candidate =
            json!({"candidate": self.candidate, "sdp_mid": self.sdp_mid, "sdp_mline_index": self.sdp_mline_index});
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
