//! This instance's entry in the media servers' registry (`confab_common::sfu_registry`), so the
//! gateways place rooms on it by its load: a heartbeat every second states where participants
//! reach it, its capacity, and what it carries — the rooms and people its seats serve
//! ([`Occupancy`], kept by [`crate::seat`]), what it sends (the media threads' byte counter) and
//! its busiest media thread's CPU ([`crate::media_cpu`]). Once it is stopping it says it is
//! draining, so nothing new is placed on it, and it leaves the registry when its rooms are gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use confab_common::sfu_registry::{self, HEARTBEAT_EVERY, Load, Registration};
use redis::aio::ConnectionManager;
use tokio::sync::watch;

use crate::media_cpu::MediaCpu;
use crate::media_loop::Counters;

pub struct Registry {
    redis: ConnectionManager,
    prefix: String,
    instance_id: String,
    media_addresses: Vec<String>,
    capacity: u64,
    occupancy: Arc<Occupancy>,
    /// The media threads' socket counters (what is sent).
    counters: Arc<Counters>,
    draining: AtomicBool,
}

impl Registry {
    pub fn new(
        redis: ConnectionManager,
        prefix: &str,
        instance_id: &str,
        media_addresses: Vec<String>,
        capacity: u64,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            instance_id: instance_id.to_owned(),
            media_addresses,
            capacity,
            occupancy: Arc::default(),
            counters,
            draining: AtomicBool::new(false),
        }
    }

    /// What the seats count their rooms and people into.
    pub fn occupancy(&self) -> Arc<Occupancy> {
        Arc::clone(&self.occupancy)
    }

    /// Renews the entry every [`HEARTBEAT_EVERY`], for as long as the task runs; says at once
    /// that the instance is draining when `stop` turns true.
    pub async fn keep_alive(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut sent = Sent { bytes: self.counters.bytes_out.load(Ordering::Relaxed), at: Instant::now() };
        let mut cpu = MediaCpu::new(Instant::now());
        let mut every = tokio::time::interval(HEARTBEAT_EVERY);
        if let Err(error) = sfu_registry::clear_draining(&mut self.redis.clone(), &self.prefix, &self.instance_id).await
        {
            failed(&error, "clearing a draining mark of the SFU's last process");
        }
        loop {
            tokio::select! {
                _ = every.tick() => {}
                Ok(()) = stop.changed(), if !self.draining.load(Ordering::Relaxed) => {
                    let stopping = *stop.borrow();
                    if stopping {
                        self.drain().await;
                    }
                    continue;
                }
            }
            let now = Instant::now();
            let load = Load {
                subscribers: self.occupancy.subscribers.load(Ordering::Relaxed),
                rooms: self.occupancy.rooms.load(Ordering::Relaxed),
                forwarded_bits_per_second: sent.bits_per_second(self.counters.bytes_out.load(Ordering::Relaxed), now),
                media_cpu_percent: cpu.busiest_percent(now),
            };
            let entry = Registration {
                instance_id: self.instance_id.clone(),
                media_addresses: self.media_addresses.clone(),
                capacity: self.capacity,
                load,
                draining: self.draining.load(Ordering::Relaxed),
            };
            if let Err(error) = sfu_registry::heartbeat(&mut self.redis.clone(), &self.prefix, &entry).await {
                failed(&error, "renewing the SFU's registry entry");
            }
        }
    }

    /// The instance is stopping: no new room is placed on it from now on (the heartbeats say so
    /// too, should the entry have to be written afresh).
    pub async fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        if let Err(error) = sfu_registry::mark_draining(&mut self.redis.clone(), &self.prefix, &self.instance_id).await
        {
            failed(&error, "marking the SFU draining");
        }
    }

    /// The instance has stopped serving: it leaves the registry (its job stream with it).
    pub async fn leave(&self) {
        if let Err(error) = sfu_registry::deregister(&mut self.redis.clone(), &self.prefix, &self.instance_id).await {
            failed(&error, "leaving the SFU registry");
        }
    }
}

fn failed(error: &redis::RedisError, doing: &str) {
    ::metrics::counter!("sfu_redis_errors_total").increment(1);
    tracing::warn!(%error, "{doing}");
}

/// The bytes sent at the last heartbeat, for the bitrate since.
struct Sent {
    bytes: u64,
    at: Instant,
}

impl Sent {
    fn bits_per_second(&mut self, bytes: u64, now: Instant) -> u64 {
        let elapsed_ms = now.saturating_duration_since(self.at).as_millis() as u64;
        let rate = (bytes.saturating_sub(self.bytes).saturating_mul(8 * 1000)).checked_div(elapsed_ms).unwrap_or(0);
        *self = Self { bytes, at: now };
        rate
    }
}

/// The rooms this instance serves and the people in them, counted by the seats.
#[derive(Default)]
pub struct Occupancy {
    rooms: AtomicU64,
    subscribers: AtomicU64,
}

impl Occupancy {
    /// A room is being served, until the share is dropped.
    pub fn room(self: &Arc<Self>) -> RoomShare {
        self.rooms.fetch_add(1, Ordering::Relaxed);
        RoomShare { occupancy: Arc::clone(self), subscribers: 0 }
    }
}

/// One room's part of the [`Occupancy`]: counted while it lives.
pub struct RoomShare {
    occupancy: Arc<Occupancy>,
    subscribers: u64,
}

impl RoomShare {
    /// The room has `subscribers` people now.
    pub fn set_subscribers(&mut self, subscribers: u64) {
        let total = &self.occupancy.subscribers;
        if subscribers > self.subscribers {
            total.fetch_add(subscribers - self.subscribers, Ordering::Relaxed);
        } else {
            total.fetch_sub(self.subscribers - subscribers, Ordering::Relaxed);
        }
        self.subscribers = subscribers;
    }
}

impl Drop for RoomShare {
    fn drop(&mut self) {
        self.set_subscribers(0);
        self.occupancy.rooms.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rooms_count_their_people_while_they_are_served() {
        let occupancy = Arc::new(Occupancy::default());
        let read = |o: &Occupancy| (o.rooms.load(Ordering::Relaxed), o.subscribers.load(Ordering::Relaxed));
        let mut first = occupancy.room();
        let mut second = occupancy.room();
        first.set_subscribers(3);
        second.set_subscribers(5);
        first.set_subscribers(2);
        assert_eq!(read(&occupancy), (2, 7));
        drop(second);
        assert_eq!(read(&occupancy), (1, 2));
        drop(first);
        assert_eq!(read(&occupancy), (0, 0));
    }

    #[test]
    fn the_bitrate_is_what_was_sent_since_the_last_heartbeat() {
        let start = Instant::now();
        let mut sent = Sent { bytes: 1_000, at: start };
        assert_eq!(sent.bits_per_second(126_000, start + Duration::from_millis(500)), 2_000_000);
        assert_eq!(sent.bits_per_second(126_000, start + Duration::from_millis(500)), 0, "no time: no rate");
    }
}
