//! Redis connections shared by the services: created lazily so a service starts (and reports
//! not-ready) while Redis is down, reconnecting with capped backoff once it is back.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long a readiness probe or a single command may wait for Redis.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// A multiplexed, self-reconnecting connection that does not need Redis up at start-up.
pub fn connect_lazy(url: &str) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_max_delay(Duration::from_secs(2))
        .set_number_of_retries(2);
    ConnectionManager::new_lazy_with_config(client, config)
}

/// `PING`, for `/readyz`.
pub async fn ping(conn: &ConnectionManager) -> Result<(), String> {
    let mut conn = conn.clone();
    let reply: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
    reply.map(drop).map_err(|e| e.to_string())
}

/// How many keys match `pattern` (`SCAN`, so Redis is never blocked; each key counted once).
pub async fn count_keys(conn: &ConnectionManager, pattern: &str) -> redis::RedisResult<u64> {
    let mut conn = conn.clone();
    // SCAN may return a key twice; keys that have expired it leaves out.
    let (mut cursor, mut keys) = (0u64, std::collections::HashSet::new());
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000);
        let (next, batch): (u64, Vec<String>) = scan.query_async(&mut conn).await?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys.len() as u64);
        }
        cursor = next;
    }
}
