//! The whole stack in one process, for tests that follow a user's path through every service: the
//! API, a signaling gateway, the recorder, the camera ingest and the media server on real
//! Postgres and Redis,
//! sharing one database, one Redis prefix, one signing key and one recordings directory, and an
//! HTTP client that speaks to the API as the browser client does.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use awc::http::StatusCode;
use confab_testkit::{TempDir, TestKeys, env, eventually, run_tool};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

/// The five services, running until the deployment is dropped.
pub struct Deployment {
    /// The API's base URL.
    pub api: String,
    pub db: PgPool,
    /// Where the recorder writes and the API serves recordings from.
    pub recordings: TempDir,
    client: awc::Client,
    _recorder: tokio::sync::watch::Sender<bool>,
    _ingest: tokio::sync::watch::Sender<bool>,
    /// The settings of the first media server, from which [`Deployment::start_sfu`] makes more.
    sfu_settings: confab_sfu::Settings,
    /// Each running media server's id, what stops it, and its task.
    sfus: Vec<RunningSfu>,
}

/// A media server of the deployment.
struct RunningSfu {
    id: String,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Deployment {
    /// Starts the five services. The camera ingest may pull cameras from loopback (the test
    /// camera's address), which its SSRF guard refuses by default.
    pub async fn start() -> Self {
        let (db, database_url) = confab_testkit::fresh_database().await;
        let key_pem = TestKeys::default().pem;
        let prefix = confab_testkit::redis_prefix();
        let recordings = TempDir::new("stack-recordings");

        // The gateway is built before the API (the API hands out the gateway's address), so it
        // reaches the API's key set through a relay that learns the API's address afterwards.
        let api_address = Arc::new(OnceLock::new());
        let gateway = confab_testkit::gateway(&prefix, &jwks_relay(Arc::clone(&api_address)), "gw-stack");

        let mut settings =
            confab_testkit::api_settings(&database_url, &prefix, &key_pem, vec![gateway.url.clone()], &recordings.0);
        settings.cameras = confab_api::settings::CameraSettings {
            key: None,
            allowed_hosts: vec!["127.0.0.1".into()],
            allow_private: false,
        };
        let api = confab_testkit::api(settings).await;
        api_address.set(api.clone()).unwrap();

        let recorder = confab_recorder::worker::Worker::build(confab_recorder::Settings {
            bind: "127.0.0.1:0".into(),
            redis_url: env("REDIS_URL"),
            redis_prefix: prefix.clone(),
            database_url: database_url.clone(),
            instance_id: "rec-stack".into(),
            gateway_urls: vec![gateway.url.clone()],
            jwt_keys_pem: key_pem.clone(),
            jwt_issuer: "confab".into(),
            recordings_dir: recordings.0.clone(),
            // The default: nothing in these paths may wait for a take-over.
            reclaim_after: Duration::from_secs(30),
            storage: Default::default(),
            min_free_bytes: 1 << 30,
        })
        .unwrap();
        let (stop_recorder, recorder_stopped) = tokio::sync::watch::channel(false);
        actix_web::rt::spawn(Arc::new(recorder).run(recorder_stopped));

        // The media server, its rooms spread over two media threads, each on a UDP port of its
        // own on loopback.
        let sfu_settings = confab_sfu::Settings {
            bind: "127.0.0.1:0".into(),
            redis_url: env("REDIS_URL"),
            redis_prefix: prefix.clone(),
            instance_id: "sfu-stack".into(),
            gateway_urls: vec![gateway.url.clone()],
            jwt_keys_pem: key_pem.clone(),
            jwt_issuer: "confab".into(),
            media_bind: "127.0.0.1:0".parse().unwrap(),
            media_address: "127.0.0.1:0".parse().unwrap(),
            media_threads: 2,
            capacity: 250,
        };

        let ingest = confab_ingest::worker::Worker::build(confab_ingest::Settings {
            bind: "127.0.0.1:0".into(),
            redis_url: env("REDIS_URL"),
            redis_prefix: prefix,
            database_url,
            instance_id: "ingest-stack".into(),
            secrets: None,
            host_policy: confab_common::camera_url::HostPolicy::new(false, &["127.0.0.1".to_owned()]).unwrap(),
            call: Some(confab_ingest::settings::CallSettings {
                gateway_urls: vec![gateway.url],
                keys: Arc::new(confab_common::tokens::SigningKeys::from_pem(&key_pem).unwrap()),
                jwt_issuer: "confab".into(),
                bind_addrs: vec!["127.0.0.1:0".into()],
                include_loopback_candidates: true,
            }),
            timings: confab_ingest::settings::Timings { scan_every: Duration::from_millis(200), ..Default::default() },
        })
        .unwrap();
        let (stop_ingest, ingest_stopped) = tokio::sync::watch::channel(false);
        actix_web::rt::spawn(Arc::new(ingest).run(ingest_stopped));

        let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
        let mut deployment = Self {
            api,
            db,
            recordings,
            client,
            _recorder: stop_recorder,
            _ingest: stop_ingest,
            sfu_settings,
            sfus: Vec::new(),
        };
        deployment.start_sfu("sfu-stack").await;
        deployment
    }

    /// Starts a media server instance `instance_id` beside the others (same gateway, Redis and
    /// key), with its own ports.
    pub async fn start_sfu(&mut self, instance_id: &str) {
        let settings = confab_sfu::Settings { instance_id: instance_id.to_owned(), ..self.sfu_settings.clone() };
        let sfu = confab_sfu::Sfu::build(settings).await.unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = actix_web::rt::spawn(sfu.serve_until(stopped));
        self.sfus.push(RunningSfu { id: instance_id.to_owned(), stop, task });
    }

    /// Stops the media server `instance_id` as SIGTERM does: it hands its rooms over and leaves.
    pub fn stop_sfu(&mut self, instance_id: &str) {
        let _ = self.take_sfu(instance_id).stop.send(true);
    }

    /// Ends the media server `instance_id` at once, as `kill -9` does: its seats' connections
    /// close without a goodbye, its heartbeat stops, and nothing is handed over.
    pub fn kill_sfu(&mut self, instance_id: &str) {
        self.take_sfu(instance_id).task.abort();
    }

    fn take_sfu(&mut self, instance_id: &str) -> RunningSfu {
        let index = self.sfus.iter().position(|sfu| sfu.id == instance_id).expect("a running media server");
        self.sfus.remove(index)
    }

    /// Signs up an administrator and logs in; the access token.
    pub async fn admin(&self) -> String {
        let (token, email) = self.signed_up().await;
        sqlx::query("update users set role = 'admin' where email = $1").bind(&email).execute(&self.db).await.unwrap();
        // The API reads the role on every request: the token is an admin's from now on.
        token
    }

    /// Waits until the room's webhook events are `expected` (besides `room.created`), each once:
    /// the gateway's presence stream and the recorder's status changes reach the outbox.
    pub async fn expect_webhook_events(&self, room: &str, expected: &[&str]) {
        let room = Uuid::parse_str(room).unwrap();
        let mut expected: Vec<&str> = expected.to_vec();
        expected.sort();
        let events = eventually("the room's webhook events", Duration::from_secs(10), || async {
            let events = sqlx::query_scalar::<_, String>(
                "select type from webhook_events where room_id = $1 and type <> 'room.created' order by type",
            )
            .bind(room)
            .fetch_all(&self.db)
            .await
            .unwrap();
            (events.len() >= expected.len()).then_some(events)
        })
        .await;
        assert_eq!(events, expected, "webhook events of the room");
    }

    async fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.client.request(method.parse().unwrap(), format!("{}{path}", self.api));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let mut reply = match body {
            Some(body) => request.send_json(&body).await.unwrap(),
            None => request.send().await.unwrap(),
        };
        let body = reply.body().await.unwrap();
        (reply.status(), serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// `POST`, expecting `expected`; the reply's body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value, expected: StatusCode) -> Value {
        let (status, reply) = self.send("POST", path, token, Some(body)).await;
        assert_eq!(status, expected, "POST {path}: {reply}");
        reply
    }

    /// `GET`, expecting 200; the reply's body.
    pub async fn get(&self, path: &str, token: &str) -> Value {
        let (status, reply) = self.send("GET", path, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {reply}");
        reply
    }

    /// Signs up a user and logs in; the access token.
    pub async fn signed_up_user(&self) -> String {
        self.signed_up().await.0
    }

    /// Signs up a user and logs in; the access token and the user's email.
    pub async fn signed_up(&self) -> (String, String) {
        let email = format!("user-{}@example.org", Uuid::new_v4().simple());
        let password = "correct horse battery staple";
        let signup = json!({"email": email, "password": password, "display_name": "Ann"});
        self.post("/v1/auth/signup", None, signup, StatusCode::CREATED).await;
        let login = self.post("/v1/auth/login", None, json!({"email": email, "password": password}), StatusCode::OK);
        (login.await["access_token"].as_str().expect("an access token").to_owned(), email)
    }

    /// Polls the recording until it is `status` (the recorder checks for a stop every 500 ms).
    pub async fn wait_for_recording(&self, token: &str, recording: &str, status: &str) -> Value {
        let what = format!("recording {recording} becomes {status}");
        eventually(&what, Duration::from_secs(30), || async {
            let recording = self.get(&format!("/v1/recordings/{recording}"), token).await;
            (recording["status"] == status).then_some(recording)
        })
        .await
    }

    /// Waits until the recorder has begun a camera's Matroska file of `recording` (it has its
    /// header on disk): it starts at the camera's first keyframe once the recorder receives it.
    pub async fn wait_for_camera_file(&self, recording: &str) {
        let directory = self.recordings.0.join(recording);
        eventually("the camera's file starts", Duration::from_secs(30), || {
            let entries = std::fs::read_dir(&directory).into_iter().flatten().flatten();
            let started = entries
                .into_iter()
                .any(|e| e.path().extension().is_some_and(|x| x == "mkv") && e.metadata().is_ok_and(|m| m.len() > 0));
            std::future::ready(started.then_some(()))
        })
        .await;
    }

    /// The file at `path` and its `Content-Type`.
    pub async fn download(&self, token: &str, path: &str) -> (String, Vec<u8>) {
        let mut reply = self.client.get(format!("{}{path}", self.api)).bearer_auth(token).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::OK, "GET {path}");
        let content_type = reply.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        (content_type.unwrap_or_default(), reply.body().limit(64 << 20).await.unwrap().to_vec())
    }
}

/// Serves the API's `/.well-known/jwks.json` once the API's address is known; returns its URL.
fn jwks_relay(api: Arc<OnceLock<String>>) -> String {
    let server = HttpServer::new(move || {
        let api = Arc::clone(&api);
        App::new().route(
            "/jwks",
            web::get().to(move || {
                let api = Arc::clone(&api);
                async move {
                    let Some(api) = api.get() else { return HttpResponse::ServiceUnavailable().finish() };
                    let mut reply =
                        awc::Client::new().get(format!("{api}/.well-known/jwks.json")).send().await.unwrap();
                    HttpResponse::build(reply.status())
                        .content_type("application/json")
                        .body(reply.body().await.unwrap())
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let url = format!("http://127.0.0.1:{}/jwks", server.addrs()[0].port());
    actix_web::rt::spawn(server.run());
    url
}

/// What ffprobe reads in a file.
#[derive(Debug)]
pub struct Probe {
    /// Codec name by codec type (`video`, `audio`).
    pub codecs: Vec<(String, String)>,
    pub duration_secs: f64,
    /// The first packet's presentation time by codec type.
    pub first_pts_secs: Vec<(String, f64)>,
}

pub fn probe(file: &Path) -> Probe {
    let entries = "stream=index,codec_type,codec_name:format=duration:packet=stream_index,pts_time";
    let file = file.to_str().unwrap();
    let (json, _) = run_tool("ffprobe", &["-v", "error", "-show_entries", entries, "-of", "json", file]);
    let probed: Value = serde_json::from_str(&json).unwrap();
    let seconds = |value: &Value| value.as_str().and_then(|s| s.parse::<f64>().ok()).expect("a time in seconds");
    let streams = probed["streams"].as_array().expect("streams");
    let kind_of = |index: &Value| {
        let stream = streams.iter().find(|s| s["index"] == *index).expect("a packet of a listed stream");
        stream["codec_type"].as_str().unwrap().to_owned()
    };
    let mut first_pts_secs: Vec<(String, f64)> = Vec::new();
    for packet in probed["packets"].as_array().expect("packets") {
        let kind = kind_of(&packet["stream_index"]);
        if !first_pts_secs.iter().any(|(k, _)| *k == kind) {
            first_pts_secs.push((kind, seconds(&packet["pts_time"])));
        }
    }
    Probe {
        codecs: streams
            .iter()
            .map(|s| (s["codec_type"].as_str().unwrap().to_owned(), s["codec_name"].as_str().unwrap().to_owned()))
            .collect(),
        duration_secs: seconds(&probed["format"]["duration"]),
        first_pts_secs,
    }
}
