//! What a `signal` may carry, and from whom, before the gateway relays it: the gateway does not
//! read offers or candidates, but it does refuse what no client may send, so a peer never gets a
//! media server's message from a participant or a field it cannot make sense of.

use confab_domain::CallRole;
use confab_protocol::signal::{Signal, signal::Payload};

use crate::session::ProtocolError;

/// The connections a participant has to the media server; a mesh signal names none.
pub const CONNECTIONS: [&str; 2] = ["publish", "subscribe"];

/// The longest track id a `track_request` may name: an msid's track id is 1 to 64 characters
/// (RFC 8830 §2).
pub const MAX_TRACK_ID_LEN: usize = 64;

/// The longest peer id a `speaker` may name (the gateway's are 16 characters).
pub const MAX_PEER_ID_LEN: usize = 64;

/// Whether a peer in the call as `sender` may send `signal` as it is.
pub fn check(signal: &Signal, sender: CallRole) -> Result<(), ProtocolError> {
    if !signal.connection.is_empty() && !CONNECTIONS.contains(&signal.connection.as_str()) {
        return Err(malformed("`connection` is \"publish\", \"subscribe\" or absent"));
    }
    match &signal.payload {
        Some(Payload::TrackRequest(request)) => {
            if request.track_id.is_empty() || request.track_id.len() > MAX_TRACK_ID_LEN {
                return Err(malformed(format!("`track_id` takes 1 to {MAX_TRACK_ID_LEN} bytes")));
            }
        }
        Some(Payload::Speaker(speaker)) => {
            if sender != CallRole::Sfu {
                return Err(ProtocolError::new("not_allowed", "only the media server announces speakers"));
            }
            if speaker.peer_id.is_empty() || speaker.peer_id.len() > MAX_PEER_ID_LEN {
                return Err(malformed(format!("a speaker's `peer_id` takes 1 to {MAX_PEER_ID_LEN} bytes")));
            }
        }
        Some(Payload::Refusal(_)) if sender != CallRole::Sfu => {
            return Err(ProtocolError::new("not_allowed", "only the media server refuses media"));
        }
        Some(Payload::Sdp(_) | Payload::Candidate(_) | Payload::Refusal(_)) | None => {}
    }
    Ok(())
}

fn malformed(message: impl Into<String>) -> ProtocolError {
    ProtocolError::new("malformed_message", message)
}

#[cfg(test)]
mod tests {
    use confab_domain::RoomRole;
    use confab_protocol::signal::{Refusal, SessionDescription, Speaker, TrackRequest};

    use super::*;

    const MEMBER: CallRole = CallRole::Person(RoomRole::Member);

    fn signal(connection: &str, payload: Payload) -> Signal {
        Signal { to: "x".into(), connection: connection.into(), payload: Some(payload), ..Default::default() }
    }

    fn offer() -> Payload {
        Payload::Sdp(SessionDescription { r#type: "offer".into(), sdp: "v=0".into() })
    }

    fn track(track_id: &str) -> Payload {
        Payload::TrackRequest(TrackRequest { track_id: track_id.into(), max_width: 320, ..Default::default() })
    }

    fn refusal() -> Payload {
        Payload::Refusal(Refusal { code: "not_allowed_to_publish".into(), message: String::new() })
    }

    fn speaker(peer_id: &str) -> Payload {
        Payload::Speaker(Speaker { peer_id: peer_id.into() })
    }

    #[test]
    fn mesh_and_media_server_signals_pass() {
        for connection in ["", "publish", "subscribe"] {
            assert_eq!(check(&signal(connection, offer()), MEMBER), Ok(()), "{connection:?}");
        }
        assert_eq!(check(&signal("subscribe", track("cam-7")), MEMBER), Ok(()));
        assert_eq!(check(&signal("", track(&"t".repeat(MAX_TRACK_ID_LEN))), MEMBER), Ok(()));
        assert_eq!(check(&signal("", speaker("p1")), CallRole::Sfu), Ok(()));
        assert_eq!(check(&signal("publish", refusal()), CallRole::Sfu), Ok(()));
    }

    #[test]
    fn unknown_connections_and_bad_track_ids_are_malformed() {
        for connection in ["Publish", "record", " publish", "x".repeat(10_000).as_str()] {
            assert_eq!(check(&signal(connection, offer()), MEMBER).unwrap_err().code, "malformed_message");
        }
        for track_id in [String::new(), "t".repeat(MAX_TRACK_ID_LEN + 1)] {
            assert_eq!(check(&signal("", track(&track_id)), MEMBER).unwrap_err().code, "malformed_message");
        }
        assert_eq!(check(&signal("", speaker("")), CallRole::Sfu).unwrap_err().code, "malformed_message");
    }

    #[test]
    fn only_the_media_server_announces_speakers_and_refuses_media() {
        for sender in [MEMBER, CallRole::Person(RoomRole::Owner), CallRole::Recorder, CallRole::Camera] {
            assert_eq!(check(&signal("", speaker("p1")), sender).unwrap_err().code, "not_allowed", "{sender}");
            assert_eq!(check(&signal("publish", refusal()), sender).unwrap_err().code, "not_allowed", "{sender}");
        }
    }
}
