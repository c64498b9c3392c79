//! Rooms for this SFU to serve, from the work queue the gateways fill
//! (`confab_common::sfu_jobs`): each job read is served by its own task until its call no longer
//! needs the SFU ([`crate::seat`]). At shutdown no job is taken any more, and every room being
//! served is left and released (its next arrival queues it for another SFU).

use std::time::Duration;

use confab_common::sfu_jobs;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::seat::Seats;

/// How long one read waits for a job.
const WAIT: Duration = Duration::from_secs(2);
/// The pause after a failed read (Redis down).
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct Jobs {
    seats: Seats,
    /// A connection of its own for the blocking read: Redis serves one connection's commands in
    /// order, so a blocked `XREADGROUP` would hold up the rooms' renewals.
    reader: ConnectionManager,
}

impl Jobs {
    pub fn new(seats: Seats, redis_url: &str) -> redis::RedisResult<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(WAIT + Duration::from_secs(2)));
        let reader = ConnectionManager::new_lazy_with_config(redis::Client::open(redis_url)?, config)?;
        Ok(Self { seats, reader })
    }

    /// Takes and serves rooms until `stop` turns true; then the rooms being served are left.
    pub async fn run(mut self, stop: watch::Receiver<bool>) {
        let mut rooms = JoinSet::new();
        let (prefix, instance) = (self.seats.prefix.clone(), self.seats.instance_id.clone());
        let mut grouped = false;
        // A read is never abandoned half-way (no `select!` around it): a blocking XREADGROUP
        // whose future is dropped still takes the next job on Redis's side, and its answer would
        // be thrown away with the future, the job lost. It waits at most WAIT, so `stop` is seen
        // between reads; finished rooms are reaped between reads too.
        while !*stop.borrow() {
            if !grouped {
                match sfu_jobs::ensure_group(&mut self.reader, &prefix).await {
                    Ok(()) => grouped = true,
                    Err(error) => {
                        failed(&error).await;
                        continue;
                    }
                }
            }
            match sfu_jobs::next(&mut self.reader, &prefix, &instance, WAIT).await {
                Ok(Some(job)) => {
                    ::metrics::counter!("sfu_rooms_taken_total").increment(1);
                    rooms.spawn(self.seats.clone().serve(job, stop.clone()));
                }
                Ok(None) => {}
                Err(error) => failed(&error).await,
            }
            while rooms.try_join_next().is_some() {}
        }
        // Each seat leaves its room with `bye` and releases it for another SFU.
        while rooms.join_next().await.is_some() {}
    }
}

/// A failed read of the queue (Redis down): counted, logged, and a pause before the next.
async fn failed(error: &redis::RedisError) {
    ::metrics::counter!("sfu_redis_errors_total").increment(1);
    tracing::warn!(%error, "reading the SFU work queue");
    tokio::time::sleep(RETRY_AFTER).await;
}
