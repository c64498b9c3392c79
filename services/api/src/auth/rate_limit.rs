//! Fixed-window counters in Redis, shared by every API instance.
//!
//! One atomic script increments a counter and sets its expiry on first use, so the window
//! cannot be left without a TTL by a crash between two commands. Keys hold a hash of the
//! subject (an IP or an email), never the subject itself.

use std::time::Duration;

use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

use crate::settings::Limit;

const INCREMENT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}
";

/// The outcome of counting one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Limited { retry_after: Duration },
}

#[derive(Clone)]
pub struct RateLimiter {
    redis: ConnectionManager,
    prefix: String,
    script: redis::Script,
}

impl RateLimiter {
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self { redis, prefix: format!("{prefix}:rl"), script: redis::Script::new(INCREMENT) }
    }

    /// Counts one event of `bucket` for `subject` and says whether it is within `limit`.
    pub async fn hit(&self, bucket: &str, subject: &str, limit: Limit) -> redis::RedisResult<Decision> {
        let (count, ttl_ms): (u64, i64) = self
            .script
            .key(self.key(bucket, subject))
            .arg(limit.window.as_millis() as u64)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(decide(count, ttl_ms, limit))
    }

    /// Says whether `subject` is already over `limit`, without counting an event.
    pub async fn check(&self, bucket: &str, subject: &str, limit: Limit) -> redis::RedisResult<Decision> {
        let key = self.key(bucket, subject);
        let (count, ttl_ms): (Option<u64>, i64) =
            redis::pipe().get(&key).pttl(&key).query_async(&mut self.redis.clone()).await?;
        Ok(decide(count.unwrap_or(0) + 1, ttl_ms, limit))
    }

    fn key(&self, bucket: &str, subject: &str) -> String {
        let digest = Sha256::digest(subject.as_bytes());
        let short: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:{bucket}:{short}", self.prefix)
    }
}

fn decide(count: u64, ttl_ms: i64, limit: Limit) -> Decision {
    if count <= limit.max {
        Decision::Allowed
    } else {
        let retry_after = u64::try_from(ttl_ms).map_or(limit.window, Duration::from_millis);
        Decision::Limited { retry_after: retry_after.max(Duration::from_secs(1)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_that_crosses_the_limit_is_refused_with_the_window_remainder() {
        let limit = Limit::per_minute(3);
        assert_eq!(decide(3, 59_000, limit), Decision::Allowed);
        assert_eq!(decide(4, 41_500, limit), Decision::Limited { retry_after: Duration::from_millis(41_500) });
        assert_eq!(decide(9, -1, limit), Decision::Limited { retry_after: Duration::from_secs(60) });
        assert_eq!(decide(9, 10, limit), Decision::Limited { retry_after: Duration::from_secs(1) });
    }
}
