//! `confab-ingest`: brings RTSP IP cameras into Confab rooms while a call is going on there.
//! `worker` decides which cameras to pull (rooms with a call × cameras in Postgres) and shares
//! them with other instances through Redis `leases`; `camera` pulls one camera with retina and
//! publishes its H.264 and G.711 `frames`, writing its status through `store`; `seat` brings
//! the camera into its room's call through a gateway and offers it to every viewer over `peer`.

pub mod backoff;
pub mod calls;
pub mod camera;
pub mod frames;
pub mod leases;
pub mod meter;
pub mod peer;
pub mod seat;
pub mod settings;
pub mod status;
pub mod store;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use confab_common::http::Service;
use confab_common::ops::OpsServer;
pub use settings::Settings;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::watch;

use crate::worker::Worker;

impl Worker {
    /// A worker with its own Postgres pool (connecting on first use) and Redis connection.
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = PgPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy(&settings.database_url)?;
        let redis = confab_common::redis::connect_lazy(&settings.redis_url)?;
        Ok(Self::new(settings, db, redis))
    }
}

/// The ingest process: the worker and the ops endpoints.
pub struct Ingest {
    ops: OpsServer,
    worker: Arc<Worker>,
}

impl Ingest {
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let (bind, redis_url) = (settings.bind.clone(), settings.redis_url.clone());
        let worker = Worker::build(settings)?;
        let ops = OpsServer::build(Service::Ingest, &bind, Some(worker.db.clone()), &redis_url)?;
        Ok(Self { ops, worker: Arc::new(worker) })
    }

    pub fn port(&self) -> u16 {
        self.ops.port()
    }

    /// Works until SIGTERM/SIGINT, then lets every camera go (leases released, status `idle`)
    /// so another instance can take them at once.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let worker = tokio::spawn(self.worker.run(stopped));
        let served = self.ops.run_until_stopped().await;
        let _ = stop.send(true);
        if tokio::time::timeout(Duration::from_secs(5), worker).await.is_err() {
            tracing::warn!("cameras were not all let go within 5 s; their leases will expire");
        }
        served
    }
}
