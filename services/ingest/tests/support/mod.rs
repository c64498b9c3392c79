//! What the ingest tests share: a fresh database and Redis prefix with a room (`World`), presence
//! as the gateways write it, workers with short timings, and the loopback RTSP server of
//! tests/rtsp/server.py (GStreamer), killed when dropped.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use confab_common::camera_url::HostPolicy;
use confab_common::secret_box::SecretBox;
use confab_ingest::Settings;
use confab_ingest::settings::Timings;
use confab_ingest::store::CameraId;
use confab_ingest::worker::Worker;
use redis::aio::ConnectionManager;
use sqlx::{Executor, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

pub const KEY: &str = "3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhs=";

pub use confab_testkit::RtspServer;

pub use confab_testkit::env;

pub struct World {
    pub db: PgPool,
    pub database_url: String,
    pub prefix: String,
    pub redis: ConnectionManager,
    pub room: Uuid,
    owner: Uuid,
}

/// A camera status row as the API reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StatusRow {
    pub state: String,
    pub codec: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub frame_rate: Option<f32>,
    pub bitrate_kbps: Option<i32>,
    pub audio: Option<String>,
    pub last_error: Option<String>,
    pub reconnects: i32,
    pub worker_id: Option<String>,
}

pub async fn world() -> World {
    let (db, database_url) = confab_testkit::fresh_database().await;
    let (owner, room) = (Uuid::new_v4(), Uuid::new_v4());
    db.execute(sqlx::AssertSqlSafe(format!(
        "insert into users (id, email, display_name, password_hash) values ('{owner}', '{owner}@example.org', 'Ann', 'x');
         insert into rooms (id, name, owner_id, max_participants) values ('{room}', 'Watched', '{owner}', 4);"
    )))
    .await
    .unwrap();
    let redis = confab_common::redis::connect_lazy(&env("REDIS_URL")).unwrap();
    World { db, database_url, prefix: confab_testkit::redis_prefix(), redis, room, owner }
}

impl World {
    /// Registers a camera as the API would: credentials sealed with [`KEY`].
    pub async fn add_camera(&self, name: &str, rtsp_url: &str, credentials: Option<(&str, &str)>) -> CameraId {
        let sealed = credentials.map(|(username, password)| {
            let json = serde_json::json!({"username": username, "password": password}).to_string();
            SecretBox::from_base64_key(KEY).unwrap().seal(json.as_bytes())
        });
        let id = Uuid::new_v4();
        sqlx::query("insert into cameras (id, room_id, name, rtsp_url, credentials, created_by) values ($1, $2, $3, $4, $5, $6)")
            .bind(id)
            .bind(self.room)
            .bind(name)
            .bind(rtsp_url)
            .bind(sealed)
            .bind(self.owner)
            .execute(&self.db)
            .await
            .unwrap();
        CameraId::from_uuid(id)
    }

    /// A peer enters the room, as a gateway records it.
    pub async fn join(&self, peer_id: &str, role: &str) {
        let presence = serde_json::json!({"peer_id": peer_id, "user_id": self.owner.to_string(),
            "display_name": "Ann", "role": role, "instance_id": "gw-test", "joined_at": "2026-11-24T01:00:00Z"});
        let mut redis = self.redis.clone();
        redis::pipe()
            .cmd("HSET")
            .arg(confab_domain::keys::room_peers(&self.prefix, self.room))
            .arg(peer_id)
            .arg(presence.to_string())
            .cmd("SADD")
            .arg(confab_domain::keys::live_rooms(&self.prefix))
            .arg(self.room.to_string())
            .query_async::<()>(&mut redis)
            .await
            .unwrap();
    }

    /// A peer leaves; the room leaves the live set when it was the last.
    pub async fn leave(&self, peer_id: &str) {
        let mut redis = self.redis.clone();
        let peers = confab_domain::keys::room_peers(&self.prefix, self.room);
        redis::cmd("HDEL").arg(&peers).arg(peer_id).query_async::<()>(&mut redis).await.unwrap();
        let left: u64 = redis::cmd("HLEN").arg(&peers).query_async(&mut redis).await.unwrap();
        if left == 0 {
            redis::cmd("SREM")
                .arg(confab_domain::keys::live_rooms(&self.prefix))
                .arg(self.room.to_string())
                .query_async::<()>(&mut redis)
                .await
                .unwrap();
        }
    }

    /// Who holds the camera's lease.
    pub async fn lease_holder(&self, camera: CameraId) -> Option<String> {
        let key = confab_domain::keys::camera_lease(&self.prefix, camera);
        redis::cmd("GET").arg(key).query_async(&mut self.redis.clone()).await.unwrap()
    }

    /// How long the camera's lease has to live unless renewed (zero when nobody holds it).
    pub async fn lease_ttl(&self, camera: CameraId) -> Duration {
        let key = confab_domain::keys::camera_lease(&self.prefix, camera);
        let ms: i64 = redis::cmd("PTTL").arg(key).query_async(&mut self.redis.clone()).await.unwrap();
        Duration::from_millis(ms.max(0) as u64)
    }

    pub fn settings(&self, instance_id: &str) -> Settings {
        Settings {
            bind: "127.0.0.1:0".into(),
            redis_url: env("REDIS_URL"),
            redis_prefix: self.prefix.clone(),
            database_url: self.database_url.clone(),
            instance_id: instance_id.to_owned(),
            secrets: Some(Arc::new(SecretBox::from_base64_key(KEY).unwrap())),
            // The test cameras are on loopback, which the default policy refuses.
            host_policy: HostPolicy::new(false, &["127.0.0.1".to_owned()]).unwrap(),
            call: None,
            timings: Timings {
                scan_every: Duration::from_millis(200),
                lease_ttl: Duration::from_secs(2),
                status_every: Duration::from_millis(500),
                stall_after: Duration::from_secs(2),
                connect_timeout: Duration::from_secs(3),
                backoff_min: Duration::from_millis(200),
                backoff_max: Duration::from_secs(1),
                meter_window: Duration::from_secs(2),
            },
        }
    }

    /// A worker running on the test's runtime; dropping the returned sender stops it
    /// gracefully (it lets its cameras go).
    pub fn worker(&self, settings: Settings) -> RunningWorker {
        let worker = Arc::new(Worker::build(settings).unwrap());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(worker.clone().run(stopped));
        RunningWorker { worker, stop, task }
    }

    pub async fn status(&self, camera: CameraId) -> Option<StatusRow> {
        sqlx::query_as(
            "select state, codec, width, height, frame_rate, bitrate_kbps, audio, last_error, reconnects, worker_id
               from camera_status where camera_id = $1",
        )
        .bind(camera)
        .fetch_optional(&self.db)
        .await
        .unwrap()
    }

    /// Waits up to `within` for the camera's status to satisfy `ok`; fails naming `what` and
    /// the last status seen.
    pub async fn wait_for(
        &self,
        camera: CameraId,
        what: &str,
        within: Duration,
        ok: impl Fn(&StatusRow) -> bool,
    ) -> StatusRow {
        let give_up = tokio::time::Instant::now() + within;
        loop {
            let status = self.status(camera).await;
            if let Some(status) = status.as_ref().filter(|s| ok(s)) {
                return status.clone();
            }
            if tokio::time::Instant::now() >= give_up {
                panic!("camera never {what} within {within:?}; last status: {status:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub struct RunningWorker {
    pub worker: Arc<Worker>,
    pub stop: watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<()>,
}

impl RunningWorker {
    /// Stops it as SIGTERM would, waiting until its cameras are let go.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}
