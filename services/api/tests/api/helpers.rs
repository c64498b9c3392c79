//! `spawn_app()`: the testkit's fresh database, Redis prefix, signing key and in-process API, and
//! what only the API's tests need on top: a client with typed helpers, the control channel, and
//! rows as a recorder would leave them.

use std::time::Duration;

use awc::http::StatusCode;
use confab_api::settings::Settings;
use confab_storage::{Key, Storage};
use confab_testkit::{TestKeys, api, api_settings, env, fresh_database, redis_prefix};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub address: String,
    pub db: PgPool,
    /// The key the app signs access tokens with (the testkit's), for tests that forge tokens.
    pub signing_key: SigningKey,
    pub settings: Settings,
    /// The app's recordings storage, as the recorder hands files to it.
    pub storage: Storage,
    pub client: awc::Client,
}

/// Messages published to the gateways' control channel.
pub struct ControlListener {
    pubsub: redis::aio::PubSub,
}

impl ControlListener {
    /// The next control message as its proto3 JSON, without the id of the request that caused it
    /// (which every command from a request carries: checked here).
    pub async fn next(&mut self) -> Value {
        let (mut control, request_id) = self.next_with_request_id().await;
        assert!(!request_id.is_empty(), "a command without a request id: {control}");
        control.as_object_mut().unwrap().remove("request_id");
        control
    }

    /// The next control message (binary protobuf on the wire), as its proto3 JSON, and its
    /// `request_id` (fails after 5 s).
    pub async fn next_with_request_id(&mut self) -> (Value, String) {
        use futures_util::StreamExt;
        use prost::Message;
        let message = tokio::time::timeout(Duration::from_secs(5), self.pubsub.on_message().next())
            .await
            .expect("a control message within 5 s")
            .unwrap();
        let bytes: Vec<u8> = message.get_payload().unwrap();
        let control = confab_protocol::bus::Control::decode(bytes.as_slice()).expect("a protobuf Control");
        (serde_json::to_value(&control).unwrap(), control.request_id)
    }
}

/// A response reduced to what tests look at.
pub struct Reply {
    pub status: StatusCode,
    pub headers: awc::http::header::HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The testkit's API settings (with two gateways to send joiners to and a recordings directory
/// of the app's own), changed by `customize`, served on a free port.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    let (db, database_url) = fresh_database().await;
    let keys = TestKeys::default();
    let gateways = vec!["ws://gw1.test/v1/signal".into(), "ws://gw2.test/v1/signal".into()];
    let recordings_dir = std::env::temp_dir().join(format!("confab-test-recordings-{}", Uuid::new_v4().simple()));
    let mut settings = api_settings(&database_url, &redis_prefix(), &keys.pem, gateways, &recordings_dir);
    customize(&mut settings);
    let storage = Storage::open(&settings.storage, &settings.recordings_dir).unwrap();
    let address = api(settings.clone()).await;
    let signing_key = SigningKey::from_pkcs8_pem(&keys.pem).expect("the testkit's key is an Ed25519 PEM");
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    TestApp { address, db, signing_key, settings, storage, client }
}

/// An app keeping recordings in the S3-compatible server that `deploy/local/test` starts.
pub async fn spawn_app_on_s3() -> TestApp {
    spawn_app_with(|settings| settings.storage = confab_testkit::s3_settings(&env("S3_BUCKET"))).await
}

/// The test S3 server (`S3_ENDPOINT`, bucket `S3_BUCKET`); moto accepts any credentials.
pub fn unique_email() -> String {
    format!("user-{}@example.org", Uuid::new_v4().simple())
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Sends `body` as raw bytes with a JSON content type.
    pub async fn send_raw(&self, method: &str, path: &str, token: Option<&str>, body: impl Into<Vec<u8>>) -> Reply {
        let mut req = self
            .client
            .request(method.parse().unwrap(), self.url(path))
            .insert_header(("Content-Type", "application/json"));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let mut res = req.send_body(body.into()).await.expect("the request is answered");
        let raw = res.body().limit(1 << 22).await.unwrap().to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Reply { status: res.status(), headers: res.headers().clone(), body, raw }
    }

    pub async fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.send_raw(method, path, token, bytes).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send("GET", path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send("POST", path, token, Some(body)).await
    }

    pub async fn signup(&self, email: &str, password: &str) -> Reply {
        self.post("/v1/auth/signup", None, json!({"email": email, "password": password, "display_name": "Ann"})).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post("/v1/auth/login", None, json!({"email": email, "password": password})).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Reply {
        self.post("/v1/auth/refresh", None, json!({"refresh_token": refresh_token})).await
    }

    /// Records a live participant the way a gateway does.
    /// A live media server instance in the registry, as its heartbeat writes it (for 5 s).
    pub async fn register_sfu(&self, instance: &str, subscribers: u64) {
        let mut redis = redis::Client::open(self.settings.redis_url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let entry = confab_common::sfu_registry::Registration {
            instance_id: instance.to_owned(),
            media_addresses: vec!["192.0.2.1:7882".into(), "192.0.2.1:7883".into()],
            capacity: 250,
            load: confab_common::sfu_registry::Load { subscribers, rooms: 1, ..Default::default() },
            draining: false,
        };
        confab_common::sfu_registry::heartbeat(&mut redis, &self.settings.redis_prefix, &entry).await.unwrap();
    }

    pub async fn put_presence(&self, room: Uuid, peer_id: &str, user: Uuid) {
        let mut redis = redis::Client::open(self.settings.redis_url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let presence = json!({
            "peer_id": peer_id, "user_id": user, "display_name": "Tess", "role": "member",
            "instance_id": "gw-test", "joined_at": chrono::Utc::now(),
        });
        let key = confab_domain::keys::room_peers(&self.settings.redis_prefix, room);
        let _: () = redis::AsyncCommands::hset(&mut redis, key, peer_id, presence.to_string()).await.unwrap();
    }

    /// The fields of every job in the recording job stream, oldest first.
    pub async fn recording_jobs(&self) -> Vec<std::collections::HashMap<String, String>> {
        let mut redis = redis::Client::open(self.settings.redis_url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let key = confab_domain::keys::recording_jobs(&self.settings.redis_prefix);
        let entries: Vec<(String, Vec<(String, String)>)> =
            redis::cmd("XRANGE").arg(key).arg("-").arg("+").query_async(&mut redis).await.unwrap();
        entries.into_iter().map(|(_, fields)| fields.into_iter().collect()).collect()
    }

    /// Listens on the control channel the gateways subscribe to.
    pub async fn control_listener(&self) -> ControlListener {
        let client = redis::Client::open(self.settings.redis_url.as_str()).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.subscribe(confab_domain::keys::control_channel(&self.settings.redis_prefix)).await.unwrap();
        ControlListener { pubsub }
    }

    /// Creates a room as `token`'s user; returns its id.
    pub async fn create_room(&self, token: &str, name: &str) -> String {
        let reply = self.post("/v1/rooms", Some(token), json!({"name": name})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// A new access token for an existing user, without a password (a second device).
    pub async fn fresh_token_for(&self, user: Uuid) -> String {
        let email: String =
            sqlx::query_scalar("select email from users where id = $1").bind(user).fetch_one(&self.db).await.unwrap();
        let login = self.login(&email, PASSWORD).await;
        login.body["access_token"].as_str().expect("the caller can log in").to_owned()
    }

    /// A recording of `room` in `status`, as the API and a recorder would have left it.
    pub async fn insert_recording(&self, room: Uuid, status: &str) -> Uuid {
        let id = Uuid::new_v4();
        sqlx::query("insert into recordings (id, room_id, status) values ($1, $2, $3)")
            .bind(id)
            .bind(room)
            .bind(status)
            .execute(&self.db)
            .await
            .unwrap();
        id
    }

    /// A file of `recording` holding `content`, in storage and in the database, as a recorder
    /// keeps it.
    pub async fn insert_recording_file(&self, recording: Uuid, content: &[u8]) -> Uuid {
        self.insert_recorded_file(recording, content, "Ann Lee", "video/webm").await
    }

    /// A file of `recording` as the recorder registers it: a participant's WebM or a camera's
    /// Matroska (`content_type` says which).
    pub async fn insert_recorded_file(
        &self,
        recording: Uuid,
        content: &[u8],
        participant: &str,
        content_type: &str,
    ) -> Uuid {
        let id = Uuid::new_v4();
        let (extension, codecs) =
            if content_type == "video/x-matroska" { ("mkv", "{h264,pcm_mulaw}") } else { ("webm", "{vp8,opus}") };
        let relative = format!("{recording}/{id}.{extension}");
        let path = self.settings.recordings_dir.join(&relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        self.storage.store(&Key::parse(relative.as_str()).unwrap(), &path).await.unwrap();
        sqlx::query(
            "insert into recording_files
               (id, recording_id, peer_id, participant, path, bytes, duration_ms, codecs, content_type)
             values ($1, $2, 'p1', $5, $3, $4, 6000, $6::text[], $7)",
        )
        .bind(id)
        .bind(recording)
        .bind(&relative)
        .bind(content.len() as i64)
        .bind(participant)
        .bind(codecs)
        .bind(content_type)
        .execute(&self.db)
        .await
        .unwrap();
        id
    }

    /// Whether storage holds `file` of `recording`.
    pub async fn stored(&self, recording: Uuid, file: Uuid) -> bool {
        let key = Key::parse(format!("{recording}/{file}.webm")).unwrap();
        match &self.storage {
            Storage::Local(dir) => key.in_dir(dir).exists(),
            Storage::S3(s3) => s3.head(&key).await.unwrap().is_some(),
        }
    }

    /// A fresh administrator: (user id, access token).
    pub async fn admin_token(&self) -> (String, String) {
        let (email, login) = self.logged_in_user().await;
        sqlx::query("update users set role = 'admin' where email = $1").bind(&email).execute(&self.db).await.unwrap();
        (login["user"]["id"].as_str().unwrap().to_owned(), login["access_token"].as_str().unwrap().to_owned())
    }

    /// Every route of the OpenAPI document the app serves, as (method in lower case, path
    /// template), so tests that walk all routes also walk the ones added later.
    pub async fn documented_routes(&self) -> Vec<(String, String)> {
        let doc = self.get("/openapi.json", None).await.body;
        doc["paths"]
            .as_object()
            .expect("the document has paths")
            .iter()
            .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (m.clone(), path.clone())))
            .collect()
    }

    /// Signs up a fresh user and logs in: (email, login reply body).
    pub async fn logged_in_user(&self) -> (String, Value) {
        let email = unique_email();
        assert_eq!(self.signup(&email, PASSWORD).await.status, StatusCode::CREATED);
        let login = self.login(&email, PASSWORD).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        (email, login.body)
    }
}

/// A TCP proxy to `upstream` that the test can cut: open connections drop and new ones are
/// refused, as if the server behind it went down. Returns its port and the cut switch.
pub async fn cuttable_proxy(upstream: &str) -> (u16, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (cut, cut_seen) = tokio::sync::watch::channel(false);
    let upstream = upstream.to_owned();
    tokio::spawn(async move {
        let mut cut_for_listener = cut_seen.clone();
        loop {
            let mut client = tokio::select! {
                accepted = listener.accept() => match accepted { Ok((client, _)) => client, Err(_) => return },
                _ = cut_for_listener.wait_for(|cut| *cut) => return,
            };
            let mut cut_for_connection = cut_seen.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = cut_for_connection.wait_for(|cut| *cut) => {}
                }
            });
        }
    });
    (port, cut)
}
