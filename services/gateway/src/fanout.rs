//! The Redis subscriber of one instance: keeps a pub/sub connection, (re)subscribes the control
//! channel and every room with local peers, and hands each message to the hub. Reconnects with
//! capped backoff when Redis goes away. `gateway_redis_connected` says whether the subscription
//! is up.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use crate::hub::Hub;

const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub async fn run(hub: Arc<Hub>, client: redis::Client) {
    metrics::gauge!("gateway_redis_connected").set(0.0);
    let mut backoff = Duration::from_millis(100);
    loop {
        match client.get_async_pubsub().await {
            Ok(pubsub) => {
                let (sink, mut stream) = pubsub.split();
                match hub.attach(sink).await {
                    Ok(()) => {
                        metrics::gauge!("gateway_redis_connected").set(1.0);
                        backoff = Duration::from_millis(100);
                        tracing::info!("subscribed to the control channel and local rooms");
                        while let Some(message) = stream.next().await {
                            hub.dispatch(message.get_channel_name(), message.get_payload_bytes());
                        }
                        metrics::gauge!("gateway_redis_connected").set(0.0);
                        hub.detach().await;
                        tracing::warn!("lost the Redis subscription; reconnecting");
                    }
                    Err(e) => tracing::warn!(error = %e, "could not subscribe"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot reach Redis for subscriptions"),
        }
        metrics::counter!("gateway_redis_reconnects_total").increment(1);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
