//! The recorder is a peer with room role `recorder`, but a hidden one: participants never see
//! it in a peer list, it takes no place in the room, and its arrival and departure are told as
//! `recording_started` / `recording_stopped` (with its peer id, to which each participant opens a
//! send-only connection) instead of `peer_joined` / `peer_left`. The recorder itself sees
//! everyone.
//!
//! Cameras (room role `camera`, joined by the ingest service) are the other service peers: they
//! are seen like anyone (`peer_joined`, `welcome.peers`, with the camera's name), but like the
//! recorder they take no place and are not participants (no webhook events, never resumed).
//! They are told `recording_started` / `recording_stopped` like participants, and send the
//! recorder their media the same way.

use confab_domain::presence::{self, PeerPresence};
use confab_domain::{CallRole, RoomRole};
use confab_protocol::signal::{
    Peer, PeerJoined, PeerLeft, RecordingStarted, RecordingStopped, ServerMessage, server_message::Kind,
};

/// The room as one peer may see it.
#[derive(Debug, Default, PartialEq)]
pub struct RoomView {
    /// Everyone else in the call, oldest first.
    pub peers: Vec<Peer>,
    /// For participants: the running recording, if a recorder is in the room.
    pub recording: Option<RecordingStarted>,
}

/// The role of a presence entry read from Redis. A role no gateway writes is taken for a person's,
/// as the presence scripts and `confab_domain::presence` take it.
pub fn role_of(entry: &PeerPresence) -> CallRole {
    entry.role.parse().unwrap_or(CallRole::Person(RoomRole::Member))
}

/// What `viewer`, in the call as `role`, may see of `present` (the room's presence, oldest
/// first).
pub fn view_for(viewer: &Peer, role: CallRole, present: &[PeerPresence]) -> RoomView {
    let mut view = RoomView::default();
    for p in present.iter().filter(|p| p.peer_id != viewer.peer_id) {
        if presence::is_recorder(p) {
            if role != CallRole::Recorder && view.recording.is_none() {
                view.recording = Some(RecordingStarted {
                    recording_id: p.recording_id.clone(),
                    recorder_peer_id: p.peer_id.clone(),
                });
            }
        } else {
            view.peers.push(peer_of(p));
        }
    }
    view
}

pub fn peer_of(p: &PeerPresence) -> Peer {
    Peer {
        peer_id: p.peer_id.clone(),
        user_id: p.user_id.clone(),
        display_name: p.display_name.clone(),
        role: p.role.clone(),
    }
}

/// How the others learn that `peer`, in the call as `role`, joined.
pub fn arrival(peer: &Peer, role: CallRole, recording_id: &str) -> ServerMessage {
    let kind = if role == CallRole::Recorder {
        Kind::RecordingStarted(RecordingStarted {
            recording_id: recording_id.to_owned(),
            recorder_peer_id: peer.peer_id.clone(),
        })
    } else {
        Kind::PeerJoined(PeerJoined { peer: Some(peer.clone()) })
    };
    ServerMessage { kind: Some(kind) }
}

/// How the others learn that a peer, in the call as `role`, left.
pub fn departure(peer_id: &str, role: CallRole, recording_id: &str, reason: &str) -> ServerMessage {
    let kind = if role == CallRole::Recorder {
        Kind::RecordingStopped(RecordingStopped {
            recording_id: recording_id.to_owned(),
            recorder_peer_id: peer_id.to_owned(),
        })
    } else {
        Kind::PeerLeft(PeerLeft { peer_id: peer_id.to_owned(), reason: reason.to_owned() })
    };
    ServerMessage { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence(peer_id: &str, role: &str, recording_id: &str) -> PeerPresence {
        PeerPresence {
            peer_id: peer_id.into(),
            user_id: format!("u-{peer_id}"),
            role: role.into(),
            recording_id: recording_id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn participants_see_the_recording_but_not_the_recorder_and_the_recorder_sees_everyone() {
        let present = [presence("a", "owner", ""), presence("rec", "recorder", "r1"), presence("b", "member", "")];
        let ann = peer_of(&present[0]);
        let seen = view_for(&ann, RoomRole::Owner.into(), &present);
        assert_eq!(seen.peers.iter().map(|p| p.peer_id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(
            seen.recording,
            Some(RecordingStarted { recording_id: "r1".into(), recorder_peer_id: "rec".into() })
        );

        // A camera is told too: it sends the recorder its media like a participant.
        let camera = Peer { peer_id: "cam".into(), role: CallRole::Camera.to_string(), ..Default::default() };
        assert_eq!(view_for(&camera, CallRole::Camera, &present).recording, seen.recording);

        let recorder = peer_of(&present[1]);
        let seen = view_for(&recorder, role_of(&present[1]), &present);
        assert_eq!(seen.peers.iter().map(|p| p.peer_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(seen.recording, None);
    }

    #[test]
    fn the_recorder_comes_and_goes_as_a_recording() {
        let recorder = Peer { peer_id: "rec".into(), role: CallRole::Recorder.to_string(), ..Default::default() };
        assert!(matches!(arrival(&recorder, CallRole::Recorder, "r1").kind, Some(Kind::RecordingStarted(_))));
        assert!(matches!(departure("rec", CallRole::Recorder, "r1", "left").kind, Some(Kind::RecordingStopped(_))));
        let ann = Peer { peer_id: "a".into(), role: "member".into(), ..Default::default() };
        let member = CallRole::Person(RoomRole::Member);
        assert!(matches!(arrival(&ann, member, "").kind, Some(Kind::PeerJoined(_))));
        assert!(matches!(departure("a", member, "", "left").kind, Some(Kind::PeerLeft(_))));
    }

    #[test]
    fn presence_entries_of_unknown_roles_are_taken_for_people() {
        assert_eq!(role_of(&presence("rec", "recorder", "r1")), CallRole::Recorder);
        assert_eq!(role_of(&presence("a", "moderator", "")), CallRole::Person(RoomRole::Moderator));
        assert_eq!(role_of(&presence("x", "guest", "")), CallRole::Person(RoomRole::Member));
    }
}
