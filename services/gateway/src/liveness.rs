//! Instance liveness: this instance renews a heartbeat key in Redis (naming its incarnation), and
//! sweeps presence: peers of a gateway process that died (`kill -9`, or restarted under the same
//! id) keep their places for a resume for what is left of the resume window, then leave as
//! `disconnected`, like every parked peer whose window ended. It also retries the presence
//! removals of this instance that failed while Redis was unreachable, puts its connections back
//! if that failed after an outage, and samples the `gateway_rooms_active` gauge.

use std::sync::Arc;
use std::time::Duration;

use crate::hub::Hub;

const PERIOD: Duration = Duration::from_secs(3);

pub async fn run(hub: Arc<Hub>) {
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tick.tick().await;
        metrics::gauge!("gateway_rooms_active").set(hub.room_count() as f64);
        // After a Redis outage the heartbeat comes back with this instance's connections, not
        // before: another instance must never see it alive but without its peers.
        if hub.restoring() {
            if hub.is_attached() {
                hub.restore().await;
            }
            continue;
        }
        if let Err(e) = hub.heartbeat().await {
            metrics::counter!("gateway_redis_errors_total").increment(1);
            tracing::warn!(error = %e, "could not renew the instance heartbeat");
            continue;
        }
        let pending = hub.retry_removals().await;
        if pending > 0 {
            tracing::warn!(pending, "presence removals still failing");
        }
        if let Err(e) = hub.sweep().await {
            tracing::warn!(error = %e, "could not sweep presence");
        }
    }
}
