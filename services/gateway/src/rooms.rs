//! The rooms this gateway instance serves, as a value: its own connections per room, what it
//! knows of each room's other peers (and which instance holds each), and the numbering of the room
//! events it exchanges with other instances. No Redis, no clock, no tasks: the hub tells it what
//! happened and carries out what it answers, and its tests drive it directly.
//!
//! Delivery to a local connection never waits: it goes on the connection's bounded outbound queue,
//! and a full queue marks the connection as a slow consumer, to be closed, while the rest of the
//! room carries on.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use confab_domain::CallRole;
use confab_protocol::bus::PeerPresence;
use confab_protocol::signal::{Peer, PeerJoined, Resync, ServerMessage, server_message::Kind};
use tokio::sync::{Notify, mpsc};

use crate::seats;
use crate::sfu_queue::RoomMedia;

/// What a connection task is told to do.
#[derive(Debug, Clone)]
pub enum Outbound {
    Message {
        message: ServerMessage,
        /// For a message relayed from a client: when its gateway read it.
        read_at: Option<SystemTime>,
    },
    /// Send this last message, then close the socket with `code`.
    CloseWith { message: ServerMessage, code: u16 },
    /// The client resumed this connection elsewhere: close it, and leave the peer to the new one.
    Superseded,
}

/// A connection on this instance.
#[derive(Clone)]
pub struct LocalPeer {
    /// The peer as others see it; its `role` is [`LocalPeer::role`] as the wire spells it.
    pub peer: Peer,
    pub role: CallRole,
    /// RFC 3339, when the peer joined.
    pub joined_at: String,
    /// The recording a recorder captures; empty for participants.
    pub recording_id: String,
    /// The hash of this connection's resume token: names the connection in presence.
    pub resume_hash: String,
    /// The room's media settings as the peer's ticket carries them (participants' and the media
    /// server's tickets do).
    pub media: RoomMedia,
    pub outbound: mpsc::Sender<Outbound>,
    /// Notified when the outbound queue overflowed: the connection must close.
    pub slow: Arc<Notify>,
}

pub fn message(kind: Kind) -> ServerMessage {
    ServerMessage { kind: Some(kind) }
}

pub struct Rooms {
    instance_id: String,
    local: HashMap<String, HashMap<String, LocalPeer>>,
    /// Per room with local peers: every peer in it on any instance, and that instance, as far as
    /// this instance has heard (presence read at join and resync, then the joins, leaves and
    /// resumes it relays). Spares a Redis lookup per relayed signal, and says whom to wait for
    /// after a Redis outage.
    known: HashMap<String, HashMap<String, String>>,
    /// Events this instance published per room, while it has local peers there.
    published: HashMap<String, u64>,
    /// The last sequence number heard per (room, origin instance).
    heard: HashMap<(String, String), u64>,
}

impl Rooms {
    pub fn new(instance_id: &str) -> Self {
        Self {
            instance_id: instance_id.to_owned(),
            local: HashMap::new(),
            known: HashMap::new(),
            published: HashMap::new(),
            heard: HashMap::new(),
        }
    }

    /// A joined connection: the others here are told `arrival` and it joins the room.
    pub fn admit(&mut self, room_id: &str, local: LocalPeer, arrival: &ServerMessage) {
        let room = self.local.entry(room_id.to_owned()).or_default();
        for other in room.values() {
            push(other, arrival.clone(), None);
        }
        room.insert(local.peer.peer_id.clone(), local);
    }

    /// A resumed connection: it takes its peer's place without a word to anyone.
    pub fn resume(&mut self, room_id: &str, local: LocalPeer) {
        if let Some(peers) = self.known.get_mut(room_id) {
            peers.insert(local.peer.peer_id.clone(), self.instance_id.clone());
        }
        self.local.entry(room_id.to_owned()).or_default().insert(local.peer.peer_id.clone(), local);
    }

    /// Takes out the connection `resume_hash` of `peer_id`; `None` if that is not the
    /// connection here (another one of the peer, resumed, may be).
    pub fn remove(&mut self, room_id: &str, peer_id: &str, resume_hash: &str) -> Option<LocalPeer> {
        let room = self.local.get_mut(room_id)?;
        if room.get(peer_id).is_none_or(|local| local.resume_hash != resume_hash) {
            return None;
        }
        let removed = room.remove(peer_id);
        if room.is_empty() {
            self.local.remove(room_id);
        }
        removed
    }

    /// The resume hash of the peer's connection here, if it has one.
    pub fn local_hash(&self, room_id: &str, peer_id: &str) -> Option<String> {
        self.local.get(room_id)?.get(peer_id).map(|local| local.resume_hash.clone())
    }

    /// Hands `message`, published by the instance `origin`, to every local peer of the room but
    /// `except`, and learns the arrivals and departures it announces.
    pub fn fanout(
        &mut self,
        room_id: &str,
        except: &str,
        message: &ServerMessage,
        read_at: Option<SystemTime>,
        origin: &str,
    ) {
        self.learn_from(room_id, except, message, origin);
        if let Some(room) = self.local.get(room_id) {
            for (peer_id, peer) in room {
                if peer_id != except {
                    push(peer, message.clone(), read_at);
                }
            }
        }
    }

    /// Hands `message` to every local peer of the room, hidden seats included; how many. For
    /// what every instance hears itself (a command from the API), so it is not relayed.
    pub fn tell_everyone(&self, room_id: &str, message: &ServerMessage) -> usize {
        let room = self.local.get(room_id).into_iter().flat_map(HashMap::values);
        room.map(|peer| push(peer, message.clone(), None)).count()
    }

    /// Hands `message` to the local peer `to`; gives it back if `to` is not here.
    #[must_use]
    pub fn deliver(
        &self,
        room_id: &str,
        to: &str,
        message: ServerMessage,
        read_at: Option<SystemTime>,
    ) -> Option<ServerMessage> {
        match self.local.get(room_id).and_then(|room| room.get(to)) {
            Some(peer) => {
                push(peer, message, read_at);
                None
            }
            None => Some(message),
        }
    }

    /// Whether `peer_id` is in the room on some instance, as far as this one has heard.
    pub fn knows(&self, room_id: &str, peer_id: &str) -> bool {
        self.known.get(room_id).is_some_and(|peers| peers.contains_key(peer_id))
    }

    /// The room's presence as just read from Redis: replaces what was known of it.
    pub fn learn(&mut self, room_id: &str, present: &[PeerPresence]) {
        let peers = present.iter().map(|p| (p.peer_id.clone(), p.instance_id.clone())).collect();
        self.known.insert(room_id.to_owned(), peers);
    }

    /// The peer's connection was resumed on `instance`.
    pub fn moved(&mut self, room_id: &str, peer_id: &str, instance: &str) {
        if let Some(peers) = self.known.get_mut(room_id) {
            peers.insert(peer_id.to_owned(), instance.to_owned());
        }
    }

    /// The other instances known to hold peers of the room.
    pub fn other_instances(&self, room_id: &str) -> HashSet<String> {
        self.known
            .get(room_id)
            .map(|peers| peers.values().filter(|id| **id != self.instance_id).cloned().collect())
            .unwrap_or_default()
    }

    /// Learns who came or went from an event announcing it; `except`, the peer it is not sent to,
    /// is the one who came or went.
    fn learn_from(&mut self, room_id: &str, except: &str, message: &ServerMessage, origin: &str) {
        let Some(peers) = self.known.get_mut(room_id) else { return };
        match &message.kind {
            Some(Kind::PeerJoined(PeerJoined { peer: Some(peer) })) => {
                peers.insert(peer.peer_id.clone(), origin.to_owned());
            }
            Some(Kind::PeerLeft(left)) => {
                peers.remove(&left.peer_id);
            }
            Some(Kind::RecordingStarted(started)) => {
                peers.insert(started.recorder_peer_id.clone(), origin.to_owned());
            }
            Some(Kind::RecordingStopped(stopped)) => {
                peers.remove(&stopped.recorder_peer_id);
            }
            // A media server's seat arrived (the message names it), or left (it names another
            // seat still there, or none).
            Some(Kind::MediaChanged(changed)) => match &changed.sfu {
                Some(sfu) if sfu.peer_id == except => {
                    peers.insert(sfu.peer_id.clone(), origin.to_owned());
                }
                _ => {
                    peers.remove(except);
                }
            },
            _ => {}
        }
    }

    /// This instance no longer serves the room: what it knew and heard of it goes.
    pub fn forget(&mut self, room_id: &str) {
        self.known.remove(room_id);
        self.heard.retain(|(room, _), _| room != room_id);
    }

    /// The number of the next event this instance publishes to the room. A room without local
    /// peers starts a new series at its next event.
    pub fn next_seq(&mut self, room_id: &str) -> u64 {
        let seq = self.published.entry(room_id.to_owned()).or_insert(0);
        *seq += 1;
        let next = *seq;
        if !self.local.contains_key(room_id) {
            self.published.remove(room_id);
        }
        next
    }

    /// Records an event's place in its origin's sequence for the room; true if events came
    /// before it that this instance never received.
    pub fn missed_before(&mut self, room_id: &str, origin: &str, seq: u64) -> bool {
        if seq == 0 {
            return false;
        }
        let last = self.heard.insert((room_id.to_owned(), origin.to_owned()), seq);
        // No `last`: this instance just subscribed, and what came before was not for it.
        matches!(last, Some(last) if seq != 1 && seq != last + 1)
    }

    /// After the subscription dropped, whatever comes next is compared with nothing.
    pub fn forget_heard(&mut self) {
        self.heard.clear();
    }

    /// Sends each local peer of the room the room as it may see it, from `present`.
    pub fn resync(&self, room_id: &str, present: &[PeerPresence]) {
        if let Some(room) = self.local.get(room_id) {
            for local in room.values() {
                let view = seats::view_for(&local.peer, local.role, present);
                push(local, message(Kind::Resync(Resync { peers: view.peers, sfu: view.sfu })), None);
            }
        }
    }

    /// Every room with local connections, and those connections.
    pub fn each_room(&self) -> impl Iterator<Item = (&String, impl Iterator<Item = &LocalPeer>)> {
        self.local.iter().map(|(room_id, room)| (room_id, room.values()))
    }

    /// Queues a last message and a close for every connection matching `select`; how many.
    pub fn close_where(&self, select: impl Fn(&str, &Peer) -> bool, last: &ServerMessage, code: u16) -> usize {
        let mut closed = 0;
        for (room_id, room) in &self.local {
            for peer in room.values().filter(|p| select(room_id, &p.peer)) {
                let close = Outbound::CloseWith { message: last.clone(), code };
                if peer.outbound.try_send(close).is_err() {
                    peer.slow.notify_one();
                }
                closed += 1;
            }
        }
        closed
    }

    /// Local connections.
    pub fn connection_count(&self) -> usize {
        self.local.values().map(HashMap::len).sum()
    }

    /// Rooms with at least one local connection.
    pub fn room_count(&self) -> usize {
        self.local.len()
    }

    pub fn has_room(&self, room_id: &str) -> bool {
        self.local.contains_key(room_id)
    }
}

/// Never waits: a full queue makes the peer a slow consumer.
fn push(peer: &LocalPeer, message: ServerMessage, read_at: Option<SystemTime>) {
    if peer.outbound.try_send(Outbound::Message { message, read_at }).is_err() {
        metrics::counter!("gateway_dropped_messages_total", "reason" => "slow_consumer").increment(1);
        peer.slow.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use confab_domain::{MediaRouting, RoomMode};
    use confab_protocol::signal::{Broadcast, MediaChanged, PeerLeft, RecordingStarted, Sfu};

    use super::*;

    const ROOM: &str = "room-1";

    struct Connection {
        local: LocalPeer,
        outbound: mpsc::Receiver<Outbound>,
    }

    fn connection(peer_id: &str, role: &str, queue: usize) -> Connection {
        let (sender, outbound) = mpsc::channel(queue);
        let peer = Peer {
            peer_id: peer_id.into(),
            user_id: format!("user-{peer_id}"),
            display_name: peer_id.into(),
            role: role.into(),
        };
        let local = LocalPeer {
            peer,
            role: role.parse().unwrap(),
            joined_at: String::new(),
            recording_id: String::new(),
            resume_hash: format!("hash-{peer_id}"),
            media: RoomMedia { media: MediaRouting::Mesh, mode: RoomMode::Meeting },
            outbound: sender,
            slow: Arc::new(Notify::new()),
        };
        Connection { local, outbound }
    }

    impl Connection {
        fn received(&mut self) -> Vec<ServerMessage> {
            let mut received = Vec::new();
            while let Ok(out) = self.outbound.try_recv() {
                match out {
                    Outbound::Message { message, .. } | Outbound::CloseWith { message, .. } => received.push(message),
                    Outbound::Superseded => {}
                }
            }
            received
        }
    }

    fn broadcast(data: &str) -> ServerMessage {
        message(Kind::Broadcast(Broadcast { from: String::new(), data: data.into() }))
    }

    fn joined(peer_id: &str) -> ServerMessage {
        message(Kind::PeerJoined(PeerJoined { peer: Some(Peer { peer_id: peer_id.into(), ..Peer::default() }) }))
    }

    fn left(peer_id: &str) -> ServerMessage {
        message(Kind::PeerLeft(PeerLeft { peer_id: peer_id.into(), reason: "left".into() }))
    }

    fn presence(peer_id: &str, role: &str, instance_id: &str) -> PeerPresence {
        PeerPresence {
            peer_id: peer_id.into(),
            role: role.into(),
            instance_id: instance_id.into(),
            recording_id: if role == "recorder" { "rec-1".into() } else { String::new() },
            ..PeerPresence::default()
        }
    }

    #[test]
    fn an_arrival_is_told_to_those_already_here_and_fanout_skips_its_sender() {
        let mut rooms = Rooms::new("gw-1");
        let (mut ann, mut bob, mut cat) =
            (connection("ann", "member", 8), connection("bob", "member", 8), connection("cat", "member", 8));
        rooms.admit(ROOM, ann.local.clone(), &joined("ann"));
        rooms.admit(ROOM, bob.local.clone(), &joined("bob"));
        rooms.admit("elsewhere", cat.local.clone(), &joined("cat"));
        assert_eq!(ann.received(), [joined("bob")]);
        assert!(bob.received().is_empty(), "nobody was there to tell Bob about");

        rooms.fanout(ROOM, "ann", &broadcast("hi"), None, "gw-1");
        assert!(ann.received().is_empty(), "not back to its sender");
        assert_eq!(bob.received(), [broadcast("hi")]);
        assert!(cat.received().is_empty(), "not to another room");

        assert_eq!(rooms.deliver(ROOM, "bob", broadcast("for Bob"), None), None);
        assert_eq!(rooms.deliver(ROOM, "cat", broadcast("wrong room"), None), Some(broadcast("wrong room")));
        assert_eq!(bob.received(), [broadcast("for Bob")]);
    }

    #[test]
    fn a_full_queue_marks_only_that_connection_slow() {
        let mut rooms = Rooms::new("gw-1");
        let (mut ann, stalled) = (connection("ann", "member", 8), connection("sid", "member", 1));
        rooms.admit(ROOM, ann.local.clone(), &joined("ann"));
        rooms.admit(ROOM, stalled.local.clone(), &joined("sid"));
        let notified = stalled.local.slow.clone();
        rooms.fanout(ROOM, "nobody", &broadcast("1"), None, "gw-1");
        rooms.fanout(ROOM, "nobody", &broadcast("2"), None, "gw-1");
        assert_eq!(ann.received().len(), 3, "Sid's arrival and both broadcasts");
        let woken = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
            tokio::time::timeout(std::time::Duration::from_millis(10), notified.notified()).await.is_ok()
        });
        assert!(woken, "Sid's overflow was flagged");
    }

    #[test]
    fn only_the_named_connection_is_removed() {
        let mut rooms = Rooms::new("gw-1");
        let ann = connection("ann", "member", 8);
        rooms.admit(ROOM, ann.local.clone(), &joined("ann"));
        assert!(rooms.remove(ROOM, "ann", "another connection's hash").is_none());
        assert_eq!(rooms.local_hash(ROOM, "ann").as_deref(), Some("hash-ann"));
        assert!(rooms.remove(ROOM, "ann", "hash-ann").is_some());
        assert!(!rooms.has_room(ROOM), "an empty room goes");
        assert_eq!(rooms.connection_count(), 0);
    }

    #[test]
    fn the_room_is_known_across_instances_from_presence_then_from_what_is_relayed() {
        let mut rooms = Rooms::new("gw-1");
        let ann = connection("ann", "member", 8);
        rooms.admit(ROOM, ann.local.clone(), &joined("ann"));
        rooms.learn(ROOM, &[presence("ann", "member", "gw-1"), presence("bob", "member", "gw-2")]);
        assert!(rooms.knows(ROOM, "bob"));
        assert_eq!(rooms.other_instances(ROOM), HashSet::from(["gw-2".to_owned()]));

        rooms.fanout(ROOM, "cat", &joined("cat"), None, "gw-3");
        assert!(rooms.knows(ROOM, "cat"));
        rooms.fanout(ROOM, "bob", &left("bob"), None, "gw-2");
        assert!(!rooms.knows(ROOM, "bob"));
        assert_eq!(rooms.other_instances(ROOM), HashSet::from(["gw-3".to_owned()]));
        rooms.moved(ROOM, "cat", "gw-1");
        assert!(rooms.other_instances(ROOM).is_empty(), "Cat resumed here");

        let started = message(Kind::RecordingStarted(RecordingStarted {
            recording_id: "rec-1".into(),
            recorder_peer_id: "rec".into(),
        }));
        rooms.fanout(ROOM, "rec", &started, None, "gw-4");
        assert!(rooms.knows(ROOM, "rec"), "the recorder can be signaled");

        let media_changed = |sfu: Option<&str>| {
            let sfu = sfu.map(|peer_id| Sfu { peer_id: peer_id.into() });
            message(Kind::MediaChanged(MediaChanged { sfu }))
        };
        rooms.fanout(ROOM, "sfu-1", &media_changed(Some("sfu-1")), None, "gw-5");
        rooms.fanout(ROOM, "sfu-2", &media_changed(Some("sfu-2")), None, "gw-5");
        assert!(rooms.knows(ROOM, "sfu-1") && rooms.knows(ROOM, "sfu-2"), "media server seats can be signaled");
        rooms.fanout(ROOM, "sfu-1", &media_changed(Some("sfu-2")), None, "gw-5");
        assert!(!rooms.knows(ROOM, "sfu-1") && rooms.knows(ROOM, "sfu-2"), "sfu-1 left, sfu-2 serves");
        rooms.fanout(ROOM, "sfu-2", &media_changed(None), None, "gw-5");
        assert!(!rooms.knows(ROOM, "sfu-2"), "back to mesh");

        rooms.forget(ROOM);
        assert!(!rooms.knows(ROOM, "cat"));
    }

    #[test]
    fn events_are_numbered_per_room_and_a_room_left_empty_starts_a_new_series() {
        let mut rooms = Rooms::new("gw-1");
        let ann = connection("ann", "member", 8);
        rooms.admit(ROOM, ann.local.clone(), &joined("ann"));
        assert_eq!([rooms.next_seq(ROOM), rooms.next_seq(ROOM), rooms.next_seq("other")], [1, 2, 1]);
        rooms.remove(ROOM, "ann", "hash-ann");
        assert_eq!(rooms.next_seq(ROOM), 3, "the departure itself still counts");
        assert_eq!(rooms.next_seq(ROOM), 1, "then a new series");
    }

    #[test]
    fn a_jump_in_an_origins_sequence_is_a_gap_and_a_restart_at_one_is_not() {
        let mut rooms = Rooms::new("gw-1");
        assert!(!rooms.missed_before(ROOM, "gw-2", 7), "first heard: nothing to compare with");
        assert!(!rooms.missed_before(ROOM, "gw-2", 8));
        assert!(!rooms.missed_before(ROOM, "gw-3", 1), "each origin has its own series");
        assert!(rooms.missed_before(ROOM, "gw-2", 10), "9 never came");
        assert!(!rooms.missed_before(ROOM, "gw-2", 1), "gw-2 began serving the room afresh");
        assert!(!rooms.missed_before(ROOM, "gw-2", 0), "unsequenced");
        rooms.forget_heard();
        assert!(!rooms.missed_before(ROOM, "gw-2", 40), "after a reconnect, compared with nothing");
    }

    #[test]
    fn a_resync_lists_everyone_but_the_hidden_seats_and_says_where_media_goes() {
        let mut rooms = Rooms::new("gw-1");
        let (mut ann, mut recorder) = (connection("ann", "member", 8), connection("rec", "recorder", 8));
        rooms.admit(ROOM, ann.local.clone(), &joined("ann"));
        rooms.admit(ROOM, recorder.local.clone(), &joined("rec"));
        ann.received();
        let present = [
            presence("ann", "member", "gw-1"),
            presence("bob", "member", "gw-2"),
            presence("rec", "recorder", "gw-1"),
            presence("sfu", "sfu", "gw-2"),
        ];
        rooms.resync(ROOM, &present);
        let listed = |received: Vec<ServerMessage>| -> (Vec<String>, Option<Sfu>) {
            match &received[..] {
                [ServerMessage { kind: Some(Kind::Resync(resync)) }] => {
                    (resync.peers.iter().map(|p| p.peer_id.clone()).collect(), resync.sfu.clone())
                }
                other => panic!("one resync expected: {other:?}"),
            }
        };
        let through_the_sfu = Some(Sfu { peer_id: "sfu".into() });
        assert_eq!(listed(ann.received()), (vec!["bob".to_owned()], through_the_sfu.clone()));
        assert_eq!(listed(recorder.received()), (vec!["ann".into(), "bob".into()], through_the_sfu), "all people");
    }

    #[test]
    fn a_command_closes_exactly_the_connections_it_selects() {
        let mut rooms = Rooms::new("gw-1");
        let (mut ann, mut bob) = (connection("ann", "member", 8), connection("bob", "member", 8));
        rooms.admit(ROOM, ann.local.clone(), &joined("ann"));
        rooms.admit(ROOM, bob.local.clone(), &joined("bob"));
        ann.received();
        let closed = rooms.close_where(|room, peer| room == ROOM && peer.peer_id == "bob", &broadcast("bye"), 1008);
        assert_eq!(closed, 1);
        assert!(ann.received().is_empty());
        assert!(matches!(bob.outbound.try_recv(), Ok(Outbound::CloseWith { code: 1008, .. })));
    }
}
