//! A room as the media server serves it: who is in the call, who may send media — everyone in a
//! meeting; in a lecture the owner, the moderators, whoever a moderator lets speak, and the room's
//! cameras (the owner or a moderator attached them: they are the lecture's stage, not its
//! audience); never the recorder, which only receives — what each one publishes, and who receives
//! it (everyone else in the room, viewers and the recorder included; a camera receives nothing). Peers,
//! publications and grants in, decisions out: the tracks a departure or a withdrawn grant ends,
//! which the SFU then stops forwarding and tells the subscribers about.

use std::collections::HashMap;

use confab_domain::{CallRole, RoomMode, RoomRole};

/// The most tracks one peer publishes at once: a camera, a microphone and a shared screen with
/// its sound. More is a misbehaving client.
pub const MAX_TRACKS_PER_PEER: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
}

/// A track a peer sends, as its offer names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub track_id: String,
    pub kind: MediaKind,
}

/// Why the room refused a peer's request; each becomes a clear `error` to that peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The peer is not in the room (it left, or never joined).
    UnknownPeer,
    /// A viewer of a lecture offered media without being let speak.
    NotAllowedToPublish,
    /// The peer already publishes a track of that id.
    DuplicateTrack,
    TooManyTracks,
}

impl Refusal {
    /// The error code a peer is told (docs/protocol.md).
    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownPeer => "unknown_peer",
            Self::NotAllowedToPublish => "not_allowed_to_publish",
            Self::DuplicateTrack => "duplicate_track",
            Self::TooManyTracks => "too_many_tracks",
        }
    }
}

/// A track that ended: its publisher and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub publisher: String,
    pub track_id: String,
}

#[derive(Debug)]
struct Peer {
    role: CallRole,
    /// Let speak by a moderator (lectures).
    may_speak: bool,
    tracks: Vec<Publication>,
}

#[derive(Debug)]
pub struct Room {
    mode: RoomMode,
    peers: HashMap<String, Peer>,
}

impl Room {
    pub fn new(mode: RoomMode) -> Self {
        Self { mode, peers: HashMap::new() }
    }

    /// `peer` entered the call in `role` (from its ticket). A peer already in the call (told again
    /// after a resync) keeps what it has.
    pub fn join(&mut self, peer: &str, role: CallRole) {
        self.peers.entry(peer.to_owned()).or_insert(Peer { role, may_speak: false, tracks: Vec::new() });
    }

    /// `peer` left: every track it published ends.
    pub fn leave(&mut self, peer: &str) -> Vec<Ended> {
        let Some(left) = self.peers.remove(peer) else { return Vec::new() };
        ended(peer, left.tracks)
    }

    /// How `peer` is in the call, if it is.
    pub fn role(&self, peer: &str) -> Option<CallRole> {
        self.peers.get(peer).map(|peer| peer.role)
    }

    /// Whether `peer` may send media now.
    pub fn may_publish(&self, peer: &str) -> bool {
        self.peers.get(peer).is_some_and(|peer| self.publishes(peer))
    }

    fn publishes(&self, peer: &Peer) -> bool {
        match (peer.role, self.mode) {
            (CallRole::Recorder | CallRole::Sfu, _) => false,
            (_, RoomMode::Meeting) => true,
            (CallRole::Person(role), RoomMode::Lecture) => role >= RoomRole::Moderator || peer.may_speak,
            // Cameras are attached to a room by its owner or a moderator.
            (CallRole::Camera, RoomMode::Lecture) => true,
        }
    }

    /// Whether `peer` is a camera: it publishes, and receives nothing.
    pub fn is_camera(&self, peer: &str) -> bool {
        self.role(peer) == Some(CallRole::Camera)
    }

    /// `peer` offers to send `track`.
    pub fn publish(&mut self, peer: &str, track: Publication) -> Result<(), Refusal> {
        let publisher = self.peers.get(peer).ok_or(Refusal::UnknownPeer)?;
        if !self.publishes(publisher) {
            return Err(Refusal::NotAllowedToPublish);
        }
        let publisher = self.peers.get_mut(peer).ok_or(Refusal::UnknownPeer)?;
        if publisher.tracks.iter().any(|t| t.track_id == track.track_id) {
            return Err(Refusal::DuplicateTrack);
        }
        if publisher.tracks.len() >= MAX_TRACKS_PER_PEER {
            return Err(Refusal::TooManyTracks);
        }
        publisher.tracks.push(track);
        Ok(())
    }

    /// `peer` stopped sending `track_id`; whether it was published.
    pub fn unpublish(&mut self, peer: &str, track_id: &str) -> bool {
        let Some(publisher) = self.peers.get_mut(peer) else { return false };
        let before = publisher.tracks.len();
        publisher.tracks.retain(|t| t.track_id != track_id);
        publisher.tracks.len() < before
    }

    /// A moderator let `peer` speak (in a meeting everyone already may; a no-op). Who may grant
    /// is the API's to check: the grant reaches the SFU through the gateway only once allowed.
    pub fn let_speak(&mut self, peer: &str) -> Result<(), Refusal> {
        self.peers.get_mut(peer).ok_or(Refusal::UnknownPeer)?.may_speak = true;
        Ok(())
    }

    /// A moderator took the word back from `peer`: in a lecture, its tracks end.
    pub fn silence(&mut self, peer: &str) -> Result<Vec<Ended>, Refusal> {
        self.peers.get_mut(peer).ok_or(Refusal::UnknownPeer)?.may_speak = false;
        if self.may_publish(peer) {
            return Ok(Vec::new());
        }
        let silenced = self.peers.get_mut(peer).ok_or(Refusal::UnknownPeer)?;
        Ok(ended(peer, std::mem::take(&mut silenced.tracks)))
    }

    /// Everyone in the call.
    pub fn peers(&self) -> impl Iterator<Item = &str> {
        self.peers.keys().map(String::as_str)
    }

    /// Who receives what `publisher` sends: everyone else in the room but cameras.
    pub fn subscribers<'a>(&'a self, publisher: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let receives = |(id, peer): (&'a String, &'a Peer)| (peer.role != CallRole::Camera).then_some(id.as_str());
        self.peers.iter().filter_map(receives).filter(move |peer| *peer != publisher)
    }

    /// What `peer` publishes.
    pub fn tracks(&self, peer: &str) -> &[Publication] {
        self.peers.get(peer).map_or(&[], |peer| &peer.tracks)
    }
}

fn ended(publisher: &str, tracks: Vec<Publication>) -> Vec<Ended> {
    tracks.into_iter().map(|track| Ended { publisher: publisher.to_owned(), track_id: track.track_id }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera() -> Publication {
        Publication { track_id: "camera".into(), kind: MediaKind::Video }
    }

    fn microphone() -> Publication {
        Publication { track_id: "microphone".into(), kind: MediaKind::Audio }
    }

    /// A lecture: Tess the owner, Mo a moderator, Sam and Ava watching.
    fn lecture() -> Room {
        let mut room = Room::new(RoomMode::Lecture);
        room.join("tess", CallRole::Person(RoomRole::Owner));
        room.join("mo", CallRole::Person(RoomRole::Moderator));
        room.join("sam", CallRole::Person(RoomRole::Member));
        room.join("ava", CallRole::Person(RoomRole::Member));
        room
    }

    #[test]
    fn in_a_meeting_everyone_publishes_to_everyone_else() {
        let mut room = Room::new(RoomMode::Meeting);
        room.join("ann", CallRole::Person(RoomRole::Member));
        room.join("bob", CallRole::Person(RoomRole::Member));
        assert_eq!(room.publish("ann", camera()), Ok(()));
        assert_eq!(room.publish("bob", microphone()), Ok(()));
        assert_eq!(room.subscribers("ann").collect::<Vec<_>>(), ["bob"]);
        assert_eq!(room.tracks("ann"), [camera()]);
    }

    #[test]
    fn in_a_lecture_viewers_watch_and_cannot_publish() {
        let mut room = lecture();
        assert_eq!(room.publish("tess", camera()), Ok(()));
        assert_eq!(room.publish("mo", microphone()), Ok(()));
        assert_eq!(room.publish("sam", camera()), Err(Refusal::NotAllowedToPublish));
        assert!(!room.may_publish("sam"));
        let mut audience: Vec<_> = room.subscribers("tess").collect();
        audience.sort();
        assert_eq!(audience, ["ava", "mo", "sam"], "viewers receive");
    }

    #[test]
    fn the_recorder_receives_everything_and_publishes_nothing() {
        let mut meeting = Room::new(RoomMode::Meeting);
        meeting.join("ann", CallRole::Person(RoomRole::Member));
        meeting.join("rec", CallRole::Recorder);
        assert_eq!(meeting.publish("rec", microphone()), Err(Refusal::NotAllowedToPublish));
        assert_eq!(meeting.let_speak("rec"), Ok(()));
        assert!(!meeting.may_publish("rec"), "not even let speak");
        assert_eq!(meeting.subscribers("ann").collect::<Vec<_>>(), ["rec"]);
    }

    #[test]
    fn a_viewer_let_speak_publishes_until_silenced() {
        let mut room = lecture();
        assert_eq!(room.let_speak("sam"), Ok(()));
        assert_eq!(room.publish("sam", microphone()), Ok(()));
        assert_eq!(room.publish("sam", camera()), Ok(()));
        assert_eq!(room.publish("ava", microphone()), Err(Refusal::NotAllowedToPublish), "only Sam");
        let ended = room.silence("sam").unwrap();
        assert_eq!(
            ended,
            [
                Ended { publisher: "sam".into(), track_id: "microphone".into() },
                Ended { publisher: "sam".into(), track_id: "camera".into() },
            ]
        );
        assert_eq!(room.tracks("sam"), []);
        assert_eq!(room.publish("sam", microphone()), Err(Refusal::NotAllowedToPublish));
    }

    #[test]
    fn silencing_a_moderator_or_anyone_in_a_meeting_ends_nothing() {
        let mut room = lecture();
        room.publish("mo", camera()).unwrap();
        assert_eq!(room.silence("mo"), Ok(vec![]));
        assert_eq!(room.tracks("mo"), [camera()]);
        let mut meeting = Room::new(RoomMode::Meeting);
        meeting.join("ann", CallRole::Person(RoomRole::Owner));
        meeting.join("bob", CallRole::Person(RoomRole::Member));
        meeting.publish("bob", camera()).unwrap();
        assert_eq!(meeting.silence("bob"), Ok(vec![]));
    }

    #[test]
    fn a_departure_ends_its_tracks_and_unknown_peers_are_refused() {
        let mut room = lecture();
        room.publish("tess", camera()).unwrap();
        assert_eq!(room.leave("tess"), [Ended { publisher: "tess".into(), track_id: "camera".into() }]);
        assert_eq!(room.leave("tess"), [], "gone already");
        assert_eq!(room.publish("tess", camera()), Err(Refusal::UnknownPeer));
        assert_eq!(room.let_speak("nobody"), Err(Refusal::UnknownPeer));
        assert_eq!(room.silence("nobody"), Err(Refusal::UnknownPeer));
        assert!(!room.unpublish("nobody", "camera"));
    }

    #[test]
    fn a_camera_publishes_even_in_a_lecture_and_receives_nothing() {
        let mut room = lecture();
        room.join("door", CallRole::Camera);
        assert_eq!(room.publish("door", camera()), Ok(()));
        assert_eq!(room.publish("door", microphone()), Ok(()));
        assert!(room.is_camera("door") && !room.is_camera("tess"));
        let mut audience: Vec<_> = room.subscribers("door").collect();
        audience.sort();
        assert_eq!(audience, ["ava", "mo", "sam", "tess"]);
        assert!(!room.subscribers("tess").any(|peer| peer == "door"), "a camera receives nothing");
        assert_eq!(room.silence("door"), Ok(vec![]), "nobody takes a camera's word back");
    }

    #[test]
    fn a_track_id_is_published_once_and_a_peer_publishes_at_most_four() {
        let mut room = Room::new(RoomMode::Meeting);
        room.join("ann", CallRole::Person(RoomRole::Member));
        room.publish("ann", camera()).unwrap();
        assert_eq!(room.publish("ann", camera()), Err(Refusal::DuplicateTrack));
        for n in 1..MAX_TRACKS_PER_PEER {
            room.publish("ann", Publication { track_id: format!("t{n}"), kind: MediaKind::Audio }).unwrap();
        }
        let one_more = Publication { track_id: "t9".into(), kind: MediaKind::Video };
        assert_eq!(room.publish("ann", one_more), Err(Refusal::TooManyTracks));
        assert!(room.unpublish("ann", "camera"));
        assert!(!room.unpublish("ann", "camera"));
        assert_eq!(room.publish("ann", camera()), Ok(()), "room again after one ended");
    }
}
