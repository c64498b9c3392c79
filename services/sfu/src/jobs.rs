//! Rooms for this SFU to serve, from its own job stream, where the gateways place rooms by the
//! load it states in the registry (`confab_common::sfu_jobs`, [`crate::registry`]): each job read
//! is served by its own task until its call no longer needs the SFU ([`crate::seat`]). At
//! shutdown it says it is draining, so nothing new is placed on it, no job is taken any more, the
//! rooms placed on it but not yet read go to other instances, every room being served is handed
//! over and left, and the instance leaves the registry.

use std::sync::Arc;
use std::time::Duration;

use confab_common::sfu_jobs::{self, Placement};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::registry::Registry;
use crate::seat::Seats;

/// How long one read waits for a job.
const WAIT: Duration = Duration::from_secs(2);
/// The pause after a failed read (Redis down).
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct Jobs {
    seats: Seats,
    registry: Arc<Registry>,
    /// A connection of its own for the blocking read: Redis serves one connection's commands in
    /// order, so a blocked `XREADGROUP` would hold up the rooms' renewals.
    reader: ConnectionManager,
}

impl Jobs {
    pub fn new(seats: Seats, registry: Registry, redis_url: &str) -> redis::RedisResult<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(WAIT + Duration::from_secs(2)));
        let reader = ConnectionManager::new_lazy_with_config(redis::Client::open(redis_url)?, config)?;
        Ok(Self { seats, registry: Arc::new(registry), reader })
    }

    /// Registers the instance, takes and serves rooms until `stop` turns true; then hands over
    /// and leaves every room and leaves the registry.
    pub async fn run(mut self, stop: watch::Receiver<bool>) {
        // Tasks in sets, so that if this future is dropped (the process dies: a test kills the
        // instance so), the heartbeat and every room's seat go with it.
        let mut heartbeat = JoinSet::new();
        heartbeat.spawn(Arc::clone(&self.registry).keep_alive(stop.clone()));
        let mut rooms = JoinSet::new();
        let (prefix, instance) = (self.seats.prefix.clone(), self.seats.instance_id.clone());
        let mut grouped = false;
        // A read is never abandoned half-way (no `select!` around it): a blocking XREADGROUP
        // whose future is dropped still takes the next job on Redis's side, and its answer would
        // be thrown away with the future, the job lost. It waits at most WAIT, so `stop` is seen
        // between reads; finished rooms are reaped between reads too.
        while !*stop.borrow() {
            if !grouped {
                match sfu_jobs::ensure_group(&mut self.reader, &prefix, &instance).await {
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
                Err(error) => {
                    // The stream went (it outlived a long Redis outage, or Redis restarted empty).
                    grouped &= error.code() != Some("NOGROUP");
                    failed(&error).await;
                }
            }
            while rooms.try_join_next().is_some() {}
        }
        // The heartbeat said so when `stop` turned; said here again before the stream's last read,
        // so nothing can be placed on this instance after it.
        self.registry.drain().await;
        self.hand_over_unread(&prefix, &instance).await;
        // Each seat hands its room over and leaves it with `bye`.
        while rooms.join_next().await.is_some() {}
        heartbeat.abort_all();
        self.registry.leave().await;
    }

    /// Rooms placed on this instance before it said it was draining, not yet read: each goes to
    /// another instance, as the rooms it serves do.
    async fn hand_over_unread(&mut self, prefix: &str, instance: &str) {
        match sfu_jobs::hand_over_unread(&mut self.reader, prefix, instance).await {
            Ok(rooms) => {
                for (room, placement) in rooms {
                    if let Placement::Placed { instance_id } = placement {
                        ::metrics::counter!("sfu_rooms_handed_over_total").increment(1);
                        tracing::info!(room.id = %room, sfu.id = %instance_id, "shutting down; an unread room goes to another SFU");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "handing over the rooms placed here and not yet read"),
        }
    }
}

/// A failed read of the job stream (Redis down): counted, logged, and a pause before the next.
async fn failed(error: &redis::RedisError) {
    ::metrics::counter!("sfu_redis_errors_total").increment(1);
    tracing::warn!(%error, "reading the SFU's job stream");
    tokio::time::sleep(RETRY_AFTER).await;
}
