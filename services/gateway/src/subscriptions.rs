//! The pub/sub side of an instance: the control channel, and the channel of every room with local
//! peers (joined or joining), held by count so a room is never unsubscribed under a joining peer.
//! After a reconnect every channel is subscribed again; joins wait a moment for the subscriber
//! after start-up or a Redis outage rather than failing at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use confab_domain::keys;
use redis::aio::PubSubSink;
use tokio::sync::{Mutex, watch};

/// How long a hold waits for the subscriber to (re)connect.
const ATTACH_WAIT: Duration = Duration::from_secs(2);

pub struct Subscriptions {
    prefix: String,
    state: Mutex<State>,
    /// Whether the subscriber is connected.
    attached: watch::Sender<bool>,
    /// Set on the first connection; a later attach is a reconnect.
    ever_attached: AtomicBool,
}

#[derive(Default)]
struct State {
    sink: Option<PubSubSink>,
    /// Local peers (joined or joining) per room.
    holders: HashMap<String, usize>,
}

impl Subscriptions {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            state: Mutex::default(),
            attached: watch::Sender::new(false),
            ever_attached: AtomicBool::new(false),
        }
    }

    pub fn control_channel(&self) -> String {
        keys::control_channel(&self.prefix)
    }

    pub fn room_channel(&self, room_id: &str) -> String {
        keys::room_channel(&self.prefix, room_id)
    }

    /// The room id of a room channel name.
    pub fn room_of_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        keys::room_of_channel(&self.prefix, channel)
    }

    /// A (re)connected subscriber: listens to the control channel and every held room. True if
    /// it is a reconnect.
    pub async fn attach(&self, mut sink: PubSubSink) -> redis::RedisResult<bool> {
        {
            let mut state = self.state.lock().await;
            sink.subscribe(self.control_channel()).await?;
            for room_id in state.holders.keys() {
                sink.subscribe(self.room_channel(room_id)).await?;
            }
            state.sink = Some(sink);
        }
        let reconnected = self.ever_attached.swap(true, Ordering::SeqCst);
        self.attached.send_replace(true);
        Ok(reconnected)
    }

    /// The subscriber lost its connection.
    pub async fn detach(&self) {
        self.state.lock().await.sink = None;
        self.attached.send_replace(false);
    }

    pub fn is_attached(&self) -> bool {
        *self.attached.borrow()
    }

    /// Holds the room's channel for one more local peer, subscribing it for the first.
    pub async fn hold(&self, room_id: &str) -> redis::RedisResult<()> {
        let mut attached = self.attached.subscribe();
        let _ = tokio::time::timeout(ATTACH_WAIT, attached.wait_for(|up| *up)).await;
        let mut state = self.state.lock().await;
        let holders = state.holders.get(room_id).copied().unwrap_or(0);
        if holders == 0 {
            let channel = self.room_channel(room_id);
            let sink = state.sink.as_mut().ok_or_else(|| {
                redis::RedisError::from((redis::ErrorKind::Io, "the room channel subscriber is not connected"))
            })?;
            sink.subscribe(channel).await?;
        }
        state.holders.insert(room_id.to_owned(), holders + 1);
        Ok(())
    }

    /// Releases one hold; when it was the last, calls `last` (under the lock, so no new hold
    /// comes in between) and stops listening to the room.
    pub async fn release(&self, room_id: &str, last: impl FnOnce()) {
        let mut state = self.state.lock().await;
        let holders = state.holders.get(room_id).copied().unwrap_or(1) - 1;
        if holders > 0 {
            state.holders.insert(room_id.to_owned(), holders);
            return;
        }
        state.holders.remove(room_id);
        last();
        let channel = self.room_channel(room_id);
        if let Some(sink) = state.sink.as_mut() {
            let _ = sink.unsubscribe(channel).await;
        }
    }
}
