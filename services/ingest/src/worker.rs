//! Decides which cameras this instance pulls. Every `scan_every`: the rooms with a call (Redis
//! presence) × their cameras (Postgres) are the cameras wanted; this instance renews the leases
//! of those it pulls, tries to take the lease of each wanted camera nobody holds and starts
//! pulling it, and lets go of cameras no longer wanted (room empty, camera deleted) or whose
//! lease it lost. When Redis or Postgres cannot be read, it keeps what it has and tries again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use redis::aio::ConnectionManager;
use sqlx::PgPool;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::calls;
use crate::camera::{self, Context};
use crate::frames::{CHANNEL_CAPACITY, MediaFrame};
use crate::leases::Leases;
use crate::seat::{self, Seat};
use crate::settings::Settings;
use crate::store::{self, Camera, CameraId};

/// A camera this instance pulls.
struct Pull {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// The camera's seat in the call, when cameras join calls.
    seat: Option<JoinHandle<()>>,
    frames: broadcast::Sender<MediaFrame>,
}

pub struct Worker {
    pub settings: Settings,
    pub db: PgPool,
    pub redis: ConnectionManager,
    leases: Leases,
    pulls: Mutex<HashMap<CameraId, Pull>>,
}

impl Worker {
    pub fn new(settings: Settings, db: PgPool, redis: ConnectionManager) -> Self {
        let leases =
            Leases::new(redis.clone(), &settings.redis_prefix, &settings.instance_id, settings.timings.lease_ttl);
        Self { settings, db, redis, leases, pulls: Mutex::default() }
    }

    /// Scans until `shutdown` turns true, then lets every camera go.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            self.scan().await;
            tokio::select! {
                () = tokio::time::sleep(self.settings.timings.scan_every) => {}
                _ = shutdown.changed() => break,
            }
        }
        for camera in self.pulled() {
            self.let_go(camera, true).await;
        }
    }

    /// The cameras this instance pulls now.
    pub fn pulled(&self) -> Vec<CameraId> {
        let mut ids: Vec<_> = self.pulls.lock().expect("not poisoned").keys().copied().collect();
        ids.sort();
        ids
    }

    /// The frames of a camera this instance pulls.
    pub fn subscribe(&self, camera: CameraId) -> Option<broadcast::Receiver<MediaFrame>> {
        self.pulls.lock().expect("not poisoned").get(&camera).map(|p| p.frames.subscribe())
    }

    /// One round: renew, let go, take.
    pub async fn scan(&self) {
        let wanted = self.wanted().await;
        for camera in self.pulled() {
            if wanted.as_ref().is_some_and(|wanted| !wanted.contains_key(&camera)) {
                tracing::info!(camera.id = %camera, "no call in the camera's room any more (or it was deleted); letting it go");
                self.let_go(camera, true).await;
                continue;
            }
            match self.leases.renew(camera).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(camera.id = %camera, "lost the camera's lease (another worker may have it); stopping");
                    metrics::counter!("ingest_leases_lost_total").increment(1);
                    self.let_go(camera, false).await;
                }
                Err(e) => tracing::warn!(camera.id = %camera, error = %e, "cannot renew the camera's lease"),
            }
        }
        let Some(wanted) = wanted else { return };
        let held = self.pulled();
        for (id, camera) in wanted.into_iter().filter(|(id, _)| !held.contains(id)) {
            match self.leases.acquire(id).await {
                Ok(true) => self.start(camera),
                Ok(false) => {}
                Err(e) => tracing::warn!(camera.id = %id, error = %e, "cannot take the camera's lease"),
            }
        }
    }

    /// The cameras that should be pulled now; `None` when that cannot be known.
    async fn wanted(&self) -> Option<HashMap<CameraId, Camera>> {
        let rooms = match calls::rooms_with_a_call(&self.redis, &self.settings.redis_prefix).await {
            Ok(rooms) => rooms,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read which rooms have a call");
                return None;
            }
        };
        let rooms: Vec<_> = rooms.into_iter().collect();
        match store::find_cameras_in_rooms(&self.db, &rooms).await {
            Ok(cameras) => Some(cameras.into_iter().map(|c| (c.id, c)).collect()),
            Err(e) => {
                metrics::counter!("ingest_db_errors_total").increment(1);
                tracing::warn!(error = %e, "cannot read the cameras of rooms with a call");
                None
            }
        }
    }

    fn start(&self, camera: Camera) {
        tracing::info!(camera.id = %camera.id, room.id = %camera.room_id, "pulling the camera");
        metrics::counter!("ingest_leases_taken_total").increment(1);
        metrics::gauge!("ingest_cameras_pulled").increment(1);
        let (stop, stopped) = watch::channel(false);
        let (frames, _) = broadcast::channel(CHANNEL_CAPACITY);
        let ctx = Context {
            db: self.db.clone(),
            worker_id: self.settings.instance_id.clone(),
            secrets: self.settings.secrets.clone(),
            host_policy: self.settings.host_policy.clone(),
            timings: self.settings.timings.clone(),
        };
        let span = tracing::info_span!("camera", camera.id = %camera.id, room.id = %camera.room_id);
        let seat = self.settings.call.clone().map(|call| {
            let seat =
                Seat { call, camera_id: camera.id, name: camera.name.clone(), room_id: camera.room_id.to_string() };
            tokio::spawn(seat::sit(seat, frames.subscribe(), stopped.clone()).instrument(span.clone()))
        });
        let task = tokio::spawn(camera::pull(ctx, camera.id, frames.clone(), stopped).instrument(span));
        self.pulls.lock().expect("not poisoned").insert(camera.id, Pull { stop, task, seat, frames });
    }

    /// Stops pulling the camera. `owned`: the lease is still this instance's, so it is released
    /// and the status becomes `idle` (otherwise another worker owns both now).
    async fn let_go(&self, camera: CameraId, owned: bool) {
        let Some(pull) = self.pulls.lock().expect("not poisoned").remove(&camera) else { return };
        metrics::gauge!("ingest_cameras_pulled").decrement(1);
        let _ = pull.stop.send(true);
        if let Err(e) = pull.task.await {
            tracing::error!(camera.id = %camera, error = %e, "the camera's task panicked");
        }
        if let Some(Err(e)) = match pull.seat {
            Some(seat) => Some(seat.await),
            None => None,
        } {
            tracing::error!(camera.id = %camera, error = %e, "the camera's seat in the call panicked");
        }
        if !owned {
            return;
        }
        if let Err(e) = self.leases.release(camera).await {
            tracing::warn!(camera.id = %camera, error = %e, "cannot release the camera's lease; it will expire");
        }
        if let Err(e) = store::mark_camera_idle(&self.db, camera, &self.settings.instance_id).await {
            metrics::counter!("ingest_db_errors_total").increment(1);
            tracing::warn!(camera.id = %camera, error = %e, "cannot mark the camera idle");
        }
    }
}
