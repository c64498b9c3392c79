//! Recording work for the recorders, through Redis (see docs/protocol.md):
//! the stream `{prefix}:recordings:jobs`, one entry per started recording (`recording_id`,
//! `room_id`, and `request_id`: the request that started it, for the recorder's logs), read by the
//! recorders' consumer group `recorders`, so exactly one recorder takes each, and a job whose
//! recorder died can be claimed by another. Stopping needs no message: the recorder watches its
//! recording's status in Postgres. Recorders also keep heartbeat keys, counted here.

use confab_common::recording_jobs;
use confab_domain::keys;
use redis::aio::ConnectionManager;

use crate::domain::{RecordingId, RoomId};

#[derive(Clone)]
pub struct RecordingJobs {
    redis: ConnectionManager,
    prefix: String,
}

impl RecordingJobs {
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self { redis, prefix: prefix.to_owned() }
    }

    /// Queues the job of a recording started by the request `request_id`.
    pub async fn queue(&self, recording_id: RecordingId, room_id: RoomId, request_id: &str) -> redis::RedisResult<()> {
        let add = recording_jobs::add(&self.prefix, &recording_id.to_string(), &room_id.to_string(), Some(request_id));
        let _: String = add.query_async(&mut self.redis.clone()).await?;
        Ok(())
    }

    /// How many recorders renewed their heartbeat key (`keys::recorder_alive`, kept 10 s) lately: a recorder renews it while it takes jobs.
    pub async fn recorders_alive(&self) -> redis::RedisResult<u64> {
        confab_common::redis::count_keys(&self.redis, &keys::recorder_alive_pattern(&self.prefix)).await
    }
}
