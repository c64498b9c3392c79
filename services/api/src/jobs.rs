//! Recording work for the recorders, through Redis (see docs/protocol.md):
//! the stream `{prefix}:recordings:jobs`, one entry per started recording (`recording_id`,
//! `room_id`), read by the recorders' consumer group `recorders`, so exactly one recorder takes
//! each, and a job whose recorder died can be claimed by another. Stopping needs no message: the
//! recorder watches its recording's status in Postgres.

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

    fn stream_key(&self) -> String {
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
}
