//! The rooms and peers this instance serves, their presence in Redis, and fan-out to the other
//! instances serving the same rooms.
//!
//! Presence (`crate::presence`; see docs/protocol.md) is the room's membership across every
//! instance, so capacity is checked there, atomically: with N clients racing for a room of
//! capacity k on any number of instances, exactly k get in. Delivery to peers on this instance
//! goes straight to their outbound queue and never waits: a full queue marks the peer as a slow
//! consumer, to be disconnected, and the rest of the room carries on. Events then go to the other
//! instances through the room's Redis channel, which this instance subscribes to while it has
//! peers in the room — local first, so peers on one instance keep talking while Redis is down.
//! Each instance numbers the events it publishes to a room; a receiver that sees a jump (a lost
//! publish, a dropped subscription) sends its peers a `resync` rather than let an offer go
//! missing unnoticed.
//!
//! A connection that drops keeps its peer's place for the resume window, whether its gateway
//! parked it or died: its client resumes it on any instance and nobody else notices. After a
//! Redis outage each instance puts its connections back and renews its heartbeat in one step,
//! and a peer is resynced only once every instance known to serve its room has done so (or has
//! had `INSTANCE_TTL` to), so no resync lists a room with half its peers missing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use confab_common::http::RequestId;
use confab_domain::CallRole;
use confab_protocol::bus::{self, Delivery, Fanout, PeerPresence, Restored, RoomEvent, Superseded, room_event::Event};
use confab_protocol::signal::{
    Kicked, Peer, PeerLeft, RoomClosed, ServerMessage, SpeakGranted, SpeakRevoked, server_message::Kind,
};
use prost::Message;
use redis::aio::{ConnectionManager, PubSubSink};

use crate::presence::{self, Admission, INSTANCE_TTL, Presence};
use crate::publisher::Publisher;
use crate::rooms::{LocalPeer, Outbound, Rooms, message};
use crate::seats::{self, RoomView};
use crate::sfu_queue::SfuQueue;
use crate::subscriptions::Subscriptions;

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("the room is full")]
    Full,
    #[error("too many connections of this user in the room")]
    TooManyConnections,
    #[error("presence unavailable: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Why a signal was not delivered.
#[derive(Debug, PartialEq, Eq)]
pub enum Undelivered {
    UnknownPeer,
}

pub struct Hub {
    rooms: Mutex<Rooms>,
    presence: Presence,
    instance_id: String,
    /// This process among all that have run as `instance_id`.
    incarnation: String,
    /// How long a peer whose connection is gone keeps its place for a resume.
    resume_window: Duration,
    subscriptions: Subscriptions,
    publisher: Publisher,
    sfu_queue: SfuQueue,
    /// Presence entries (room, peer) whose removal failed, retried by the liveness task.
    unfreed: Mutex<HashMap<(String, String), Unfreed>>,
    /// Between losing Redis and putting this instance's connections back: no heartbeat (whoever
    /// sees the heartbeat must see the connections) and no sweep.
    restoring: AtomicBool,
    /// Held while a restore runs, so the liveness task's retry and a reconnect never overlap.
    restore_running: tokio::sync::Mutex<()>,
    /// When this instance last got its connections back after a Redis outage: for
    /// `INSTANCE_TTL` after it, a missing heartbeat may only mean an instance that has not
    /// restored yet, so sweeps do not judge by it.
    restored_at: Mutex<Option<Instant>>,
    /// Rooms whose resync waits, after a Redis outage, for these other instances to restore.
    awaiting_restore: Mutex<HashMap<String, HashSet<String>>>,
}

/// A departed peer's presence entry still to be removed.
struct Unfreed {
    resume_hash: String,
    reason: String,
    /// Whether `peer_left` is still to be announced once removed.
    announce: bool,
}

/// Tries at putting presence back after a reconnect.
const RESTORE_ATTEMPTS: usize = 10;

impl Hub {
    pub fn new(redis: ConnectionManager, prefix: &str, instance_id: &str, resume_window: Duration) -> Self {
        Self {
            rooms: Mutex::new(Rooms::new(instance_id)),
            presence: Presence::new(redis.clone(), prefix),
            instance_id: instance_id.to_owned(),
            incarnation: new_incarnation(),
            resume_window,
            subscriptions: Subscriptions::new(prefix),
            sfu_queue: SfuQueue::new(redis.clone(), prefix),
            publisher: Publisher::start(redis),
            unfreed: Mutex::default(),
            restoring: AtomicBool::new(false),
            restore_running: tokio::sync::Mutex::new(()),
            restored_at: Mutex::new(None),
            awaiting_restore: Mutex::default(),
        }
    }

    /// A (re)connected subscriber: listen to the control channel and every room with local peers.
    pub async fn attach(self: &Arc<Self>, sink: PubSubSink) -> redis::RedisResult<()> {
        if self.subscriptions.attach(sink).await? {
            self.restore().await;
        }
        Ok(())
    }

    /// The subscriber lost its connection.
    pub async fn detach(&self) {
        self.restoring.store(true, Ordering::SeqCst);
        self.subscriptions.detach().await;
        // Whatever comes after the reconnect is compared with nothing: `restore` resyncs anyway.
        self.rooms().forget_heard();
    }

    /// Whether this instance still has to put its connections back after a Redis outage.
    pub fn restoring(&self) -> bool {
        self.restoring.load(Ordering::SeqCst)
    }

    /// Whether the subscriber is connected.
    pub fn is_attached(&self) -> bool {
        self.subscriptions.is_attached()
    }

    /// After a reconnect: puts this instance's connections back into presence with its heartbeat
    /// (a restarted Redis has lost both), tells the other instances, and resyncs each room once
    /// every instance known to serve it has done the same, since room events may have been
    /// missed meanwhile. Retried by the liveness task while it fails.
    pub async fn restore(self: &Arc<Self>) {
        let Ok(_running) = self.restore_running.try_lock() else { return };
        if !self.restoring() {
            return;
        }
        let snapshot: Vec<(String, Vec<PeerPresence>)> = self
            .rooms()
            .each_room()
            .map(|(room_id, room)| (room_id.clone(), room.map(|local| self.entry_of(local)).collect()))
            .collect();
        let mut outcome = Err(redis::RedisError::from((redis::ErrorKind::Io, "not tried")));
        // The command connection may still be reconnecting to the restarted server.
        for _ in 0..RESTORE_ATTEMPTS {
            outcome = self.presence.restore(&self.instance_id, &self.incarnation, &snapshot).await;
            if outcome.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let restored = match outcome {
            Ok(restored) => restored,
            Err(e) => {
                tracing::warn!(error = %e, "could not restore presence; will retry");
                return;
            }
        };
        self.restoring.store(false, Ordering::SeqCst);
        *lock(&self.restored_at) = Some(Instant::now());
        let mut awaiting: HashMap<String, HashSet<String>> = HashMap::new();
        for ((room_id, _), restored) in snapshot.into_iter().zip(restored) {
            for peer_id in &restored.moved {
                let hash = self.rooms().local_hash(&room_id, peer_id);
                if let Some(hash) = hash {
                    self.drop_superseded(&room_id, peer_id, &hash).await;
                }
            }
            self.publish(&room_id, Event::Restored(Restored { added: restored.added }), None);
            let others = self.rooms().other_instances(&room_id);
            awaiting.insert(room_id, others);
        }
        let instances: Vec<String> = awaiting.values().flatten().cloned().collect::<HashSet<_>>().into_iter().collect();
        let restored_instances: HashSet<String> = match self.presence.incarnations(&instances).await {
            Ok(live) => instances.into_iter().zip(live).filter(|(_, live)| live.is_some()).map(|(id, _)| id).collect(),
            Err(_) => HashSet::new(),
        };
        for (room_id, mut others) in awaiting {
            others.retain(|id| !restored_instances.contains(id));
            if others.is_empty() {
                self.resync(&room_id).await;
                continue;
            }
            lock(&self.awaiting_restore).insert(room_id.clone(), others);
            let hub = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(INSTANCE_TTL).await;
                // Whoever has not restored by now is dead: resync without them.
                if lock(&hub.awaiting_restore).remove(&room_id).is_some() {
                    hub.resync(&room_id).await;
                }
            });
        }
    }

    /// Another instance put its connections in `room_id` back: resync if this instance was
    /// waiting for it, or if presence had lost some of them (the room's peers here may have
    /// dropped them meanwhile).
    fn restored_elsewhere(self: &Arc<Self>, room_id: &str, origin: &str, added: u32) {
        let resync = {
            let mut awaiting = lock(&self.awaiting_restore);
            match awaiting.get_mut(room_id) {
                Some(others) => {
                    others.remove(origin);
                    others.is_empty() && awaiting.remove(room_id).is_some()
                }
                None => added > 0,
            }
        };
        if resync {
            let (hub, room_id) = (self.clone(), room_id.to_owned());
            tokio::spawn(async move { hub.resync(&room_id).await });
        }
    }

    /// Sends each local peer of the room the room's current peer list.
    async fn resync(&self, room_id: &str) {
        let present = match self.present(room_id).await {
            Ok(peers) => peers,
            Err(e) => {
                tracing::warn!(room.id = %room_id, error = %e, "could not resync the room");
                return;
            }
        };
        metrics::counter!("gateway_resyncs_total").increment(1);
        self.rooms().resync(room_id, &present);
    }

    /// The presence entry of a live connection on this instance.
    fn entry_of(&self, local: &LocalPeer) -> PeerPresence {
        PeerPresence {
            peer_id: local.peer.peer_id.clone(),
            user_id: local.peer.user_id.clone(),
            display_name: local.peer.display_name.clone(),
            role: local.role.to_string(),
            instance_id: self.instance_id.clone(),
            joined_at: local.joined_at.clone(),
            recording_id: local.recording_id.clone(),
            incarnation: self.incarnation.clone(),
            resume_hash: local.resume_hash.clone(),
            parked_until_ms: 0,
        }
    }

    async fn hold_room(&self, room_id: &str) -> redis::RedisResult<()> {
        self.subscriptions.hold(room_id).await
    }

    /// One local peer fewer in the room; with the last, this instance stops serving it.
    async fn release_room(&self, room_id: &str) {
        self.subscriptions
            .release(room_id, || {
                self.rooms().forget(room_id);
                lock(&self.awaiting_restore).remove(room_id);
            })
            .await;
    }

    /// Sends a room event to the other instances, numbered in the room's sequence; never waits.
    fn publish(&self, room_id: &str, event: Event, read_at: Option<SystemTime>) {
        let mut rooms = self.rooms();
        let read_at_us =
            read_at.map_or(0, |at| at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_micros());
        let event = RoomEvent {
            origin_instance: self.instance_id.clone(),
            event: Some(event),
            seq: rooms.next_seq(room_id),
            read_at_us: read_at_us as i64,
        };
        // Queued under the lock: the publisher sends in sequence order.
        self.publisher.send(self.subscriptions.room_channel(room_id), event.encode_to_vec());
    }

    /// Handles a message from a subscribed channel.
    pub fn dispatch(self: &Arc<Self>, channel: &str, payload: &[u8]) {
        if channel == self.subscriptions.control_channel() {
            match bus::Control::decode(payload) {
                Ok(control) => self.apply_control(control),
                Err(e) => tracing::warn!(error = %e, "unreadable control message"),
            }
            return;
        }
        let Some(room_id) = self.subscriptions.room_of_channel(channel) else { return };
        let event = match RoomEvent::decode(payload) {
            Ok(event) if event.origin_instance != self.instance_id => event,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable room event");
                return;
            }
        };
        let missed = self.rooms().missed_before(room_id, &event.origin_instance, event.seq);
        if missed {
            tracing::info!(room.id = room_id, instance.id = %event.origin_instance, "room events were missed; resyncing");
            let (hub, room_id) = (self.clone(), room_id.to_owned());
            tokio::spawn(async move { hub.resync(&room_id).await });
        }
        let read_at =
            (event.read_at_us > 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_micros(event.read_at_us as u64));
        let origin = event.origin_instance.as_str();
        match event.event {
            Some(Event::Delivery(Delivery { to, message: Some(message) })) => {
                // Not here (any more): the instance that holds it got it too, or it left.
                let _ = self.rooms().deliver(room_id, &to, message, read_at);
            }
            Some(Event::Fanout(Fanout { except, message: Some(message) })) => {
                self.rooms().fanout(room_id, &except, &message, read_at, origin)
            }
            Some(Event::Superseded(Superseded { peer_id, resume_hash })) => {
                self.rooms().moved(room_id, &peer_id, origin);
                let (hub, room_id) = (self.clone(), room_id.to_owned());
                tokio::spawn(async move { hub.drop_superseded(&room_id, &peer_id, &resume_hash).await });
            }
            Some(Event::Restored(Restored { added })) => self.restored_elsewhere(room_id, origin, added),
            _ => {}
        }
    }

    /// Carries out a command from the API on this instance's connections, and logs it with the
    /// id of the API request behind it (`request.id`), so one request can be followed across
    /// services. Only a well-formed id is logged.
    fn apply_control(&self, control: bus::Control) {
        use bus::control::Command;
        let request_id = RequestId::parse(&control.request_id).map(|RequestId(id)| id).unwrap_or_default();
        let kicked = |reason: &str| message(Kind::Kicked(Kicked { reason: reason.to_owned() }));
        let (command, room_id, reached) = match control.command {
            Some(Command::CloseRoom(c)) => {
                let closed =
                    self.close_where(|room, _| room == c.room_id, &message(Kind::RoomClosed(RoomClosed {})), 1000);
                ("close_room", Some(c.room_id), closed)
            }
            Some(Command::RemoveUser(c)) => {
                let closed =
                    self.close_where(|room, p| room == c.room_id && p.user_id == c.user_id, &kicked(&c.reason), 1008);
                ("remove_user", Some(c.room_id), closed)
            }
            Some(Command::KickPeer(c)) => {
                let closed =
                    self.close_where(|room, p| room == c.room_id && p.peer_id == c.peer_id, &kicked("kicked"), 1008);
                ("kick_peer", Some(c.room_id), closed)
            }
            Some(Command::DisconnectUser(c)) => {
                ("disconnect_user", None, self.close_where(|_, p| p.user_id == c.user_id, &kicked(&c.reason), 1008))
            }
            Some(Command::GrantSpeaker(c)) => {
                let granted = message(Kind::SpeakGranted(SpeakGranted { peer_id: c.peer_id }));
                ("grant_speaker", Some(c.room_id.clone()), self.rooms().tell_everyone(&c.room_id, &granted))
            }
            Some(Command::RevokeSpeaker(c)) => {
                let revoked = message(Kind::SpeakRevoked(SpeakRevoked { peer_id: c.peer_id }));
                ("revoke_speaker", Some(c.room_id.clone()), self.rooms().tell_everyone(&c.room_id, &revoked))
            }
            None => ("unknown", None, 0),
        };
        // Every instance hears every command: those without a connection concerned say so quietly.
        if reached > 0 {
            tracing::info!(request.id = %request_id, command, room.id = room_id.as_deref(), connections = reached, "control command applied");
        } else {
            tracing::debug!(request.id = %request_id, command, room.id = room_id.as_deref(), "control command: no local connection concerned");
        }
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, Rooms> {
        lock(&self.rooms)
    }

    /// Admits `local` to the room if it has room for one more across all instances, announces it
    /// to the peers here, places the room on an SFU if a participant's arrival makes its call
    /// need one (`local.media`, from the ticket), and returns everyone else already in the call.
    pub async fn join(
        &self,
        room_id: &str,
        local: LocalPeer,
        capacity: u32,
        per_user: u32,
    ) -> Result<RoomView, JoinError> {
        let peer_id = local.peer.peer_id.clone();
        let placeless = local.role.is_service();
        self.hold_room(room_id).await?;
        let admitted = self.presence.admit(room_id, &self.entry_of(&local), capacity, per_user, placeless).await;
        let present = match admitted {
            Ok(Admission::Admitted) => self.present(room_id).await,
            Ok(refused) => {
                self.release_room(room_id).await;
                return Err(if refused == Admission::Full { JoinError::Full } else { JoinError::TooManyConnections });
            }
            Err(e) => Err(e),
        };
        let present = match present {
            Ok(present) => present,
            Err(e) => {
                self.release_room(room_id).await;
                return Err(e.into());
            }
        };
        let view = seats::view_for(&local.peer, local.role, &present);
        let joined = seats::arrival(&local.peer, local.role, &local.recording_id);
        let media = local.media;
        self.rooms().admit(room_id, local, &joined);
        self.publish(room_id, Event::Fanout(Fanout { except: peer_id, message: Some(joined) }), None);
        if !placeless {
            self.sfu_queue.after_arrival(room_id, media, &present).await;
        }
        Ok(view)
    }

    /// Everyone in the room's presence, oldest first; refreshes `known` on the way.
    async fn present(&self, room_id: &str) -> redis::RedisResult<Vec<PeerPresence>> {
        let present = self.presence.read(room_id).await?;
        self.rooms().learn(room_id, &present);
        Ok(present)
    }

    /// Hands the place of the connection whose resume token is `old_token` to `local`, wherever
    /// that connection was: parked here or elsewhere, still open on another instance (which then
    /// closes it without a word), or on an instance that died. The peer keeps its id and nobody
    /// is told. Returns the peer id and the room as it sees it; `None` if the token names no
    /// connection of this user in the room (already resumed, or gone).
    pub async fn resume(
        &self,
        room_id: &str,
        old_token: &str,
        local: &LocalPeer,
    ) -> Result<Option<(String, RoomView)>, JoinError> {
        let old_hash = presence::resume_hash(old_token);
        self.hold_room(room_id).await?;
        let resumed = self.presence.resume(room_id, &local.peer.user_id, &old_hash, &self.entry_of(local)).await;
        let old = match resumed {
            Ok(Some(old)) => old,
            Ok(None) => {
                self.release_room(room_id).await;
                return Ok(None);
            }
            Err(e) => {
                self.release_room(room_id).await;
                return Err(e.into());
            }
        };
        let peer_id = old.peer_id.clone();
        if old.parked_until_ms == 0 {
            self.drop_superseded(room_id, &peer_id, &old_hash).await;
            let superseded = Superseded { peer_id: peer_id.clone(), resume_hash: old_hash };
            self.publish(room_id, Event::Superseded(superseded), None);
        }
        let local = LocalPeer {
            peer: Peer { peer_id: peer_id.clone(), ..local.peer.clone() },
            joined_at: old.joined_at,
            ..local.clone()
        };
        let present = match self.present(room_id).await {
            Ok(present) => present,
            Err(e) => {
                // Taken but not served: the place goes as if the connection dropped at once.
                self.free_later(room_id, &peer_id, &local.resume_hash, "disconnected", true, &e);
                self.release_room(room_id).await;
                return Err(e.into());
            }
        };
        let view = seats::view_for(&local.peer, local.role, &present);
        self.rooms().resume(room_id, local);
        Ok(Some((peer_id, view)))
    }

    /// Closes this instance's connection `resume_hash` of `peer_id`, whose client resumed it
    /// elsewhere: no departure, the peer lives on in the new connection.
    async fn drop_superseded(&self, room_id: &str, peer_id: &str, resume_hash: &str) {
        let dropped = self.rooms().remove(room_id, peer_id, resume_hash);
        if let Some(local) = dropped {
            tracing::info!(room.id = %room_id, peer.id = %peer_id, "connection resumed elsewhere; closing this one");
            if local.outbound.try_send(Outbound::Superseded).is_err() {
                local.slow.notify_one();
            }
            self.release_room(room_id).await;
        }
    }

    /// Takes the connection `resume_hash` of a peer off this instance without telling anyone:
    /// its place is kept for `window`, so the client can resume it on any instance and keep its
    /// peer id. If it does not, it leaves as `disconnected` when the window ends.
    pub async fn park(self: &Arc<Self>, room_id: &str, peer_id: &str, resume_hash: &str, window: Duration) {
        if self.rooms().remove(room_id, peer_id, resume_hash).is_none() {
            return;
        }
        self.release_room(room_id).await;
        if let Err(e) = self.presence.park(room_id, peer_id, resume_hash, window).await {
            // Still resumable: its entry is the connection's; the timer below frees it.
            tracing::warn!(error = %e, "could not park the peer for resumption");
        }
        let (hub, room_id, peer_id, resume_hash) =
            (self.clone(), room_id.to_owned(), peer_id.to_owned(), resume_hash.to_owned());
        actix_web::rt::spawn(async move {
            tokio::time::sleep(window).await;
            // A resume changed the entry's connection, and then this frees nothing.
            hub.depart(&room_id, &peer_id, &resume_hash, "disconnected").await;
        });
    }

    /// Frees a departed (not local) participant's place and tells every instance's peers.
    async fn depart(&self, room_id: &str, peer_id: &str, resume_hash: &str, reason: &str) {
        match self.presence.free(room_id, peer_id, resume_hash, reason).await {
            Ok(true) => self.announce_left(room_id, peer_id, reason),
            Ok(false) => {}
            Err(e) => self.free_later(room_id, peer_id, resume_hash, reason, true, &e),
        }
    }

    fn announce_left(&self, room_id: &str, peer_id: &str, reason: &str) {
        self.announce_departure(
            room_id,
            peer_id,
            message(Kind::PeerLeft(PeerLeft { peer_id: peer_id.to_owned(), reason: reason.to_owned() })),
        );
    }

    fn announce_departure(&self, room_id: &str, peer_id: &str, left: ServerMessage) {
        self.rooms().fanout(room_id, peer_id, &left, None, &self.instance_id);
        self.publish(room_id, Event::Fanout(Fanout { except: peer_id.to_owned(), message: Some(left) }), None);
    }

    /// Keeps a presence entry whose removal failed for `retry_removals`, so a Redis blip does not
    /// leave a ghost holding a place in the room.
    fn free_later(
        &self,
        room_id: &str,
        peer_id: &str,
        resume_hash: &str,
        reason: &str,
        announce: bool,
        error: &redis::RedisError,
    ) {
        tracing::warn!(room.id = room_id, peer.id = peer_id, error = %error, "could not clear presence; will retry");
        let unfreed = Unfreed { resume_hash: resume_hash.to_owned(), reason: reason.to_owned(), announce };
        lock(&self.unfreed).insert((room_id.to_owned(), peer_id.to_owned()), unfreed);
    }

    /// Retries the presence removals that failed; returns how many are still pending.
    pub async fn retry_removals(&self) -> usize {
        let pending: Vec<_> = lock(&self.unfreed).drain().collect();
        for ((room_id, peer_id), unfreed) in pending {
            match self.presence.free(&room_id, &peer_id, &unfreed.resume_hash, &unfreed.reason).await {
                Ok(removed) => {
                    if removed && unfreed.announce {
                        self.announce_left(&room_id, &peer_id, &unfreed.reason);
                    }
                }
                Err(_) => {
                    lock(&self.unfreed).insert((room_id, peer_id), unfreed);
                }
            }
        }
        lock(&self.unfreed).len()
    }

    /// Removes this instance's connection `resume_hash` of the peer, frees its place, and tells
    /// the others why it left.
    pub async fn leave(&self, room_id: &str, peer_id: &str, resume_hash: &str, reason: &str) {
        let Some(gone) = self.rooms().remove(room_id, peer_id, resume_hash) else { return };
        // The peers here hear of a departure at once, Redis or not; but whether a media server's
        // seat leaves another behind, presence tells only once it has let this one go.
        let told_here = (gone.role != CallRole::Sfu).then(|| {
            let left = seats::departure(peer_id, gone.role, &gone.recording_id, reason, None);
            self.rooms().fanout(room_id, peer_id, &left, None, &self.instance_id);
            left
        });
        // Presence goes before the other instances hear `peer_left`: a peer there that signals
        // the departed one afterwards must be told `unknown_peer`, not have it vanish.
        if let Err(e) = self.presence.free(room_id, peer_id, resume_hash, reason).await {
            self.free_later(room_id, peer_id, resume_hash, reason, false, &e);
        }
        match told_here {
            Some(left) => {
                self.publish(room_id, Event::Fanout(Fanout { except: peer_id.to_owned(), message: Some(left) }), None)
            }
            None => {
                // A media server's seat: who is left says which seat the call goes through now,
                // and whether the room still needs one.
                let present = self.present_after_departure(room_id).await;
                let remaining_sfu = present.as_deref().and_then(seats::newest_sfu);
                // One whose seat dropped out (it died) with no other seat left is replaced at once
                // (by the room settings its ticket carried); meanwhile its participants keep their
                // connections rather than fall back to a mesh until the next one's seat arrives.
                let replaced = match &present {
                    Some(present) if remaining_sfu.is_none() && reason == "disconnected" => {
                        self.sfu_queue.after_failure(room_id, gone.media, present, &gone.peer.user_id).await
                    }
                    _ => false,
                };
                if !replaced {
                    let left = seats::departure(peer_id, gone.role, &gone.recording_id, reason, remaining_sfu);
                    self.announce_departure(room_id, peer_id, left);
                }
            }
        }
        self.release_room(room_id).await;
    }

    /// The room's presence after a media server's seat left it; `None` (logged) if Redis failed.
    /// Not `present`: the sweep reads rooms this instance does not serve, nothing to learn.
    async fn present_after_departure(&self, room_id: &str) -> Option<Vec<PeerPresence>> {
        match self.presence.read(room_id).await {
            Ok(present) => Some(present),
            Err(e) => {
                tracing::warn!(room.id = %room_id, error = %e, "could not tell which SFU serves the room now");
                None
            }
        }
    }

    /// How the room learns that a peer left, once presence has let it go. For a media server's
    /// seat, presence says which seat the call now goes through: the newest still there, if any.
    async fn departure_of(
        &self,
        room_id: &str,
        peer_id: &str,
        role: CallRole,
        recording_id: &str,
        reason: &str,
    ) -> ServerMessage {
        let remaining_sfu = if role != CallRole::Sfu {
            None
        } else {
            self.present_after_departure(room_id).await.as_deref().and_then(seats::newest_sfu)
        };
        seats::departure(peer_id, role, recording_id, reason, remaining_sfu)
    }

    /// Renews this instance's heartbeat key, which names this process's incarnation.
    pub async fn heartbeat(&self) -> redis::RedisResult<()> {
        self.presence.heartbeat(&self.instance_id, &self.incarnation).await
    }

    /// Looks at every room's presence for peers whose connection is gone: a parked peer whose
    /// window has ended leaves as `disconnected`; a peer of a dead gateway process (its instance's
    /// heartbeat expired, or names another incarnation: the instance was restarted) keeps its
    /// place for a resume for what is left of the window, counted from the death (a recorder or
    /// camera leaves at once: it rejoins afresh). Returns how many peers left.
    pub async fn sweep(&self) -> redis::RedisResult<usize> {
        let now_ms = self.presence.now_ms().await?;
        // Just after a Redis outage, a missing heartbeat may be an instance still restoring.
        let judge_heartbeats = lock(&self.restored_at).is_none_or(|at| at.elapsed() >= INSTANCE_TTL);
        let mut incarnations: HashMap<String, Option<String>> =
            HashMap::from([(self.instance_id.clone(), Some(self.incarnation.clone()))]);
        let mut swept = 0;
        for room_id in self.presence.live_rooms().await? {
            for entry in self.presence.read(&room_id).await? {
                if entry.parked_until_ms > 0 {
                    if entry.parked_until_ms <= now_ms && self.sweep_out(&room_id, &entry).await? {
                        swept += 1;
                    }
                    continue;
                }
                if entry.instance_id != self.instance_id && !judge_heartbeats {
                    continue;
                }
                if !incarnations.contains_key(&entry.instance_id) {
                    let live = self.presence.incarnations(std::slice::from_ref(&entry.instance_id)).await?;
                    incarnations.insert(entry.instance_id.clone(), live.into_iter().next().flatten());
                }
                let dead = match &incarnations[&entry.instance_id] {
                    None => true,
                    // An entry without an incarnation comes from a gateway too old to write one.
                    Some(live) => !entry.incarnation.is_empty() && *live != entry.incarnation,
                };
                if !dead {
                    continue;
                }
                if seats::role_of(&entry).is_service() {
                    if self.sweep_out(&room_id, &entry).await? {
                        swept += 1;
                    }
                    continue;
                }
                // An expired heartbeat means the death was INSTANCE_TTL ago; a newer incarnation
                // under the same id, that it was just now.
                let since_death =
                    if incarnations[&entry.instance_id].is_none() { INSTANCE_TTL } else { Duration::ZERO };
                let window = self.resume_window.saturating_sub(since_death);
                if self.presence.park(&room_id, &entry.peer_id, &entry.resume_hash, window).await? {
                    tracing::info!(room.id = %room_id, peer.id = %entry.peer_id, instance.id = %entry.instance_id, "peer of a dead gateway kept for a resume");
                }
            }
        }
        Ok(swept)
    }

    /// Frees a gone peer's place and tells every instance's peers; true if this call freed it.
    async fn sweep_out(&self, room_id: &str, entry: &PeerPresence) -> redis::RedisResult<bool> {
        if !self.presence.free(room_id, &entry.peer_id, &entry.resume_hash, "disconnected").await? {
            return Ok(false);
        }
        tracing::info!(room.id = %room_id, peer.id = %entry.peer_id, instance.id = %entry.instance_id, "peer left: its connection is gone");
        let left = self
            .departure_of(room_id, &entry.peer_id, seats::role_of(entry), &entry.recording_id, "disconnected")
            .await;
        self.announce_departure(room_id, &entry.peer_id, left);
        Ok(true)
    }

    /// Queues `message`, read from a client at `read_at`, for the peer `to` of the room, here or
    /// on the instance that holds it.
    pub async fn deliver(
        &self,
        room_id: &str,
        to: &str,
        message: ServerMessage,
        read_at: SystemTime,
    ) -> Result<(), Undelivered> {
        let (message, known) = {
            let rooms = self.rooms();
            match rooms.deliver(room_id, to, message, Some(read_at)) {
                None => return Ok(()),
                Some(message) => (message, rooms.knows(room_id, to)),
            }
        };
        let present = known || self.presence.contains(room_id, to).await.unwrap_or(false);
        if !present {
            return Err(Undelivered::UnknownPeer);
        }
        self.publish(room_id, Event::Delivery(Delivery { to: to.to_owned(), message: Some(message) }), Some(read_at));
        Ok(())
    }

    /// Queues `message`, read from the client `from` at `read_at`, for every other peer of the
    /// room, on every instance.
    pub fn broadcast(&self, room_id: &str, from: &str, message: ServerMessage, read_at: SystemTime) {
        self.rooms().fanout(room_id, from, &message, Some(read_at), &self.instance_id);
        self.publish(room_id, Event::Fanout(Fanout { except: from.to_owned(), message: Some(message) }), Some(read_at));
    }

    /// Queues a last message and a close for every connection matching `select`; how many.
    pub fn close_where(&self, select: impl Fn(&str, &Peer) -> bool, last: &ServerMessage, code: u16) -> usize {
        self.rooms().close_where(select, last, code)
    }

    /// Local connections, for metrics and shutdown.
    pub fn connection_count(&self) -> usize {
        self.rooms().connection_count()
    }

    /// Rooms with at least one connection on this instance, for metrics.
    pub fn room_count(&self) -> usize {
        self.rooms().room_count()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Unique to this process: the start time and 64 random bits.
fn new_incarnation() -> String {
    let started = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis();
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).expect("the OS random source is available");
    format!("{started}-{}", u64::from_le_bytes(random))
}
