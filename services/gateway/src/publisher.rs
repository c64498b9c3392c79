//! Sends room events to Redis from one task, in the order they were queued, so the per-room
//! sequence numbers the hub gives them reach the other instances in order. Events queued while
//! a PUBLISH is in flight go out together in the next pipeline: one round trip per batch.

use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

/// Events waiting for Redis; beyond this the newest are dropped (and counted).
const BACKLOG: usize = 8192;
/// Events per pipeline.
const MAX_BATCH: usize = 256;

/// A room event for a channel, already encoded.
struct Outgoing {
    channel: String,
    payload: Vec<u8>,
}

#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::Sender<Outgoing>,
}

impl Publisher {
    /// Starts the publishing task on the current runtime.
    pub fn start(redis: ConnectionManager) -> Self {
        let (queue, events) = mpsc::channel(BACKLOG);
        tokio::spawn(run(events, redis));
        Self { queue }
    }

    /// Queues an event; never waits. A dropped event shows up as a gap in the room's sequence.
    pub fn send(&self, channel: String, payload: Vec<u8>) {
        if self.queue.try_send(Outgoing { channel, payload }).is_err() {
            metrics::counter!("gateway_dropped_messages_total", "reason" => "publish_backlog").increment(1);
        }
    }
}

async fn run(mut events: mpsc::Receiver<Outgoing>, mut redis: ConnectionManager) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut failing = false;
    while events.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for event in &batch {
            pipe.cmd("PUBLISH").arg(&event.channel).arg(&event.payload).ignore();
        }
        match pipe.query_async::<()>(&mut redis).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("publishing to other instances again");
            }
            Ok(()) => {}
            Err(e) => {
                metrics::counter!("gateway_dropped_messages_total", "reason" => "redis_unavailable")
                    .increment(batch.len() as u64);
                if !failing {
                    tracing::warn!(error = %e, "could not publish to other instances");
                }
                failing = true;
            }
        }
        batch.clear();
    }
}
