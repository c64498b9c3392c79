//! The services' seats in a call, and who sees whom. The recorder is a peer with room role
//! `recorder`, but a hidden one: participants never see it in a peer list, it takes no place in
//! the room, and its arrival and departure are told as `recording_started` / `recording_stopped`
//! (with its peer id, to which each participant opens a send-only connection) instead of
//! `peer_joined` / `peer_left`. The recorder itself sees everyone.
//!
//! The media server's seat (room role `sfu`) is hidden the same way: its arrival is told as
//! `media_changed` with its peer id (and `welcome.sfu` to whoever joins while it is there), its
//! departure as `media_changed` without one, or with another SFU seat's if one is still there
//! (the hub looks that up). It sees everyone too.
//!
//! Cameras (room role `camera`, joined by the ingest service) are the other service peers: they
//! are seen like anyone (`peer_joined`, `welcome.peers`, with the camera's name), but like the
//! recorder they take no place and are not participants (no webhook events, never resumed).
//! They are told `recording_started` / `recording_stopped` like participants, and send the
//! recorder their media the same way.

use confab_domain::presence::PeerPresence;
use confab_domain::{CallRole, RoomRole};
use confab_protocol::signal::{
    MediaChanged, Peer, PeerJoined, PeerLeft, RecordingStarted, RecordingStopped, ServerMessage, Sfu,
    server_message::Kind,
};

/// The room as one peer may see it.
#[derive(Debug, Default, PartialEq)]
pub struct RoomView {
    /// Everyone else in the call, oldest first.
    pub peers: Vec<Peer>,
    /// For participants: the running recording, if a recorder is in the room.
    pub recording: Option<RecordingStarted>,
    /// For participants: the media server's seat, if one is in the room (the newest).
    pub sfu: Option<Sfu>,
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
        match role_of(p) {
            CallRole::Recorder => {
                if role != CallRole::Recorder && view.recording.is_none() {
                    view.recording = Some(RecordingStarted {
                        recording_id: p.recording_id.clone(),
                        recorder_peer_id: p.peer_id.clone(),
                    });
                }
            }
            CallRole::Sfu => {
                if role != CallRole::Sfu {
                    view.sfu = Some(sfu_of(p));
                }
            }
            _ => view.peers.push(peer_of(p)),
        }
    }
    view
}

/// The newest media server seat in `present` (oldest first), if any: what participants are told
/// to use.
pub fn newest_sfu(present: &[PeerPresence]) -> Option<Sfu> {
    present.iter().rev().find(|p| role_of(p) == CallRole::Sfu).map(sfu_of)
}

fn sfu_of(p: &PeerPresence) -> Sfu {
    Sfu { peer_id: p.peer_id.clone() }
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
    let kind = match role {
        CallRole::Recorder => Kind::RecordingStarted(RecordingStarted {
            recording_id: recording_id.to_owned(),
            recorder_peer_id: peer.peer_id.clone(),
        }),
        CallRole::Sfu => Kind::MediaChanged(MediaChanged { sfu: Some(Sfu { peer_id: peer.peer_id.clone() }) }),
        _ => Kind::PeerJoined(PeerJoined { peer: Some(peer.clone()) }),
    };
    ServerMessage { kind: Some(kind) }
}

/// How the others learn that a peer, in the call as `role`, left. For a media server's seat,
/// `remaining_sfu` is the seat still in the room, if any, which the call now goes through.
pub fn departure(
    peer_id: &str,
    role: CallRole,
    recording_id: &str,
    reason: &str,
    remaining_sfu: Option<Sfu>,
) -> ServerMessage {
    let kind = match role {
        CallRole::Recorder => Kind::RecordingStopped(RecordingStopped {
            recording_id: recording_id.to_owned(),
            recorder_peer_id: peer_id.to_owned(),
        }),
        CallRole::Sfu => Kind::MediaChanged(MediaChanged { sfu: remaining_sfu }),
        _ => Kind::PeerLeft(PeerLeft { peer_id: peer_id.to_owned(), reason: reason.to_owned() }),
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
    fn participants_are_told_the_newest_media_server_seat_which_sees_everyone_but_itself() {
        let present = [
            presence("a", "owner", ""),
            presence("sfu-old", "sfu", ""),
            presence("b", "member", ""),
            presence("sfu-new", "sfu", ""),
        ];
        let seen = view_for(&peer_of(&present[0]), RoomRole::Owner.into(), &present);
        assert_eq!(seen.peers.iter().map(|p| p.peer_id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(seen.sfu, Some(Sfu { peer_id: "sfu-new".into() }));
        assert_eq!(newest_sfu(&present), seen.sfu);
        assert_eq!(newest_sfu(&present[..1]), None);

        let sfu = peer_of(&present[3]);
        let seen = view_for(&sfu, CallRole::Sfu, &present);
        assert_eq!(seen.peers.iter().map(|p| p.peer_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(seen.sfu, None);
    }

    #[test]
    fn the_recorder_comes_and_goes_as_a_recording() {
        let recorder = Peer { peer_id: "rec".into(), role: CallRole::Recorder.to_string(), ..Default::default() };
        assert!(matches!(arrival(&recorder, CallRole::Recorder, "r1").kind, Some(Kind::RecordingStarted(_))));
        assert!(matches!(
            departure("rec", CallRole::Recorder, "r1", "left", None).kind,
            Some(Kind::RecordingStopped(_))
        ));
        let ann = Peer { peer_id: "a".into(), role: "member".into(), ..Default::default() };
        let member = CallRole::Person(RoomRole::Member);
        assert!(matches!(arrival(&ann, member, "").kind, Some(Kind::PeerJoined(_))));
        assert!(matches!(departure("a", member, "", "left", None).kind, Some(Kind::PeerLeft(_))));
    }

    #[test]
    fn the_media_server_comes_and_goes_as_a_media_change() {
        let sfu = Peer { peer_id: "sfu-1".into(), role: CallRole::Sfu.to_string(), ..Default::default() };
        let changed = |sfu: Option<&str>| {
            let sfu = sfu.map(|peer_id| Sfu { peer_id: peer_id.into() });
            ServerMessage { kind: Some(Kind::MediaChanged(MediaChanged { sfu })) }
        };
        assert_eq!(arrival(&sfu, CallRole::Sfu, ""), changed(Some("sfu-1")));
        assert_eq!(departure("sfu-1", CallRole::Sfu, "", "left", None), changed(None), "back to mesh");
        let other = Some(Sfu { peer_id: "sfu-2".into() });
        assert_eq!(departure("sfu-1", CallRole::Sfu, "", "left", other), changed(Some("sfu-2")));
    }

    #[test]
    fn presence_entries_of_unknown_roles_are_taken_for_people() {
        assert_eq!(role_of(&presence("rec", "recorder", "r1")), CallRole::Recorder);
        assert_eq!(role_of(&presence("s", "sfu", "")), CallRole::Sfu);
        assert_eq!(role_of(&presence("a", "moderator", "")), CallRole::Person(RoomRole::Moderator));
        assert_eq!(role_of(&presence("x", "guest", "")), CallRole::Person(RoomRole::Member));
    }
}
