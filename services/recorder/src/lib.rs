//! `confab-recorder`: takes recording jobs from Redis, joins each call through a gateway as the
//! hidden recorder, and sees the recording's status through to the end in Postgres. For each
//! participant that offers its media (`recorded_peer`), `peer` receives the send-only WebRTC
//! connection, `media` turns its RTP into timed frames and `webm_file` writes them (`capture`
//! ties the two); `mkv_file` writes cameras' H.264, which WebM cannot carry; `recording_file`
//! holds what files of both formats share. In a room whose media goes through the SFU, its one
//! connection carries everyone's tracks (`media_server`), sorted into a capture per publisher
//! (`publishers`).

pub mod archive;
pub mod call;
pub mod capture;
pub mod free_space;
pub mod jobs;
pub mod media;
pub mod media_server;
pub mod mkv_file;
pub mod peer;
pub mod publishers;
pub mod recorded_peer;
pub mod recording_file;
pub mod settings;
pub mod store;
#[cfg(test)]
mod test_dir;
pub mod webm_file;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use confab_common::http::Service;
use confab_common::ops::OpsServer;
use confab_common::tokens::SigningKeys;
use confab_storage::Storage;
pub use settings::Settings;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::watch;

use crate::jobs::JobQueue;
use crate::worker::Worker;

impl Worker {
    /// A worker with its own Postgres pool (connecting on first use) and Redis connection.
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = PgPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy(&settings.database_url)?;
        let redis = confab_common::redis::connect_lazy(&settings.redis_url)?;
        let queue = JobQueue::new(
            redis,
            &settings.redis_url,
            &settings.redis_prefix,
            &settings.instance_id,
            settings.reclaim_after,
        )?;
        let keys = SigningKeys::from_pem(&settings.jwt_keys_pem)?;
        let storage = Storage::open(&settings.storage, &settings.recordings_dir)
            .map_err(|e| anyhow::anyhow!("recordings storage: {e}"))?;
        Ok(Self::new(settings, db, queue, keys, storage))
    }
}

/// How long a stopping recorder may take to finish and keep its recordings' files: within the
/// 30 s a container is given between SIGTERM and SIGKILL by default.
pub const HAND_OVER_WITHIN: Duration = Duration::from_secs(20);

/// The recorder process: the job worker and the ops endpoints.
pub struct Recorder {
    ops: OpsServer,
    worker: Arc<Worker>,
}

impl Recorder {
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let (bind, redis_url) = (settings.bind.clone(), settings.redis_url.clone());
        let worker = Worker::build(settings)?;
        let ops = OpsServer::build(Service::Recorder, &bind, Some(worker.db.clone()), &redis_url)?;
        Ok(Self { ops, worker: Arc::new(worker) })
    }

    pub fn port(&self) -> u16 {
        self.ops.port()
    }

    /// Works until SIGTERM/SIGINT. Recordings in progress then finish their files and are
    /// handed over to another recorder, for at most [`HAND_OVER_WITHIN`]; what is still running
    /// after that ends with the process and is taken over once its heartbeat key expires.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let worker = tokio::spawn(self.worker.run(stopped));
        let served = self.ops.run_until_stopped().await;
        let _ = stop.send(true);
        if tokio::time::timeout(HAND_OVER_WITHIN, worker).await.is_err() {
            tracing::warn!("recordings were still being handed over when the time for it ran out");
        }
        served
    }
}
