//! Turns the gateways' presence event stream (`confab_common::presence_events`) into
//! `participant.joined` / `participant.left` webhook events. The stream is read through the
//! consumer group `webhooks`, so each entry is recorded by one API instance; an entry is
//! acknowledged only once its event has committed, and one left unacknowledged by an instance
//! that died (or met a database error) is claimed again after `CLAIM_AFTER`. Recording is keyed
//! on the entry id, so an entry handled twice still makes one event.

use std::time::Duration;

use confab_common::presence_events;
use confab_domain::{RoomId, keys, presence};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

pub const GROUP: &str = "webhooks";
/// How long an entry may stay unacknowledged before another consumer takes it.
const CLAIM_AFTER: Duration = Duration::from_secs(30);
/// The longest a read for new entries blocks.
const READ_WAIT: Duration = Duration::from_secs(2);
const BATCH: usize = 100;

pub struct PresenceEvents {
    db: PgPool,
    redis: ConnectionManager,
    /// A connection of its own for the blocking read, which would hold up other commands.
    reader: ConnectionManager,
    stream: String,
    consumer: String,
}

impl PresenceEvents {
    pub fn new(db: PgPool, redis: ConnectionManager, redis_url: &str, prefix: &str) -> redis::RedisResult<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(READ_WAIT + Duration::from_secs(2)));
        let reader = ConnectionManager::new_lazy_with_config(redis::Client::open(redis_url)?, config)?;
        let consumer = format!("api-{}", Uuid::new_v4().simple());
        Ok(Self { db, redis, reader, stream: keys::presence_events(prefix), consumer })
    }

    /// Records events until the process ends; Redis or Postgres being away only pauses it.
    pub async fn run(self) {
        let mut failing = false;
        loop {
            match self.round().await {
                Ok(()) => failing = false,
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "participant events paused");
                    }
                    failing = true;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Entries abandoned by other consumers first, then new ones (waiting a moment for them).
    async fn round(&self) -> anyhow::Result<()> {
        self.ensure_group().await?;
        let abandoned: StreamAutoClaimReply = self
            .redis
            .clone()
            .xautoclaim_options(
                &self.stream,
                GROUP,
                &self.consumer,
                CLAIM_AFTER.as_millis() as u64,
                "0-0",
                StreamAutoClaimOptions::default().count(BATCH),
            )
            .await?;
        let entries = if abandoned.claimed.is_empty() {
            let options = StreamReadOptions::default()
                .group(GROUP, &self.consumer)
                .count(BATCH)
                .block(READ_WAIT.as_millis() as usize);
            let fresh: Option<StreamReadReply> =
                self.reader.clone().xread_options(&[&self.stream], &[">"], &options).await?;
            fresh.into_iter().flat_map(|reply| reply.keys).flat_map(|key| key.ids).collect()
        } else {
            abandoned.claimed
        };
        for entry in entries {
            record(&self.db, &entry).await?;
            let _: i64 = self.redis.clone().xack(&self.stream, GROUP, &[&entry.id]).await?;
        }
        Ok(())
    }

    /// Creates the group from the start of the stream, so nothing gateways wrote before any
    /// API ran is missed; an existing group is kept.
    async fn ensure_group(&self) -> redis::RedisResult<()> {
        let created: redis::RedisResult<()> = self.redis.clone().xgroup_create_mkstream(&self.stream, GROUP, "0").await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }
}

/// Records one stream entry as an event; an entry that is not a participant event is skipped.
async fn record(db: &PgPool, entry: &StreamId) -> sqlx::Result<()> {
    let Some((event_type, room_id, payload)) = event_of(entry) else {
        tracing::warn!(entry = %entry.id, "skipped an unreadable presence event");
        return Ok(());
    };
    sqlx::query("select confab_emit_event($1, $2, $3, $4)")
        .bind(event_type)
        .bind(room_id)
        .bind(payload)
        .bind(format!("presence:{}", entry.id))
        .execute(db)
        .await?;
    Ok(())
}

/// The event type, room and payload an entry stands for.
fn event_of(entry: &StreamId) -> Option<(&'static str, RoomId, Value)> {
    let field = |name: &str| entry.get::<String>(name);
    let event_type = match field("type")?.as_str() {
        presence_events::JOINED => presence_events::JOINED,
        presence_events::LEFT => presence_events::LEFT,
        _ => return None,
    };
    let room_id = RoomId::parse(&field("room_id")?).ok()?;
    let peer = presence::parse(&field("peer")?).ok()?;
    let participant = json!({
        "peer_id": peer.peer_id,
        "user_id": peer.user_id,
        "display_name": peer.display_name,
        "role": peer.role,
        "joined_at": peer.joined_at,
    });
    let mut payload = json!({"room_id": room_id, "participant": participant});
    if event_type == presence_events::LEFT {
        payload["reason"] = Value::String(field("reason")?);
    }
    Some((event_type, room_id, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fields: &[(&str, &str)]) -> StreamId {
        StreamId {
            id: "1-0".into(),
            map: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), redis::Value::BulkString(v.as_bytes().to_vec())))
                .collect(),
            ..Default::default()
        }
    }

    const PEER: &str = r#"{"peer_id":"p1","user_id":"u1","display_name":"Ann","role":"member","instance_id":"gw-1","joined_at":"2026-11-24T08:00:00Z"}"#;
    const ROOM: &str = "0b7e3c52-2f4a-4d5e-9a51-5f0c6b1d2e3f";

    #[test]
    fn joins_and_leaves_become_events_with_the_participant() {
        let (kind, room, payload) =
            event_of(&entry(&[("type", "participant.joined"), ("room_id", ROOM), ("peer", PEER)])).unwrap();
        assert_eq!((kind, room.to_string().as_str()), ("participant.joined", ROOM));
        assert_eq!(payload["participant"]["display_name"], "Ann");
        assert!(payload.get("reason").is_none());
        assert!(payload["participant"].get("instance_id").is_none(), "internal fields stay internal");
        let left = [("type", "participant.left"), ("room_id", ROOM), ("peer", PEER), ("reason", "kicked")];
        assert_eq!(event_of(&entry(&left)).unwrap().2["reason"], "kicked");
    }

    #[test]
    fn unreadable_entries_are_refused() {
        for fields in [
            vec![("type", "participant.joined"), ("room_id", "not-a-uuid"), ("peer", PEER)],
            vec![("type", "room.deleted"), ("room_id", ROOM), ("peer", PEER)],
            vec![("type", "participant.joined"), ("room_id", ROOM), ("peer", "{")],
            vec![("type", "participant.left"), ("room_id", ROOM), ("peer", PEER)],
            vec![("room_id", ROOM), ("peer", PEER)],
        ] {
            assert!(event_of(&entry(&fields)).is_none(), "{fields:?}");
        }
    }
}
