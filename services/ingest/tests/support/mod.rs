//! What the ingest tests share: a fresh database and Redis prefix with a room (`World`), presence
//! as the gateways write it, workers with short timings, and the loopback RTSP server of
//! tests/rtsp/server.py (GStreamer), killed when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use confab_common::camera_url::HostPolicy;
use confab_common::secret_box::SecretBox;
use confab_ingest::Settings;
use confab_ingest::settings::Timings;
use confab_ingest::store::CameraId;
use confab_ingest::worker::Worker;
use redis::aio::ConnectionManager;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

pub const KEY: &str = "3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhs=";

/// The Debian packages the RTSP test server needs (deploy/local/test installs them).
pub const PACKAGES: &str = "python3-gi gir1.2-gst-rtsp-server-1.0 python3-gst-1.0 gstreamer1.0-plugins-base \
     gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-rtsp";

pub fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} must be set: run the tests with deploy/local/test"))
}

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
    let base = env("DATABASE_URL");
    let server = base.rsplit_once('/').unwrap().0.to_owned();
    let name = format!("confab_test_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await.unwrap();
    admin.execute(sqlx::AssertSqlSafe(format!(r#"create database "{name}""#))).await.unwrap();
    let database_url = format!("{server}/{name}");
    let db = PgPool::connect(&database_url).await.unwrap();
    sqlx::migrate!("../../migrations").run(&db).await.unwrap();
    let (owner, room) = (Uuid::new_v4(), Uuid::new_v4());
    db.execute(sqlx::AssertSqlSafe(format!(
        "insert into users (id, email, display_name, password_hash) values ('{owner}', '{owner}@example.org', 'Ann', 'x');
         insert into rooms (id, name, owner_id, max_participants) values ('{room}', 'Watched', '{owner}', 4);"
    )))
    .await
    .unwrap();
    let redis = confab_common::redis::connect_lazy(&env("REDIS_URL")).unwrap();
    World { db, database_url, prefix: format!("confab-test:{}", Uuid::new_v4().simple()), redis, room, owner }
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

/// tests/rtsp/server.py, killed on drop.
pub struct RtspServer {
    child: Child,
    pub port: u16,
    args: Vec<String>,
    /// Killed and reaped already: its pid may belong to another process now.
    reaped: bool,
}

impl RtspServer {
    /// Starts a server with these extra arguments (e.g. `["--video", "mjpeg"]`) on any port.
    pub fn start(args: &[&str]) -> Self {
        Self::start_on(0, args.iter().map(|a| (*a).to_owned()).collect())
    }

    fn start_on(port: u16, args: Vec<String>) -> Self {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/rtsp/server.py");
        let python = std::env::var("RTSP_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
        let check = Command::new(&python)
            .args([
                "-c",
                "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer",
            ])
            .output();
        match check {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "{python} cannot load GStreamer's RTSP server bindings ({}): install {PACKAGES} \
                 (deploy/local/test does)",
                String::from_utf8_lossy(&out.stderr).trim().lines().last().unwrap_or_default()
            ),
            Err(e) => panic!("cannot run {python} ({e}): install {PACKAGES} (deploy/local/test does)"),
        }
        let mut child = Command::new(&python)
            .arg(&script)
            .arg("--port")
            .arg(port.to_string())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("ready ") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(port)) => port,
            other => {
                let _ = child.kill();
                panic!("the RTSP test server did not start (args {args:?}): {other:?}; see its stderr above")
            }
        };
        Self { child, port, args, reaped: false }
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }

    /// Kills the server (as a crash would) and returns what restarts it on the same port.
    pub fn kill(mut self) -> Stopped {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
        Stopped { port: self.port, args: std::mem::take(&mut self.args) }
    }

    /// SIGSTOP / SIGCONT: the connection stays open but nothing arrives.
    pub fn pause(&self, paused: bool) {
        let signal = if paused { "-STOP" } else { "-CONT" };
        let status = Command::new("kill").arg(signal).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill {signal} failed");
    }
}

pub struct Stopped {
    port: u16,
    args: Vec<String>,
}

impl Stopped {
    pub fn restart(self) -> RtspServer {
        RtspServer::start_on(self.port, self.args)
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        let _ = Command::new("kill").arg("-CONT").arg(self.child.id().to_string()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
