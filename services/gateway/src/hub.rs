//! The rooms and peers this instance serves, their presence in Redis, and fan-out to the other
//! instances serving the same rooms.
//!
//! Presence (`{prefix}:room:{room_id}:peers`, `{prefix}:rooms:live`; see docs/protocol.md) is
//! the room's membership across every instance, so capacity is checked there, atomically, by
//! one Lua script: with N clients racing for a room of capacity k on any number of instances,
//! exactly k get in. Delivery to peers on this instance goes straight to their outbound queue and
//! never waits: a full queue marks the peer as a slow consumer, to be disconnected, and the rest
//! of the room carries on. Events then go to the other instances through the room's Redis
//! channel, which this instance subscribes to while it has peers in the room — local first, so
//! peers on one instance keep talking while Redis is down. Each instance numbers the events it
//! publishes to a room; a receiver that sees a jump (a lost publish, a dropped subscription)
//! sends its peers a `resync` rather than let an offer go missing unnoticed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use confab_common::http::RequestId;
use confab_common::presence_events;
use confab_protocol::bus::{self, Delivery, Fanout, PeerPresence, RoomEvent, room_event::Event};
use confab_protocol::signal::{
    Kicked, Peer, PeerJoined, PeerLeft, Resync, RoomClosed, ServerMessage, server_message::Kind,
};
use prost::Message;
use redis::aio::{ConnectionManager, PubSubSink};
use tokio::sync::{Notify, mpsc};

use crate::publisher::Publisher;
use crate::recording::{self, RoomView};

/// Admits a peer if the room has a free place and the user fewer than ARGV[6] connections in
/// it: 1 admitted, 0 room full, -1 too many connections of this user. Recorders and cameras
/// (ARGV[7] = 1) take no place and are neither counted nor limited. A participant's arrival goes on the
/// presence event stream (KEYS[3]) in the same step, so no join is ever left out of it.
const JOIN: &str = r"
if ARGV[7] ~= '1' then
  local present, mine = 0, 0
  for _, entry in ipairs(redis.call('HVALS', KEYS[1])) do
    local peer = cjson.decode(entry)
    if peer.role ~= 'recorder' and peer.role ~= 'camera' then
      present = present + 1
      if peer.user_id == ARGV[5] then mine = mine + 1 end
    end
  end
  if present >= tonumber(ARGV[1]) then return 0 end
  if mine >= tonumber(ARGV[6]) then return -1 end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
if ARGV[7] ~= '1' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*',
    'type', 'participant.joined', 'room_id', ARGV[4], 'peer', ARGV[3])
end
return 1
";

/// Removes a peer's presence (1 if this call removed it) and, for a participant, puts its
/// departure with the reason ARGV[3] on the presence event stream in the same step (recorders
/// and cameras are not participants).
const LEAVE: &str = r"
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if entry then redis.call('HDEL', KEYS[1], ARGV[1]) end
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
if not entry then return 0 end
local role = cjson.decode(entry).role
if role ~= 'recorder' and role ~= 'camera' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*',
    'type', 'participant.left', 'room_id', ARGV[2], 'peer', entry, 'reason', ARGV[3])
end
return 1
";

/// An instance that has not renewed its heartbeat for this long is dead.
pub const INSTANCE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

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
}

/// A connection on this instance, as the hub sees it.
pub struct LocalPeer {
    pub peer: Peer,
    /// RFC 3339, when the peer joined.
    pub joined_at: String,
    /// The recording a recorder captures; empty for participants.
    pub recording_id: String,
    pub outbound: mpsc::Sender<Outbound>,
    /// Notified when the outbound queue overflowed: the connection must close.
    pub slow: Arc<Notify>,
}

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
    rooms: Mutex<HashMap<String, HashMap<String, LocalPeer>>>,
    redis: ConnectionManager,
    prefix: String,
    instance_id: String,
    join: redis::Script,
    leave: redis::Script,
    subscriptions: tokio::sync::Mutex<Subscriptions>,
    publisher: Publisher,
    /// Events this instance published per room, while it has local peers there.
    published: Mutex<HashMap<String, u64>>,
    /// The last sequence number heard per (room, origin instance) on subscribed rooms.
    heard: Mutex<HashMap<(String, String), u64>>,
    /// Peer ids in each room with local peers, on any instance, as far as this instance has
    /// heard (presence read at join and resync, then `peer_joined`/`peer_left`): spares a Redis
    /// lookup per relayed signal. A peer missing here is looked up in presence.
    known: Mutex<HashMap<String, HashSet<String>>>,
    /// Presence entries (room, peer) whose removal failed, with why the peer left and whether
    /// `peer_left` is still to be announced once removed. Retried by the liveness task.
    unfreed: Mutex<HashMap<(String, String), Unfreed>>,
    /// Whether the subscriber is connected; joins wait a moment for it after start-up or a
    /// Redis outage rather than failing at once.
    attached: tokio::sync::watch::Sender<bool>,
    /// Set on the first connection; a later attach is a reconnect.
    ever_attached: std::sync::atomic::AtomicBool,
}

/// A departed peer's presence entry still to be removed.
struct Unfreed {
    reason: String,
    announce: bool,
}

/// Tries at putting presence back after a reconnect.
const RESTORE_ATTEMPTS: usize = 10;

/// How long a join waits for the subscriber to (re)connect.
const ATTACH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The room channels this instance listens on, and how many local peers (joined or joining) need
/// each. Changed only under its lock, so a room is never unsubscribed under a joining peer.
#[derive(Default)]
struct Subscriptions {
    sink: Option<PubSubSink>,
    rooms: HashMap<String, usize>,
}

impl Hub {
    pub fn new(redis: ConnectionManager, prefix: &str, instance_id: &str) -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
            prefix: prefix.to_owned(),
            instance_id: instance_id.to_owned(),
            join: redis::Script::new(JOIN),
            leave: redis::Script::new(LEAVE),
            subscriptions: tokio::sync::Mutex::new(Subscriptions::default()),
            publisher: Publisher::start(redis.clone()),
            published: Mutex::default(),
            heard: Mutex::default(),
            known: Mutex::default(),
            unfreed: Mutex::default(),
            attached: tokio::sync::watch::Sender::new(false),
            ever_attached: std::sync::atomic::AtomicBool::new(false),
            redis,
        }
    }

    pub fn control_channel(&self) -> String {
        format!("{}:control", self.prefix)
    }

    fn room_channel(&self, room_id: &str) -> String {
        format!("{}:room:{room_id}:bus", self.prefix)
    }

    /// The room id of a room channel name.
    pub fn room_of_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel.strip_prefix(&self.prefix)?.strip_prefix(":room:")?.strip_suffix(":bus")
    }

    /// A (re)connected subscriber: listen to the control channel and every room with local peers.
    pub async fn attach(&self, mut sink: PubSubSink) -> redis::RedisResult<()> {
        {
            let mut subs = self.subscriptions.lock().await;
            sink.subscribe(self.control_channel()).await?;
            for room_id in subs.rooms.keys() {
                sink.subscribe(self.room_channel(room_id)).await?;
            }
            subs.sink = Some(sink);
        }
        let reconnected = self.ever_attached.swap(true, std::sync::atomic::Ordering::SeqCst);
        self.attached.send_replace(true);
        if reconnected {
            self.restore().await;
        }
        Ok(())
    }

    /// After a reconnect: puts this instance's peers back into presence (a restarted Redis has
    /// lost it) and resyncs every room, since room events may have been missed while the
    /// subscription was down.
    async fn restore(&self) {
        let snapshot: Vec<(String, Vec<(String, String)>)> = self
            .rooms()
            .iter()
            .map(|(room_id, room)| {
                let entries =
                    room.values().map(|local| (local.peer.peer_id.clone(), self.presence_json(local))).collect();
                (room_id.clone(), entries)
            })
            .collect();
        for (room_id, entries) in snapshot {
            let mut redis = self.redis.clone();
            let mut restored: redis::RedisResult<()> = Ok(());
            // The command connection may still be reconnecting to the restarted server.
            for _ in 0..RESTORE_ATTEMPTS {
                restored = redis::pipe()
                    .hset_multiple(self.peers_key(&room_id), &entries)
                    .ignore()
                    .sadd(self.live_key(), &room_id)
                    .ignore()
                    .query_async(&mut redis)
                    .await;
                if restored.is_ok() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            match restored {
                Ok(()) => self.resync(&room_id).await,
                Err(e) => tracing::warn!(room.id = %room_id, error = %e, "could not restore presence"),
            }
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
        if let Some(room) = self.rooms().get(room_id) {
            for local in room.values() {
                let peers = recording::view_for(&local.peer, &present).peers;
                push(local, message(Kind::Resync(Resync { peers })));
            }
        }
    }

    fn presence_json(&self, local: &LocalPeer) -> String {
        let presence = PeerPresence {
            peer_id: local.peer.peer_id.clone(),
            user_id: local.peer.user_id.clone(),
            display_name: local.peer.display_name.clone(),
            role: local.peer.role.clone(),
            instance_id: self.instance_id.clone(),
            joined_at: local.joined_at.clone(),
            recording_id: local.recording_id.clone(),
        };
        serde_json::to_string(&presence).expect("presence serializes")
    }

    /// The subscriber lost its connection.
    pub async fn detach(&self) {
        self.subscriptions.lock().await.sink = None;
        // Whatever comes after the reconnect is compared with nothing: `restore` resyncs anyway.
        lock(&self.heard).clear();
        self.attached.send_replace(false);
    }

    async fn hold_room(&self, room_id: &str) -> redis::RedisResult<()> {
        let mut attached = self.attached.subscribe();
        let _ = tokio::time::timeout(ATTACH_WAIT, attached.wait_for(|up| *up)).await;
        let mut subs = self.subscriptions.lock().await;
        let holders = subs.rooms.get(room_id).copied().unwrap_or(0);
        if holders == 0 {
            let channel = self.room_channel(room_id);
            let sink = subs.sink.as_mut().ok_or_else(|| {
                redis::RedisError::from((redis::ErrorKind::Io, "the room channel subscriber is not connected"))
            })?;
            sink.subscribe(channel).await?;
        }
        subs.rooms.insert(room_id.to_owned(), holders + 1);
        Ok(())
    }

    async fn release_room(&self, room_id: &str) {
        let mut subs = self.subscriptions.lock().await;
        let holders = subs.rooms.get(room_id).copied().unwrap_or(1) - 1;
        if holders > 0 {
            subs.rooms.insert(room_id.to_owned(), holders);
            return;
        }
        subs.rooms.remove(room_id);
        lock(&self.heard).retain(|(room, _), _| room != room_id);
        lock(&self.known).remove(room_id);
        let channel = self.room_channel(room_id);
        if let Some(sink) = subs.sink.as_mut() {
            let _ = sink.unsubscribe(channel).await;
        }
    }

    /// Sends a room event to the other instances, numbered in the room's sequence; never waits.
    fn publish(&self, room_id: &str, event: Event, read_at: Option<SystemTime>) {
        let mut published = lock(&self.published);
        let seq = published.entry(room_id.to_owned()).or_insert(0);
        *seq += 1;
        let read_at_us =
            read_at.map_or(0, |at| at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_micros());
        let event = RoomEvent {
            origin_instance: self.instance_id.clone(),
            event: Some(event),
            seq: *seq,
            read_at_us: read_at_us as i64,
        };
        // Queued under the lock: the publisher sends in sequence order.
        self.publisher.send(self.room_channel(room_id), event.encode_to_vec());
        if !self.rooms().contains_key(room_id) {
            // Nobody here any more: the next event starts a new series.
            published.remove(room_id);
        }
    }

    /// Handles a message from a subscribed channel.
    pub fn dispatch(self: &Arc<Self>, channel: &str, payload: &[u8]) {
        if channel == self.control_channel() {
            match bus::Control::decode(payload) {
                Ok(control) => self.apply_control(control),
                Err(e) => tracing::warn!(error = %e, "unreadable control message"),
            }
            return;
        }
        let Some(room_id) = self.room_of_channel(channel) else { return };
        let event = match RoomEvent::decode(payload) {
            Ok(event) if event.origin_instance != self.instance_id => event,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable room event");
                return;
            }
        };
        if self.missed_before(room_id, &event) {
            tracing::info!(room.id = room_id, instance.id = %event.origin_instance, "room events were missed; resyncing");
            let (hub, room_id) = (self.clone(), room_id.to_owned());
            tokio::spawn(async move { hub.resync(&room_id).await });
        }
        let read_at =
            (event.read_at_us > 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_micros(event.read_at_us as u64));
        match event.event {
            Some(Event::Delivery(Delivery { to, message: Some(message) })) => {
                if let Some(peer) = self.rooms().get(room_id).and_then(|room| room.get(&to)) {
                    push_relayed(peer, message, read_at);
                }
            }
            Some(Event::Fanout(Fanout { except, message: Some(message) })) => {
                self.fanout_local(room_id, &except, &message, read_at)
            }
            _ => {}
        }
    }

    /// Records the event's place in its origin's sequence for the room; true if events came
    /// before it that this instance never received.
    fn missed_before(&self, room_id: &str, event: &RoomEvent) -> bool {
        if event.seq == 0 {
            return false;
        }
        let mut heard = lock(&self.heard);
        let last = heard.insert((room_id.to_owned(), event.origin_instance.clone()), event.seq);
        // No `last`: this instance just subscribed, and what came before was not for it.
        matches!(last, Some(last) if event.seq != 1 && event.seq != last + 1)
    }

    /// Carries out a command from the API on this instance's connections, and logs it with the
    /// id of the API request behind it (`request.id`), so one request can be followed across
    /// services. Only a well-formed id is logged.
    fn apply_control(&self, control: bus::Control) {
        use bus::control::Command;
        let request_id = RequestId::parse(&control.request_id).map(|RequestId(id)| id).unwrap_or_default();
        let kicked = |reason: &str| message(Kind::Kicked(Kicked { reason: reason.to_owned() }));
        let (command, room_id, closed) = match control.command {
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
            None => ("unknown", None, 0),
        };
        // Every instance hears every command: those without a connection concerned say so quietly.
        if closed > 0 {
            tracing::info!(request.id = %request_id, command, room.id = room_id.as_deref(), connections = closed, "control command applied");
        } else {
            tracing::debug!(request.id = %request_id, command, room.id = room_id.as_deref(), "control command: no local connection concerned");
        }
    }

    fn peers_key(&self, room_id: &str) -> String {
        format!("{}:room:{room_id}:peers", self.prefix)
    }

    fn live_key(&self) -> String {
        format!("{}:rooms:live", self.prefix)
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, LocalPeer>>> {
        lock(&self.rooms)
    }

    /// Admits `local` to the room if it has room for one more across all instances, announces it
    /// to the peers here, and returns everyone else already in the call.
    pub async fn join(
        &self,
        room_id: &str,
        local: LocalPeer,
        capacity: u32,
        per_user: u32,
    ) -> Result<RoomView, JoinError> {
        let peer_id = local.peer.peer_id.clone();
        let entry = self.presence_json(&local);
        let placeless = recording::takes_no_place(&local.peer);
        self.hold_room(room_id).await?;
        let admitted: redis::RedisResult<i64> = self
            .join
            .key(self.peers_key(room_id))
            .key(self.live_key())
            .key(presence_events::stream_key(&self.prefix))
            .arg(capacity)
            .arg(&peer_id)
            .arg(entry)
            .arg(room_id)
            .arg(&local.peer.user_id)
            .arg(per_user)
            .arg(if placeless { "1" } else { "0" })
            .arg(presence_events::MAX_LENGTH)
            .invoke_async(&mut self.redis.clone())
            .await;
        let present = match admitted {
            Ok(1) => self.present(room_id).await,
            Ok(refused) => {
                self.release_room(room_id).await;
                return Err(if refused < 0 { JoinError::TooManyConnections } else { JoinError::Full });
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
        let view = recording::view_for(&local.peer, &present);
        let joined = recording::arrival(&local.peer, &local.recording_id);
        {
            let mut rooms = self.rooms();
            let room = rooms.entry(room_id.to_owned()).or_default();
            for other in room.values() {
                push(other, joined.clone());
            }
            room.insert(peer_id.clone(), local);
        }
        self.publish(room_id, Event::Fanout(Fanout { except: peer_id, message: Some(joined) }), None);
        Ok(view)
    }

    /// Everyone in the room's presence, oldest first; refreshes `known` on the way.
    async fn present(&self, room_id: &str) -> redis::RedisResult<Vec<PeerPresence>> {
        let entries: Vec<(String, String)> =
            redis::cmd("HGETALL").arg(self.peers_key(room_id)).query_async(&mut self.redis.clone()).await?;
        let ids = entries.iter().map(|(peer_id, _)| peer_id.clone()).collect();
        lock(&self.known).insert(room_id.to_owned(), ids);
        let mut present: Vec<PeerPresence> =
            entries.into_iter().filter_map(|(_, json)| serde_json::from_str(&json).ok()).collect();
        present.sort_by(|a, b| a.joined_at.cmp(&b.joined_at));
        Ok(present)
    }

    fn resume_key(&self, token: &str) -> String {
        format!("{}:resume:{token}", self.prefix)
    }

    /// Takes a peer off this instance without telling anyone: its place and presence are kept
    /// for `window`, so the client can reconnect (to any instance) with `token` and keep its peer
    /// id. If it does not, it leaves as `disconnected` when the window ends.
    pub async fn park(self: &Arc<Self>, room_id: &str, peer: &Peer, token: &str, window: std::time::Duration) {
        let removed = {
            let mut rooms = self.rooms();
            let removed = rooms.get_mut(room_id).and_then(|room| room.remove(&peer.peer_id)).is_some();
            if rooms.get(room_id).is_some_and(HashMap::is_empty) {
                rooms.remove(room_id);
            }
            removed
        };
        if !removed {
            return;
        }
        self.release_room(room_id).await;
        let parked = serde_json::json!({"room_id": room_id, "peer_id": peer.peer_id, "user_id": peer.user_id});
        let stored: redis::RedisResult<()> = redis::cmd("SET")
            .arg(self.resume_key(token))
            .arg(parked.to_string())
            .arg("PX")
            // Outlives the window: the timer below, not expiry, decides the peer has left.
            .arg((window + std::time::Duration::from_secs(5)).as_millis() as u64)
            .query_async(&mut self.redis.clone())
            .await;
        if let Err(e) = stored {
            tracing::warn!(error = %e, "could not keep the peer for resumption");
        }
        let (hub, room_id, peer_id, key) =
            (self.clone(), room_id.to_owned(), peer.peer_id.clone(), self.resume_key(token));
        actix_web::rt::spawn(async move {
            tokio::time::sleep(window).await;
            // Whoever deletes the key owns the outcome: a resuming client, or this timer.
            let unclaimed: i64 = redis::cmd("DEL").arg(&key).query_async(&mut hub.redis.clone()).await.unwrap_or(1);
            if unclaimed == 1 {
                hub.depart(&room_id, &peer_id, "disconnected").await;
            }
        });
    }

    /// The peer id parked under `token`, if it was parked in `room_id` by `user_id`. The token is
    /// consumed only by its own user: anyone else holding it can neither take the peer over nor
    /// stop it from leaving when its window ends; a parked peer is resumed at most once.
    pub async fn unpark(&self, token: &str, room_id: &str, user_id: &str) -> Option<String> {
        let key = self.resume_key(token);
        let mut redis = self.redis.clone();
        let parked: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut redis).await.ok()?;
        let parked: serde_json::Value = serde_json::from_str(&parked?).ok()?;
        if parked["room_id"] != room_id || parked["user_id"] != user_id {
            return None;
        }
        let claimed: i64 = redis::cmd("DEL").arg(&key).query_async(&mut redis).await.ok()?;
        (claimed == 1).then(|| parked["peer_id"].as_str().map(str::to_owned)).flatten()
    }

    /// Puts a resumed peer back: same peer id, same place, no announcement.
    pub async fn rejoin(&self, room_id: &str, local: LocalPeer) -> Result<RoomView, JoinError> {
        self.hold_room(room_id).await?;
        let peer_id = local.peer.peer_id.clone();
        let restored: redis::RedisResult<()> = redis::pipe()
            .hset(self.peers_key(room_id), &peer_id, self.presence_json(&local))
            .ignore()
            .sadd(self.live_key(), room_id)
            .ignore()
            .query_async(&mut self.redis.clone())
            .await;
        let present = match restored {
            Ok(()) => self.present(room_id).await,
            Err(e) => Err(e),
        };
        match present {
            Ok(present) => {
                let view = recording::view_for(&local.peer, &present);
                self.rooms().entry(room_id.to_owned()).or_default().insert(peer_id, local);
                Ok(view)
            }
            Err(e) => {
                self.release_room(room_id).await;
                Err(e.into())
            }
        }
    }

    /// Frees a departed (not local) peer's place and tells every instance's peers.
    async fn depart(&self, room_id: &str, peer_id: &str, reason: &str) {
        match self.free_place(room_id, peer_id, reason).await {
            Ok(true) => self.announce_left(room_id, peer_id, reason),
            Ok(false) => {}
            Err(e) => self.free_later(room_id, peer_id, reason, true, &e),
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
        self.fanout_local(room_id, peer_id, &left, None);
        self.publish(room_id, Event::Fanout(Fanout { except: peer_id.to_owned(), message: Some(left) }), None);
    }

    /// Keeps a presence entry whose removal failed for `retry_removals`, so a Redis blip does not
    /// leave a ghost holding a place in the room.
    fn free_later(&self, room_id: &str, peer_id: &str, reason: &str, announce: bool, error: &redis::RedisError) {
        tracing::warn!(room.id = room_id, peer.id = peer_id, error = %error, "could not clear presence; will retry");
        let unfreed = Unfreed { reason: reason.to_owned(), announce };
        lock(&self.unfreed).insert((room_id.to_owned(), peer_id.to_owned()), unfreed);
    }

    /// Retries the presence removals that failed; returns how many are still pending.
    pub async fn retry_removals(&self) -> usize {
        let pending: Vec<_> = lock(&self.unfreed).drain().collect();
        for ((room_id, peer_id), unfreed) in pending {
            match self.free_place(&room_id, &peer_id, &unfreed.reason).await {
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

    /// Removes the peer, frees its place, and tells the others why it left.
    pub async fn leave(&self, room_id: &str, peer_id: &str, reason: &str) {
        let left = {
            let mut rooms = self.rooms();
            let removed = rooms.get_mut(room_id).and_then(|room| room.remove(peer_id));
            removed.map(|gone| {
                let left = recording::departure(peer_id, &gone.peer.role, &gone.recording_id, reason);
                let room = &rooms[room_id];
                for other in room.values() {
                    push(other, left.clone());
                }
                if room.is_empty() {
                    rooms.remove(room_id);
                }
                left
            })
        };
        if let Some(left) = left {
            self.track(room_id, &left);
            // Presence goes before the other instances hear `peer_left`: a peer there that signals
            // the departed one afterwards must be told `unknown_peer`, not have it vanish.
            if let Err(e) = self.free_place(room_id, peer_id, reason).await {
                self.free_later(room_id, peer_id, reason, false, &e);
            }
            self.publish(room_id, Event::Fanout(Fanout { except: peer_id.to_owned(), message: Some(left) }), None);
            self.release_room(room_id).await;
        }
    }

    /// Removes a presence entry of a peer that left for `reason`; true if this call removed it.
    async fn free_place(&self, room_id: &str, peer_id: &str, reason: &str) -> redis::RedisResult<bool> {
        let removed: i64 = self
            .leave
            .key(self.peers_key(room_id))
            .key(self.live_key())
            .key(presence_events::stream_key(&self.prefix))
            .arg(peer_id)
            .arg(room_id)
            .arg(reason)
            .arg(presence_events::MAX_LENGTH)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(removed == 1)
    }

    fn alive_key(&self, instance_id: &str) -> String {
        format!("{}:instance:{instance_id}:alive", self.prefix)
    }

    /// Renews this instance's heartbeat key.
    pub async fn heartbeat(&self) -> redis::RedisResult<()> {
        redis::cmd("SET")
            .arg(self.alive_key(&self.instance_id))
            .arg(1)
            .arg("PX")
            .arg(INSTANCE_TTL.as_millis() as u64)
            .query_async(&mut self.redis.clone())
            .await
    }

    /// Frees the places of peers whose instance stopped renewing its heartbeat (killed, frozen
    /// or cut off) and tells every instance's peers that they left.
    pub async fn sweep_dead_instances(&self) -> redis::RedisResult<usize> {
        let mut redis = self.redis.clone();
        let rooms: Vec<String> = redis::cmd("SMEMBERS").arg(self.live_key()).query_async(&mut redis).await?;
        let mut alive: HashMap<String, bool> = HashMap::from([(self.instance_id.clone(), true)]);
        let mut swept = 0;
        for room_id in rooms {
            let entries: Vec<(String, String)> =
                redis::cmd("HGETALL").arg(self.peers_key(&room_id)).query_async(&mut redis).await?;
            for (peer_id, json) in entries {
                let Ok(presence) = serde_json::from_str::<PeerPresence>(&json) else { continue };
                if !alive.contains_key(&presence.instance_id) {
                    let exists: bool =
                        redis::cmd("EXISTS").arg(self.alive_key(&presence.instance_id)).query_async(&mut redis).await?;
                    alive.insert(presence.instance_id.clone(), exists);
                }
                if alive[&presence.instance_id] || !self.free_place(&room_id, &peer_id, "disconnected").await? {
                    continue;
                }
                swept += 1;
                tracing::info!(room.id = %room_id, peer.id = %peer_id, instance.id = %presence.instance_id, "peer of a dead instance left");
                let left = recording::departure(&peer_id, &presence.role, &presence.recording_id, "disconnected");
                self.announce_departure(&room_id, &peer_id, left);
            }
        }
        Ok(swept)
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
        if let Some(peer) = self.rooms().get(room_id).and_then(|room| room.get(to)) {
            push_relayed(peer, message, Some(read_at));
            return Ok(());
        }
        let known = lock(&self.known).get(room_id).is_some_and(|peers| peers.contains(to));
        let present = known
            || redis::cmd("HEXISTS")
                .arg(self.peers_key(room_id))
                .arg(to)
                .query_async(&mut self.redis.clone())
                .await
                .unwrap_or(false);
        if !present {
            return Err(Undelivered::UnknownPeer);
        }
        self.publish(room_id, Event::Delivery(Delivery { to: to.to_owned(), message: Some(message) }), Some(read_at));
        Ok(())
    }

    /// Queues `message`, read from the client `from` at `read_at`, for every other peer of the
    /// room, on every instance.
    pub fn broadcast(&self, room_id: &str, from: &str, message: ServerMessage, read_at: SystemTime) {
        self.fanout_local(room_id, from, &message, Some(read_at));
        self.publish(room_id, Event::Fanout(Fanout { except: from.to_owned(), message: Some(message) }), Some(read_at));
    }

    fn fanout_local(&self, room_id: &str, except: &str, message: &ServerMessage, read_at: Option<SystemTime>) {
        self.track(room_id, message);
        if let Some(room) = self.rooms().get(room_id) {
            for (peer_id, peer) in room {
                if peer_id != except {
                    push_relayed(peer, message.clone(), read_at);
                }
            }
        }
    }

    /// Keeps `known` up to date with the joins and leaves the room's peers are told about.
    fn track(&self, room_id: &str, message: &ServerMessage) {
        let mut known = lock(&self.known);
        let Some(peers) = known.get_mut(room_id) else { return };
        match &message.kind {
            Some(Kind::PeerJoined(PeerJoined { peer: Some(peer) })) => {
                peers.insert(peer.peer_id.clone());
            }
            Some(Kind::PeerLeft(left)) => {
                peers.remove(&left.peer_id);
            }
            Some(Kind::RecordingStarted(started)) => {
                peers.insert(started.recorder_peer_id.clone());
            }
            Some(Kind::RecordingStopped(stopped)) => {
                peers.remove(&stopped.recorder_peer_id);
            }
            _ => {}
        }
    }

    /// Queues a last message and a close for every connection matching `select`; how many.
    pub fn close_where(&self, select: impl Fn(&str, &Peer) -> bool, last: &ServerMessage, code: u16) -> usize {
        let mut closed = 0;
        for (room_id, room) in self.rooms().iter() {
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

    /// Local connections, for metrics and shutdown.
    pub fn connection_count(&self) -> usize {
        self.rooms().values().map(HashMap::len).sum()
    }

    /// Rooms with at least one connection on this instance, for metrics.
    pub fn room_count(&self) -> usize {
        self.rooms().len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn message(kind: Kind) -> ServerMessage {
    ServerMessage { kind: Some(kind) }
}

/// Never waits: a full queue makes the peer a slow consumer.
fn push(peer: &LocalPeer, message: ServerMessage) {
    push_relayed(peer, message, None);
}

fn push_relayed(peer: &LocalPeer, message: ServerMessage, read_at: Option<SystemTime>) {
    if peer.outbound.try_send(Outbound::Message { message, read_at }).is_err() {
        metrics::counter!("gateway_dropped_messages_total", "reason" => "slow_consumer").increment(1);
        peer.slow.notify_one();
    }
}
