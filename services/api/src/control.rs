//! Commands from the API to every gateway instance, and the presence the gateways keep, both in
//! Redis (see docs/protocol.md, "Redis keys and channels"):
//!
//! - `{prefix}:control` — pub/sub channel every gateway subscribes to; one JSON object per
//!   message with one key naming the command (`close_room`, `remove_user`, `kick_peer`,
//!   `disconnect_user`). Control traffic is rare, so one shared channel is simpler than
//!   addressing instances; each gateway acts on its own local peers.
//! - `{prefix}:room:{room_id}:peers` — hash, peer id → JSON [`PeerPresence`], written by gateways.
//! - `{prefix}:rooms:live` — set of room ids with at least one peer, written by gateways.
//!
//! A failed publish is logged, not returned: the database change it follows is already
//! committed, and the removed user can no longer obtain a ticket.

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{RoomId, UserId};

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    Removed,
    Banned,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectReason {
    Disabled,
    Deleted,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// The room is gone: end its call (`room_closed` to every peer).
    CloseRoom { room_id: RoomId },
    /// The user lost access to the room: close their connections to it (`kicked`).
    RemoveUser { room_id: RoomId, user_id: UserId, reason: RemovalReason },
    /// An admin kicked one connection.
    KickPeer { room_id: RoomId, peer_id: String },
    /// The account can no longer be used: close every connection of the user, in every room.
    DisconnectUser { user_id: UserId, reason: DisconnectReason },
}

/// One connection in a call, as the gateways record it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PeerPresence {
    pub peer_id: String,
    pub user_id: UserId,
    pub display_name: String,
    pub role: String,
    /// The gateway instance holding the connection.
    pub instance_id: String,
    pub joined_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct ControlBus {
    redis: ConnectionManager,
    prefix: String,
}

impl ControlBus {
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self { redis, prefix: prefix.to_owned() }
    }

    pub async fn send(&self, command: &Control) {
        let message = serde_json::to_string(command).expect("control messages serialize");
        let sent: redis::RedisResult<i64> =
            self.redis.clone().publish(format!("{}:control", self.prefix), message).await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, ?command, "could not tell the gateways");
        }
    }

    /// Who is in the room's call now, oldest first. Entries that do not parse are skipped.
    pub async fn participants(&self, room_id: RoomId) -> redis::RedisResult<Vec<PeerPresence>> {
        let entries: Vec<(String, String)> =
            self.redis.clone().hgetall(format!("{}:room:{room_id}:peers", self.prefix)).await?;
        let mut peers: Vec<PeerPresence> = entries
            .into_iter()
            .filter_map(|(peer_id, json)| {
                serde_json::from_str(&json)
                    .inspect_err(|e| tracing::warn!(peer.id = %peer_id, error = %e, "unreadable presence entry"))
                    .ok()
            })
            .collect();
        peers.sort_by(|a, b| a.joined_at.cmp(&b.joined_at).then_with(|| a.peer_id.cmp(&b.peer_id)));
        Ok(peers)
    }

    /// How many rooms have a call going on.
    pub async fn live_calls(&self) -> redis::RedisResult<u64> {
        self.redis.clone().scard(format!("{}:rooms:live", self.prefix)).await
    }
}
