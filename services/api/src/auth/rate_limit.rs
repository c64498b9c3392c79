//! Fixed-window counters in Redis, shared by every API instance.
//!
//! All the limits of one request are applied by one atomic script in one round trip. Keys hold
//! a hash of the subject (an IP or an email), never the subject itself.

use std::time::Duration;

use confab_domain::keys;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

use crate::settings::Limit;

/// For each key: count an event (INCR, starting the window on first use) or only read the
/// counter, then report the count and the window's remaining milliseconds. One round trip for
/// all the limits of a request; atomic, so a window can never be left without a TTL.
const APPLY: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  local n
  if ARGV[2 * i] == '1' then
    n = redis.call('INCR', key)
    if n == 1 then redis.call('PEXPIRE', key, ARGV[2 * i - 1]) end
  else
    n = tonumber(redis.call('GET', key) or '0') + 1
  end
  out[2 * i - 1] = n
  out[2 * i] = redis.call('PTTL', key)
end
return out
";

/// The outcome of a set of limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Limited { retry_after: Duration },
}

/// One limit to apply to one subject (an IP, an email) in one bucket.
pub struct Check<'a> {
    bucket: &'a str,
    subject: &'a str,
    limit: Limit,
    count: bool,
}

impl<'a> Check<'a> {
    /// Counts this request as an event, and refuses it if that crosses the limit.
    pub fn count(bucket: &'a str, subject: &'a str, limit: Limit) -> Self {
        Self { bucket, subject, limit, count: true }
    }

    /// Refuses the request if the subject is already at the limit, without counting it.
    pub fn peek(bucket: &'a str, subject: &'a str, limit: Limit) -> Self {
        Self { bucket, subject, limit, count: false }
    }
}

#[derive(Clone)]
pub struct RateLimiter {
    redis: ConnectionManager,
    prefix: String,
    script: redis::Script,
}

impl RateLimiter {
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self { redis, prefix: prefix.to_owned(), script: redis::Script::new(APPLY) }
    }

    /// Applies every check in one round trip; limited if any check is, for the longest wait.
    pub async fn apply(&self, checks: &[Check<'_>]) -> redis::RedisResult<Decision> {
        let mut invocation = self.script.prepare_invoke();
        for check in checks {
            invocation.key(self.key(check.bucket, check.subject));
            invocation.arg(check.limit.window.as_millis() as u64).arg(if check.count { "1" } else { "0" });
        }
        let replies: Vec<i64> = invocation.invoke_async(&mut self.redis.clone()).await?;
        let decisions = checks.iter().zip(replies.chunks(2)).map(|(check, reply)| match reply {
            [count, ttl_ms] => decide(u64::try_from(*count).unwrap_or(0), *ttl_ms, check.limit),
            _ => Decision::Allowed,
        });
        Ok(decisions.fold(Decision::Allowed, |worst, next| match (worst, next) {
            (Decision::Limited { retry_after: a }, Decision::Limited { retry_after: b }) => {
                Decision::Limited { retry_after: a.max(b) }
            }
            (Decision::Allowed, other) | (other, Decision::Allowed) => other,
        }))
    }

    fn key(&self, bucket: &str, subject: &str) -> String {
        let digest = Sha256::digest(subject.as_bytes());
        let short: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        keys::rate_limit(&self.prefix, bucket, &short)
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
