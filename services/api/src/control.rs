//! Commands from the API to every gateway instance, and the presence the gateways keep, both in
//! Redis (see docs/protocol.md, "Redis keys and channels"):
//!
//! - `keys::control_channel` — pub/sub channel every gateway subscribes to; each message is a binary
//!   protobuf `confab.bus.v1.Control` carrying the id of the request that caused it, which the
//!   gateways log as `request.id`. Control traffic is rare, so one shared channel is simpler than
//!   addressing instances; each gateway acts on its own local peers.
//! - `keys::room_peers` — hash, peer id → presence entry (`confab_domain::presence`), written by
//!   gateways.
//! - `keys::live_rooms` — set of room ids with at least one peer, written by gateways.
//! - `keys::room_speakers` — set of the peer ids a moderator let speak in a lecture's call,
//!   written here (a grant only for a peer in presence, in one step) and cleared by the gateways
//!   with the peer's presence entry; the media server reads it when it enters the call.
//!
//! A failed publish is logged, not returned: the database change it follows is already
//! committed, and the removed user can no longer obtain a ticket.

use confab_domain::{keys, presence};
use confab_protocol::bus;
use prost::Message;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{PeerId, RoomId, UserId};

#[derive(Debug, Clone, Copy)]
pub enum RemovalReason {
    Removed,
    Banned,
}

#[derive(Debug, Clone, Copy)]
pub enum DisconnectReason {
    Disabled,
    Deleted,
}

#[derive(Debug, Clone)]
pub enum Control {
    /// The room is gone: end its call (`room_closed` to every peer).
    CloseRoom { room_id: RoomId },
    /// The user lost access to the room: close their connections to it (`kicked`).
    RemoveUser { room_id: RoomId, user_id: UserId, reason: RemovalReason },
    /// An admin kicked one connection.
    KickPeer { room_id: RoomId, peer_id: String },
    /// The account can no longer be used: close every connection of the user, in every room.
    DisconnectUser { user_id: UserId, reason: DisconnectReason },
    /// A moderator let the peer speak in a lecture: tell the room (`speak_granted`).
    GrantSpeaker { room_id: RoomId, peer_id: PeerId },
    /// A moderator took it back: tell the room (`speak_revoked`).
    RevokeSpeaker { room_id: RoomId, peer_id: PeerId },
}

impl Control {
    fn to_bus(&self, request_id: &str) -> bus::Control {
        use bus::control::Command;
        let command = match self {
            Self::CloseRoom { room_id } => Command::CloseRoom(bus::CloseRoom { room_id: room_id.to_string() }),
            Self::RemoveUser { room_id, user_id, reason } => Command::RemoveUser(bus::RemoveUser {
                room_id: room_id.to_string(),
                user_id: user_id.to_string(),
                reason: match reason {
                    RemovalReason::Removed => "removed",
                    RemovalReason::Banned => "banned",
                }
                .to_owned(),
            }),
            Self::KickPeer { room_id, peer_id } => {
                Command::KickPeer(bus::KickPeer { room_id: room_id.to_string(), peer_id: peer_id.clone() })
            }
            Self::DisconnectUser { user_id, reason } => Command::DisconnectUser(bus::DisconnectUser {
                user_id: user_id.to_string(),
                reason: match reason {
                    DisconnectReason::Disabled => "disabled",
                    DisconnectReason::Deleted => "deleted",
                }
                .to_owned(),
            }),
            Self::GrantSpeaker { room_id, peer_id } => Command::GrantSpeaker(bus::GrantSpeaker {
                room_id: room_id.to_string(),
                peer_id: peer_id.as_str().to_owned(),
            }),
            Self::RevokeSpeaker { room_id, peer_id } => Command::RevokeSpeaker(bus::RevokeSpeaker {
                room_id: room_id.to_string(),
                peer_id: peer_id.as_str().to_owned(),
            }),
        };
        bus::Control { command: Some(command), request_id: request_id.to_owned() }
    }
}

/// One connection in a call, as the gateways record it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PeerPresence {
    pub peer_id: String,
    pub user_id: String,
    pub display_name: String,
    pub role: String,
    /// The gateway instance holding the connection.
    pub instance_id: String,
    /// RFC 3339.
    pub joined_at: String,
}

impl From<bus::PeerPresence> for PeerPresence {
    fn from(p: bus::PeerPresence) -> Self {
        Self {
            peer_id: p.peer_id,
            user_id: p.user_id,
            display_name: p.display_name,
            role: p.role,
            instance_id: p.instance_id,
            joined_at: p.joined_at,
        }
    }
}

/// Lets the peer ARGV[1] speak if it is in the call (KEYS[1], the room's presence): 1, or 0 if
/// it is not there. One step with the gateways' removal of the peer, which takes its grant too, so
/// no grant outlives its peer.
const GRANT_SPEAKER: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
";

#[derive(Clone)]
pub struct ControlBus {
    redis: ConnectionManager,
    prefix: String,
    grant_speaker: redis::Script,
}

impl ControlBus {
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self { redis, prefix: prefix.to_owned(), grant_speaker: redis::Script::new(GRANT_SPEAKER) }
    }

    /// Tells every gateway to carry out `command`, on behalf of the request `request_id`.
    pub async fn send(&self, command: &Control, request_id: &str) {
        let message = command.to_bus(request_id).encode_to_vec();
        let sent: redis::RedisResult<i64> =
            self.redis.clone().publish(keys::control_channel(&self.prefix), message).await;
        if let Err(e) = sent {
            metrics::counter!("api_redis_errors_total").increment(1);
            tracing::warn!(error = %e, ?command, request.id = %request_id, "could not tell the gateways");
        }
    }

    /// Who is in the room's call now, oldest first; the recorder and the media server are not
    /// participants. Entries that do not parse are skipped.
    pub async fn participants(&self, room_id: RoomId) -> redis::RedisResult<Vec<PeerPresence>> {
        let entries: Vec<(String, String)> =
            self.redis.clone().hgetall(keys::room_peers(&self.prefix, room_id)).await?;
        let mut peers: Vec<PeerPresence> = entries
            .into_iter()
            .filter_map(|(peer_id, json)| {
                presence::parse(&json)
                    .inspect_err(|e| tracing::warn!(peer.id = %peer_id, error = %e, "unreadable presence entry"))
                    .ok()
            })
            .filter(|entry| !presence::is_hidden(entry))
            .map(PeerPresence::from)
            .collect();
        peers.sort_by(|a, b| a.joined_at.cmp(&b.joined_at).then_with(|| a.peer_id.cmp(&b.peer_id)));
        Ok(peers)
    }

    /// Records that the peer may speak in the room's call (a lecture); false if it is not in the
    /// call (any more). Granting twice is granting once.
    pub async fn grant_speaker(&self, room_id: RoomId, peer_id: &PeerId) -> redis::RedisResult<bool> {
        let granted: i64 = self
            .grant_speaker
            .key(keys::room_peers(&self.prefix, room_id))
            .key(keys::room_speakers(&self.prefix, room_id))
            .arg(peer_id.as_str())
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(granted == 1)
    }

    /// Takes back the peer's leave to speak, if it had one.
    pub async fn revoke_speaker(&self, room_id: RoomId, peer_id: &PeerId) -> redis::RedisResult<()> {
        self.redis.clone().srem(keys::room_speakers(&self.prefix, room_id), peer_id.as_str()).await
    }

    /// How many rooms have a call going on.
    pub async fn live_calls(&self) -> redis::RedisResult<u64> {
        self.redis.clone().scard(keys::live_rooms(&self.prefix)).await
    }

    /// How many people are in calls now, over every live room (recorders and media servers are
    /// not counted).
    pub async fn live_participants(&self) -> redis::RedisResult<u64> {
        let mut redis = self.redis.clone();
        let rooms: Vec<String> = redis.smembers(keys::live_rooms(&self.prefix)).await?;
        if rooms.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for room_id in &rooms {
            pipe.hvals(keys::room_peers(&self.prefix, room_id));
        }
        let entries: Vec<Vec<String>> = pipe.query_async(&mut redis).await?;
        let participants = entries
            .iter()
            .flatten()
            .filter_map(|json| presence::parse(json).ok())
            .filter(|entry| !presence::is_hidden(entry))
            .count();
        Ok(participants as u64)
    }

    /// How many gateway instances renewed their heartbeat key (`keys::gateway_alive`, kept 10 s)
    /// lately.
    pub async fn gateways_alive(&self) -> redis::RedisResult<u64> {
        confab_common::redis::count_keys(&self.redis, &keys::gateway_alive_pattern(&self.prefix)).await
    }
}
