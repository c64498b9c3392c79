//! Which worker pulls which camera: the camera's lease key (`keys::camera_lease`), a Redis string holding the
//! worker's instance id with a TTL. Taken with `SET NX PX`, renewed while the worker pulls, and
//! deleted when it lets the camera go. A worker that dies stops renewing; its leases expire and
//! another worker takes the cameras. Renewing and releasing check the owner first (one script
//! each), so a worker never extends or deletes a lease another worker holds.

use std::time::Duration;

use confab_domain::keys;
use redis::aio::ConnectionManager;
use redis::{RedisResult, Script};

use crate::store::CameraId;

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

#[derive(Clone)]
pub struct Leases {
    redis: ConnectionManager,
    prefix: String,
    owner: String,
    ttl: Duration,
}

impl Leases {
    pub fn new(redis: ConnectionManager, prefix: &str, owner: &str, ttl: Duration) -> Self {
        Self { redis, prefix: prefix.to_owned(), owner: owner.to_owned(), ttl }
    }

    /// Takes the camera if nobody holds it; whether this worker holds it now.
    pub async fn acquire(&self, camera: CameraId) -> RedisResult<bool> {
        let mut set = redis::cmd("SET");
        set.arg(keys::camera_lease(&self.prefix, camera)).arg(&self.owner).arg("NX").arg("PX").arg(self.ttl_ms());
        let reply: Option<String> = counted(set.query_async(&mut self.redis.clone()).await)?;
        Ok(reply.is_some())
    }

    /// Extends this worker's lease; `false` when it is no longer this worker's (it expired and
    /// perhaps another worker took the camera).
    pub async fn renew(&self, camera: CameraId) -> RedisResult<bool> {
        let script = Script::new(RENEW);
        let mut call = script.key(keys::camera_lease(&self.prefix, camera));
        call.arg(&self.owner).arg(self.ttl_ms());
        let renewed: i64 = counted(call.invoke_async(&mut self.redis.clone()).await)?;
        Ok(renewed == 1)
    }

    /// Lets the camera go, if this worker still holds it.
    pub async fn release(&self, camera: CameraId) -> RedisResult<()> {
        let script = Script::new(RELEASE);
        let mut call = script.key(keys::camera_lease(&self.prefix, camera));
        call.arg(&self.owner);
        counted(call.invoke_async::<i64>(&mut self.redis.clone()).await).map(drop)
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis() as u64
    }
}

/// Counts a failed Redis command in `ingest_redis_errors_total`.
pub(crate) fn counted<T>(result: RedisResult<T>) -> RedisResult<T> {
    if result.is_err() {
        metrics::counter!("ingest_redis_errors_total").increment(1);
    }
    result
}
