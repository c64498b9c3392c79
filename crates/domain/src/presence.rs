//! Presence entries: what a gateway stores for each connection in a room's presence hash
//! ([`crate::keys::room_peers`]) and puts on the presence event stream. The entry's type is the
//! bus protocol's `confab.bus.v1.PeerPresence`, kept in Redis as its proto3 JSON; the gateways
//! write it, the API and the ingest read it, all through this module.

pub use confab_protocol::bus::PeerPresence;

use crate::{CallRole, DomainError};

/// The entry stored as `json`.
pub fn parse(json: &str) -> Result<PeerPresence, DomainError> {
    serde_json::from_str(json).map_err(|e| DomainError::UnreadablePresence(e.to_string()))
}

/// The JSON stored for `entry`.
pub fn to_json(entry: &PeerPresence) -> String {
    serde_json::to_string(entry).expect("presence serializes")
}

/// Whether the entry is a person's: anyone but the services' seats.
pub fn is_person(entry: &PeerPresence) -> bool {
    !CallRole::names_a_service(&entry.role)
}

/// Whether the entry is a hidden seat's (the recorder's, the media server's), which participants
/// never see listed.
pub fn is_hidden(entry: &PeerPresence) -> bool {
    CallRole::names_a_hidden_seat(&entry.role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_their_stored_form() {
        let stored = r#"{"peer_id":"p1","user_id":"u1","display_name":"Ann","role":"member","instance_id":"gw-1","joined_at":"2026-11-24T08:00:00Z","parked_until_ms":"1700000000000"}"#;
        let entry = parse(stored).unwrap();
        assert_eq!((entry.role.as_str(), entry.parked_until_ms), ("member", 1_700_000_000_000));
        assert_eq!(to_json(&entry), stored);
        assert!(parse("not json").is_err());
    }

    #[test]
    fn recorders_cameras_and_the_media_server_are_not_people() {
        let entry = |role: &str| PeerPresence { role: role.into(), ..PeerPresence::default() };
        assert!(is_person(&entry("member")) && is_person(&entry("owner")));
        assert!(!is_person(&entry("recorder")) && !is_person(&entry("camera")) && !is_person(&entry("sfu")));
        assert!(is_hidden(&entry("recorder")) && is_hidden(&entry("sfu")) && !is_hidden(&entry("camera")));
    }
}
