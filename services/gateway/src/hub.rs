//! The rooms and peers this instance serves, and their presence in Redis.
//!
//! Presence (`{prefix}:room:{room_id}:peers`, `{prefix}:rooms:live`; see docs/protocol.md) is
//! the room's membership across every instance, so capacity is checked there, atomically, by
//! one Lua script: with N clients racing for a room of capacity k on any number of instances,
//! exactly k get in. Delivery to peers on this instance goes straight to their outbound queue and
//! never waits: a full queue marks the peer as a slow consumer, to be disconnected, and the rest
//! of the room carries on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use confab_protocol::bus::PeerPresence;
use confab_protocol::signal::{Peer, PeerJoined, PeerLeft, ServerMessage, server_message::Kind};
use redis::aio::ConnectionManager;
use tokio::sync::{Notify, mpsc};

const JOIN: &str = r"
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
";

const LEAVE: &str = r"
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
return 1
";

/// What a connection task is told to do.
#[derive(Debug, Clone)]
pub enum Outbound {
    Message(ServerMessage),
    /// Send this last message, then close the socket with `code`.
    CloseWith {
        message: ServerMessage,
        code: u16,
    },
}

/// A connection on this instance, as the hub sees it.
pub struct LocalPeer {
    pub peer: Peer,
    pub outbound: mpsc::Sender<Outbound>,
    /// Notified when the outbound queue overflowed: the connection must close.
    pub slow: Arc<Notify>,
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("the room is full")]
    Full,
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
}

impl Hub {
    pub fn new(redis: ConnectionManager, prefix: &str, instance_id: &str) -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
            redis,
            prefix: prefix.to_owned(),
            instance_id: instance_id.to_owned(),
            join: redis::Script::new(JOIN),
            leave: redis::Script::new(LEAVE),
        }
    }

    fn peers_key(&self, room_id: &str) -> String {
        format!("{}:room:{room_id}:peers", self.prefix)
    }

    fn live_key(&self) -> String {
        format!("{}:rooms:live", self.prefix)
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, LocalPeer>>> {
        self.rooms.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits `local` to the room if it has room for one more across all instances, announces it
    /// to the peers here, and returns everyone else already in the call.
    pub async fn join(&self, room_id: &str, local: LocalPeer, capacity: u32) -> Result<Vec<Peer>, JoinError> {
        let presence = PeerPresence {
            peer_id: local.peer.peer_id.clone(),
            user_id: local.peer.user_id.clone(),
            display_name: local.peer.display_name.clone(),
            role: local.peer.role.clone(),
            instance_id: self.instance_id.clone(),
            joined_at: chrono::Utc::now().to_rfc3339(),
        };
        let entry = serde_json::to_string(&presence).expect("presence serializes");
        let admitted: i64 = self
            .join
            .key(self.peers_key(room_id))
            .key(self.live_key())
            .arg(capacity)
            .arg(&presence.peer_id)
            .arg(entry)
            .arg(room_id)
            .invoke_async(&mut self.redis.clone())
            .await?;
        if admitted == 0 {
            return Err(JoinError::Full);
        }
        let others = self.present(room_id, &presence.peer_id).await?;
        let joined = message(Kind::PeerJoined(PeerJoined { peer: Some(local.peer.clone()) }));
        let mut rooms = self.rooms();
        let room = rooms.entry(room_id.to_owned()).or_default();
        for other in room.values() {
            push(other, joined.clone());
        }
        room.insert(presence.peer_id, local);
        Ok(others)
    }

    /// Everyone in the room's presence but `except`.
    async fn present(&self, room_id: &str, except: &str) -> redis::RedisResult<Vec<Peer>> {
        let entries: Vec<(String, String)> =
            redis::cmd("HGETALL").arg(self.peers_key(room_id)).query_async(&mut self.redis.clone()).await?;
        let mut peers: Vec<(String, Peer)> = entries
            .into_iter()
            .filter(|(peer_id, _)| peer_id != except)
            .filter_map(|(_, json)| serde_json::from_str::<PeerPresence>(&json).ok())
            .map(|p| {
                let peer = Peer { peer_id: p.peer_id, user_id: p.user_id, display_name: p.display_name, role: p.role };
                (p.joined_at, peer)
            })
            .collect();
        peers.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(peers.into_iter().map(|(_, peer)| peer).collect())
    }

    /// Removes the peer, frees its place, and tells the others why it left.
    pub async fn leave(&self, room_id: &str, peer_id: &str, reason: &str) {
        let removed = {
            let mut rooms = self.rooms();
            let removed = rooms.get_mut(room_id).and_then(|room| room.remove(peer_id));
            if removed.is_some() {
                let left = message(Kind::PeerLeft(PeerLeft { peer_id: peer_id.to_owned(), reason: reason.to_owned() }));
                let room = &rooms[room_id];
                for other in room.values() {
                    push(other, left.clone());
                }
                if room.is_empty() {
                    rooms.remove(room_id);
                }
            }
            removed.is_some()
        };
        if removed {
            let freed: redis::RedisResult<i64> = self
                .leave
                .key(self.peers_key(room_id))
                .key(self.live_key())
                .arg(peer_id)
                .arg(room_id)
                .invoke_async(&mut self.redis.clone())
                .await;
            if let Err(e) = freed {
                tracing::warn!(room.id = room_id, peer.id = peer_id, error = %e, "could not clear presence");
            }
        }
    }

    /// Queues `message` for the peer `to` of the room.
    pub fn deliver(&self, room_id: &str, to: &str, message: ServerMessage) -> Result<(), Undelivered> {
        let rooms = self.rooms();
        let peer = rooms.get(room_id).and_then(|room| room.get(to)).ok_or(Undelivered::UnknownPeer)?;
        push(peer, message);
        Ok(())
    }

    /// Queues `message` for every peer of the room but `from`.
    pub fn broadcast(&self, room_id: &str, from: &str, message: &ServerMessage) {
        if let Some(room) = self.rooms().get(room_id) {
            for (peer_id, peer) in room {
                if peer_id != from {
                    push(peer, message.clone());
                }
            }
        }
    }

    /// Queues a last message and a close for every connection matching `select`.
    pub fn close_where(&self, select: impl Fn(&str, &Peer) -> bool, last: &ServerMessage, code: u16) {
        for (room_id, room) in self.rooms().iter() {
            for peer in room.values().filter(|p| select(room_id, &p.peer)) {
                let close = Outbound::CloseWith { message: last.clone(), code };
                if peer.outbound.try_send(close).is_err() {
                    peer.slow.notify_one();
                }
            }
        }
    }

    /// Local connections, for metrics and shutdown.
    pub fn connection_count(&self) -> usize {
        self.rooms().values().map(HashMap::len).sum()
    }
}

pub fn message(kind: Kind) -> ServerMessage {
    ServerMessage { kind: Some(kind) }
}

/// Never waits: a full queue makes the peer a slow consumer.
fn push(peer: &LocalPeer, message: ServerMessage) {
    if peer.outbound.try_send(Outbound::Message(message)).is_err() {
        metrics::counter!("gateway_dropped_messages_total", "reason" => "slow_consumer").increment(1);
        peer.slow.notify_one();
    }
}
