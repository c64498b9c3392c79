//! Recording work for the recorders, through Redis (see docs/protocol.md):
//!
//! - `{prefix}:recordings:jobs` — a stream; one entry per started recording (`recording_id`,
//!   `room_id`), read by the recorders' consumer group `recorders`, so exactly one recorder takes
//!   each, and a job whose recorder died can be claimed by another.
//! - `{prefix}:recordings:stop` — a pub/sub channel; a message is the id of a recording to stop.
//!   The status in Postgres (`finalizing`) is the record; the message only makes it prompt.

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::domain::RoomId;

/// Jobs kept in the stream (approximately): far more than can ever be waiting.
const STREAM_LENGTH: usize = 10_000;

#[derive(Clone)]
pub struct RecordingJobs {
    redis: ConnectionManager,
    prefix: String,
}

impl RecordingJobs {
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self { redis, prefix: prefix.to_owned() }
    }

    pub fn stream_key(&self) -> String {
        format!("{}:recordings:jobs", self.prefix)
    }

    pub async fn queue(&self, recording_id: Uuid, room_id: RoomId) -> redis::RedisResult<()> {
        let _: String = redis::cmd("XADD")
            .arg(self.stream_key())
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_LENGTH)
            .arg("*")
            .arg("recording_id")
            .arg(recording_id.to_string())
            .arg("room_id")
            .arg(room_id.to_string())
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// Tells the recorders to stop; a recorder that misses it sees `finalizing` in Postgres.
    pub async fn stop(&self, recording_id: Uuid) {
        let sent: redis::RedisResult<i64> =
            self.redis.clone().publish(format!("{}:recordings:stop", self.prefix), recording_id.to_string()).await;
        if let Err(e) = sent {
            tracing::warn!(recording.id = %recording_id, error = %e, "could not tell the recorders to stop");
        }
    }
}
