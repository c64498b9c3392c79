//! Instance liveness: this instance renews a heartbeat key in Redis, and sweeps the presence of
//! instances that stopped renewing theirs, so peers of a `kill -9`-ed gateway are announced as
//! left and their places freed within `INSTANCE_TTL` + one sweep (≤ 15 s). It also retries the
//! presence removals of this instance that failed while Redis was unreachable, and samples the
//! `gateway_rooms_active` gauge.

use std::sync::Arc;
use std::time::Duration;

use crate::hub::Hub;

const PERIOD: Duration = Duration::from_secs(3);

pub async fn run(hub: Arc<Hub>) {
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tick.tick().await;
        metrics::gauge!("gateway_rooms_active").set(hub.room_count() as f64);
        if let Err(e) = hub.heartbeat().await {
            metrics::counter!("gateway_redis_errors_total").increment(1);
            tracing::warn!(error = %e, "could not renew the instance heartbeat");
            continue;
        }
        let pending = hub.retry_removals().await;
        if pending > 0 {
            tracing::warn!(pending, "presence removals still failing");
        }
        if let Err(e) = hub.sweep_dead_instances().await {
            tracing::warn!(error = %e, "could not sweep dead instances");
        }
    }
}
