//! Recording work for the recorders, through Redis (see docs/protocol.md):
//! the stream `{prefix}:recordings:jobs`, one entry per started recording (`recording_id`,
//! `room_id`), read by the recorders' consumer group `recorders`, so exactly one recorder takes
//! each, and a job whose recorder died can be claimed by another. Stopping needs no message: the
//! recorder watches its recording's status in Postgres.

use confab_common::recording_jobs;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::domain::RoomId;

#[derive(Clone)]
pub struct RecordingJobs {
    redis: ConnectionManager,
    prefix: String,
}

impl RecordingJobs {
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self { redis, prefix: prefix.to_owned() }
    }

    pub async fn queue(&self, recording_id: Uuid, room_id: RoomId) -> redis::RedisResult<()> {
        let add = recording_jobs::add(&self.prefix, &recording_id.to_string(), &room_id.to_string());
        let _: String = add.query_async(&mut self.redis.clone()).await?;
        Ok(())
    }
}
