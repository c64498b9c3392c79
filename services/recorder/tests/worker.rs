//! The recorder's job worker against real Postgres, Redis and in-process gateways: it takes a
//! queued recording, joins the call as the hidden recorder (participants are told), leaves when
//! the API stops the recording, records the outcome, takes over the job of a dead recorder (and
//! rebuilds the files a `kill -9`ed recorder process left, which a room member then downloads
//! through the API), and rejoins when its gateway goes. A camera (room role `camera`, as the
//! ingest joins) is told about the recording like everyone, offers H.264 and PCMU, and is
//! recorded into Matroska; a camera file a dead recorder left is rebuilt like a participant's.

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use confab_common::tokens::SigningKeys;
use confab_recorder::Settings;
use confab_recorder::worker::Worker;
use confab_tickets::{TICKET_AUDIENCE, TicketClaims};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use futures_util::StreamExt;
use rtc::media::Sample;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters};
use serde_json::Value;
use sha2::Digest;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use std::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;
use webrtc::peer_connection::{MediaEngine, RTCSessionDescription};

mod support;

use support::*;

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} must be set: run the tests with deploy/local/test"))
}

/// Postgres with the schema, Redis under a fresh prefix, a gateway trusting `key`, and a room.
struct World {
    db: PgPool,
    database_url: String,
    prefix: String,
    key_pem: String,
    keys: SigningKeys,
    jwks_url: String,
    gateway: String,
    room: Uuid,
}

async fn world() -> World {
    let base = env("DATABASE_URL");
    let server = base.rsplit_once('/').unwrap().0.to_owned();
    let name = format!("confab_test_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await.unwrap();
    admin.execute(sqlx::AssertSqlSafe(format!(r#"create database "{name}""#))).await.unwrap();
    let database_url = format!("{server}/{name}");
    let db = PgPool::connect(&database_url).await.unwrap();
    confab_api::MIGRATOR.run(&db).await.unwrap();

    let signing = SigningKey::from_bytes(&[7; 32]);
    let key_pem = signing.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let keys = SigningKeys::from_pem(&key_pem).unwrap();
    let prefix = format!("confab-test:{}", Uuid::new_v4().simple());
    let jwks_url = jwks_server(&keys);
    let (gateway_url, _) = gateway(&prefix, &jwks_url, "gw-test");
    let (owner, room) = (Uuid::new_v4(), Uuid::new_v4());
    db.execute(sqlx::AssertSqlSafe(format!(
        "insert into users (id, email, display_name, password_hash) values ('{owner}', '{owner}@example.org', 'Ann', 'x');
         insert into rooms (id, name, owner_id, max_participants) values ('{room}', 'Recorded', '{owner}', 4);"
    )))
    .await
    .unwrap();
    World { db, database_url, prefix, key_pem, keys, jwks_url, gateway: gateway_url, room }
}

/// A gateway of the world's Redis prefix: its URL and what stops it (as SIGTERM would).
fn gateway(
    prefix: &str,
    jwks_url: &str,
    instance_id: &str,
) -> (String, std::sync::Arc<tokio::sync::watch::Sender<bool>>) {
    let gateway = confab_gateway::Application::build(confab_gateway::Settings {
        bind: "127.0.0.1:0".into(),
        redis_url: env("REDIS_URL"),
        redis_prefix: prefix.to_owned(),
        jwks_url: jwks_url.to_owned(),
        jwt_issuer: "confab".into(),
        allowed_origins: vec![],
        instance_id: instance_id.into(),
        ice: Default::default(),
        limits: Default::default(),
    })
    .unwrap();
    let url = format!("ws://127.0.0.1:{}/v1/signal", gateway.port());
    let stopper = gateway.stopper();
    actix_web::rt::spawn(gateway.run_until_stopped());
    (url, stopper)
}

fn jwks_server(keys: &SigningKeys) -> String {
    let jwks = keys.jwks();
    let server = HttpServer::new(move || {
        let jwks = jwks.clone();
        App::new().route("/jwks", web::get().to(move || std::future::ready(HttpResponse::Ok().json(jwks.clone()))))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let url = format!("http://127.0.0.1:{}/jwks", server.addrs()[0].port());
    actix_web::rt::spawn(server.run());
    url
}

impl World {
    fn worker(&self, instance_id: &str) -> Worker {
        self.worker_via(instance_id, &self.gateway)
    }

    fn worker_via(&self, instance_id: &str, gateway: &str) -> Worker {
        Worker::build(Settings {
            bind: "127.0.0.1:0".into(),
            redis_url: env("REDIS_URL"),
            redis_prefix: self.prefix.clone(),
            database_url: self.database_url.clone(),
            instance_id: instance_id.into(),
            gateway_urls: vec![gateway.to_owned()],
            jwt_keys_pem: self.key_pem.clone(),
            jwt_issuer: "confab".into(),
            recordings_dir: std::env::temp_dir(),
            storage: Default::default(),
            reclaim_after: Duration::from_secs(1),
            min_free_bytes: 1 << 30,
        })
        .unwrap()
    }

    /// Starts a worker; it stops when the returned sender is dropped.
    fn start_worker(&self, instance_id: &str) -> tokio::sync::watch::Sender<bool> {
        start(self.worker(instance_id))
    }

    async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(env("REDIS_URL")).unwrap().get_multiplexed_async_connection().await.unwrap()
    }

    /// A recording row in `status` and its job, as the API queues it.
    async fn queue_recording(&self, status: &str) -> Uuid {
        self.queue_recording_by(status, None).await
    }

    /// A recording row in `status` and its job, queued by the request `request_id` if any.
    async fn queue_recording_by(&self, status: &str, request_id: Option<&str>) -> Uuid {
        self.queue_recording_in(self.room, status, request_id).await
    }

    /// A recording of `room` in `status` and its job, queued by the request `request_id` if any.
    async fn queue_recording_in(&self, room: Uuid, status: &str, request_id: Option<&str>) -> Uuid {
        let id = Uuid::new_v4();
        sqlx::query("insert into recordings (id, room_id, status) values ($1, $2, $3)")
            .bind(id)
            .bind(room)
            .bind(status)
            .execute(&self.db)
            .await
            .unwrap();
        let add = confab_common::recording_jobs::add(&self.prefix, &id.to_string(), &room.to_string(), request_id);
        let _: String = add.query_async(&mut self.redis().await).await.unwrap();
        id
    }

    /// A queued recording whose recorder took the job, started recording, and died without a
    /// word.
    async fn recording_of_a_dead_recorder(&self) -> Uuid {
        let recording = self.queue_recording("pending").await;
        let dead = self.worker("rec-dead");
        dead.queue.ensure_group().await.unwrap();
        let taken = dead.queue.next(Duration::from_millis(100)).await.unwrap().expect("the job");
        assert_eq!(taken.recording_id, recording.to_string());
        sqlx::query("update recordings set status = 'recording', recorder_id = 'rec-dead' where id = $1")
            .bind(recording)
            .execute(&self.db)
            .await
            .unwrap();
        recording
    }

    /// A second room, of another owner.
    async fn another_room(&self) -> Uuid {
        let (owner, room) = (Uuid::new_v4(), Uuid::new_v4());
        self.db
            .execute(sqlx::AssertSqlSafe(format!(
                "insert into users (id, email, display_name, password_hash) values ('{owner}', '{owner}@example.org', 'Cy', 'x');
                 insert into rooms (id, name, owner_id, max_participants) values ('{room}', 'Also recorded', '{owner}', 4);"
            )))
            .await
            .unwrap();
        room
    }

    /// What `POST /v1/recordings/{id}/stop` does to the row.
    async fn stop_recording(&self, recording: Uuid) {
        sqlx::query("update recordings set status = 'finalizing' where id = $1")
            .bind(recording)
            .execute(&self.db)
            .await
            .unwrap();
    }

    async fn status(&self, recording: Uuid) -> (String, Option<String>, Option<String>) {
        sqlx::query_as("select status, reason, recorder_id from recordings where id = $1")
            .bind(recording)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Waits until the recording's status is `wanted`.
    async fn wait_for_status(&self, recording: Uuid, wanted: &str) -> (String, Option<String>, Option<String>) {
        for _ in 0..100 {
            let status = self.status(recording).await;
            if status.0 == wanted {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("recording never became {wanted}: {:?}", self.status(recording).await)
    }

    /// The recording's file rows (participant, path, duration in ms), oldest first, once there
    /// are `count` of them.
    async fn wait_for_files(&self, recording: Uuid, count: usize) -> Vec<(String, String, Option<i64>)> {
        for _ in 0..100 {
            let files: Vec<(String, String, Option<i64>)> = sqlx::query_as(
                "select participant, path, duration_ms from recording_files where recording_id = $1 order by created_at",
            )
            .bind(recording)
            .fetch_all(&self.db)
            .await
            .unwrap();
            if files.len() >= count {
                return files;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the recording never had {count} files")
    }

    /// A participant in the room: its socket, after the welcome.
    async fn participant(&self) -> Participant {
        self.participant_named("Ann").await
    }

    /// A participant in the room called `display_name`: its socket, after the welcome.
    async fn participant_named(&self, display_name: &str) -> Participant {
        self.participant_in(self.room, display_name).await
    }

    /// A participant in `room` called `display_name`: its socket, after the welcome.
    async fn participant_in(&self, room: Uuid, display_name: &str) -> Participant {
        self.peer_in(room, display_name, "member", &Uuid::new_v4().to_string()).await.0
    }

    /// A peer with room role `role` in the room: its socket and its welcome.
    async fn peer(&self, display_name: &str, role: &str, user_id: &str) -> (Participant, Value) {
        self.peer_in(self.room, display_name, role, user_id).await
    }

    /// A peer with room role `role` in `room`: its socket and its welcome.
    async fn peer_in(&self, room: Uuid, display_name: &str, role: &str, user_id: &str) -> (Participant, Value) {
        let now = chrono::Utc::now().timestamp();
        let ticket = self
            .keys
            .sign(&TicketClaims {
                iss: "confab".into(),
                aud: TICKET_AUDIENCE.into(),
                sub: user_id.to_owned(),
                exp: now + 60,
                iat: now,
                jti: Uuid::new_v4().simple().to_string(),
                room_id: room.to_string(),
                display_name: display_name.into(),
                room_role: role.into(),
                max_participants: 4,
                recording_id: None,
            })
            .unwrap();
        let mut request = self.gateway.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", format!("confab.v1, confab.ticket.{ticket}").parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut participant = Participant { socket };
        let welcome = participant.recv().await;
        assert!(welcome.get("welcome").is_some());
        (participant, welcome)
    }
}

/// The API on the world's database, Redis prefix and key, reading recordings from `recordings_dir`:
/// its base URL.
async fn api(world: &World, recordings_dir: &std::path::Path) -> String {
    let api = confab_api::startup::Application::build(confab_api::settings::Settings {
        bind: "127.0.0.1:0".into(),
        public_url: "http://confab.test".into(),
        gateway_urls: vec![world.gateway.clone()],
        database_url: world.database_url.clone(),
        db_max_connections: 5,
        redis_url: env("REDIS_URL"),
        redis_prefix: world.prefix.clone(),
        jwt_keys_pem: world.key_pem.clone(),
        jwt_issuer: "confab".into(),
        access_token_ttl: Duration::from_secs(900),
        refresh_token_ttl: Duration::from_secs(86_400),
        refresh_reuse_grace: Duration::ZERO,
        recordings_dir: recordings_dir.to_owned(),
        web_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../../web").into(),
        storage: Default::default(),
        hash_workers: 1,
        hash_queue: 16,
        limits: Default::default(),
        webhooks: Default::default(),
        cameras: Default::default(),
    })
    .await
    .unwrap();
    let url = format!("http://127.0.0.1:{}", api.port());
    actix_web::rt::spawn(api.run_until_stopped());
    url
}

/// Signs up a user through the API, makes them a plain member of the world's room, logs them in:
/// their access token.
async fn member_token(world: &World, api: &str) -> String {
    let client = awc::Client::default();
    let email = format!("member-{}@example.org", Uuid::new_v4().simple());
    let password = "correct horse battery staple";
    let signup = serde_json::json!({"email": email, "password": password, "display_name": "Bo"});
    let reply = client.post(format!("{api}/v1/auth/signup")).send_json(&signup).await.unwrap();
    assert_eq!(reply.status(), awc::http::StatusCode::CREATED);
    sqlx::query(
        "insert into room_members (room_id, user_id, role) select $1, id, 'member' from users where email = $2",
    )
    .bind(world.room)
    .bind(&email)
    .execute(&world.db)
    .await
    .unwrap();
    let login = serde_json::json!({"email": email, "password": password});
    let mut reply = client.post(format!("{api}/v1/auth/login")).send_json(&login).await.unwrap();
    assert_eq!(reply.status(), awc::http::StatusCode::OK);
    let body: Value = reply.json().await.unwrap();
    body["access_token"].as_str().expect("an access token").to_owned()
}

/// `ffmpeg -v error` decoding the whole file: what it reports (nothing for a clean file).
fn ffmpeg_decode_errors(path: &std::path::Path) -> String {
    let output = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i", path.to_str().unwrap(), "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs (deploy/local/lib.sh's ensure_packages installs it)");
    assert!(output.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// What this test process logs, as the JSON lines a recorder writes with `CONFAB_LOG_FORMAT=json`.
fn captured_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    type Logs = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let sink = logs.clone();
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter("confab_recorder=info")
            .with_writer(move || LogWriter(sink.clone()))
            .init();
        logs
    })
    .clone()
}

struct LogWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The logged line `message` about `recording`, waiting up to 5 s for it.
async fn logged(logs: &std::sync::Mutex<Vec<u8>>, message: &str, recording: &str) -> Value {
    for _ in 0..250 {
        let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        let mut lines = text.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok());
        if let Some(line) = lines.find(|line| line["message"] == message && line["recording.id"] == recording) {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no log line {message:?} about {recording}");
}

fn start(worker: Worker) -> tokio::sync::watch::Sender<bool> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    actix_web::rt::spawn(std::sync::Arc::new(worker).run(stopped));
    stop
}

struct Participant {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Participant {
    async fn send(&mut self, message: Value) {
        use futures_util::SinkExt;
        self.socket.send(Message::text(message.to_string())).await.unwrap();
    }

    /// Opens the send-only connection to `recorder`, signaled through the gateway like a
    /// browser's, and waits until it is connected.
    async fn offer_media(&mut self, recorder: &str) -> Media {
        let mut media_engine = MediaEngine::default();
        media_engine.register_default_codecs().unwrap();
        let mut sender = sender_peer(media_engine).await;
        let video = sample_track(RtpCodecKind::Video, VIDEO_SSRC, codec("video/VP8", 90_000, 0));
        let audio = sample_track(RtpCodecKind::Audio, AUDIO_SSRC, codec("audio/opus", 48_000, 2));
        let video_transceiver = add_send_only(&sender.connection, std::sync::Arc::clone(&video)).await;
        let audio_transceiver = add_send_only(&sender.connection, std::sync::Arc::clone(&audio)).await;
        self.connect(&mut sender, recorder).await;
        let (video_pt, audio_pt) = (payload_type(&video_transceiver).await, payload_type(&audio_transceiver).await);
        Media { sender, video: (video, video_pt), audio: (audio, audio_pt) }
    }

    /// What the ingest's camera peer offers: send-only H.264 (packetization-mode 1, the clip's
    /// profile) and PCMU; connected, ready to send.
    async fn offer_camera(&mut self, recorder: &str, profile_level_id: &str) -> Media {
        let h264 = RTCRtpCodec {
            sdp_fmtp_line: format!(
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile_level_id}"
            ),
            ..codec("video/H264", 90_000, 0)
        };
        let pcmu = codec("audio/PCMU", 8_000, 0);
        let mut media_engine = MediaEngine::default();
        for (codec, payload_type, kind) in [(&h264, 102, RtpCodecKind::Video), (&pcmu, 0, RtpCodecKind::Audio)] {
            let parameters = RTCRtpCodecParameters { rtp_codec: codec.clone(), payload_type };
            media_engine.register_codec(parameters, kind).unwrap();
        }
        let mut sender = sender_peer(media_engine).await;
        let video = sample_track(RtpCodecKind::Video, VIDEO_SSRC, h264);
        let audio = sample_track(RtpCodecKind::Audio, AUDIO_SSRC, pcmu);
        let video_transceiver = add_send_only(&sender.connection, std::sync::Arc::clone(&video)).await;
        let audio_transceiver = add_send_only(&sender.connection, std::sync::Arc::clone(&audio)).await;
        self.connect(&mut sender, recorder).await;
        let (video_pt, audio_pt) = (payload_type(&video_transceiver).await, payload_type(&audio_transceiver).await);
        Media { sender, video: (video, video_pt), audio: (audio, audio_pt) }
    }

    /// Offers `sender`'s tracks to `recorder` through the gateway and trickles candidates until
    /// the connection is up.
    async fn connect(&mut self, sender: &mut SenderPeer, recorder: &str) {
        let offer = sender.connection.create_offer(None).await.unwrap();
        sender.connection.set_local_description(offer.clone()).await.unwrap();
        self.send(serde_json::json!({"signal": {"to": recorder, "sdp": {"type": "offer", "sdp": offer.sdp}}})).await;
        loop {
            tokio::select! {
                Some(init) = sender.candidates.recv() => {
                    let candidate = candidate_json(&init);
                    self.send(serde_json::json!({"signal": {"to": recorder, "candidate": candidate}})).await;
                }
                message = self.recv() => {
                    let signal = &message["signal"];
                    if signal["sdp"]["type"] == "answer" {
                        let answer = RTCSessionDescription::answer(signal["sdp"]["sdp"].as_str().unwrap().to_owned()).unwrap();
                        sender.connection.set_remote_description(answer).await.unwrap();
                    } else if let Some(candidate) = signal.get("candidate") {
                        sender.connection.add_ice_candidate(candidate_init(candidate)).await.unwrap();
                    }
                }
                _ = sender.connected.wait_for(|connected| *connected) => break,
            }
        }
    }

    /// The next message that has `key`, skipping others.
    async fn recv_with(&mut self, key: &str) -> Value {
        loop {
            let message = self.recv().await;
            if message.get(key).is_some() {
                return message;
            }
        }
    }

    /// The peer id of the next recorder other than `not` to announce `recording_started`, waiting
    /// up to `limit` (the gateway sends nothing meanwhile).
    async fn recorder_started_within(&mut self, limit: Duration, not: &str) -> Option<String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next()).await.ok()?;
            let Message::Text(text) = frame.expect("the socket stays open").unwrap() else { continue };
            let message: Value = serde_json::from_str(&text).unwrap();
            match message["recording_started"]["recorder_peer_id"].as_str() {
                Some(recorder) if recorder != not => return Some(recorder.to_owned()),
                _ => {}
            }
        }
    }

    async fn recv(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.socket.next()).await;
            match frame.expect("a message within 10 s").expect("the socket stays open").unwrap() {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                _ => continue,
            }
        }
    }
}

/// A participant's connection to the recorder, ready to send.
struct Media {
    sender: SenderPeer,
    video: (std::sync::Arc<webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample>, u8),
    audio: (std::sync::Arc<webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample>, u8),
}

impl Media {
    /// Sends 3 s of VP8 and Opus, then closes the connection.
    async fn send(self) {
        tokio::join!(send_video(self.video.0, self.video.1), send_audio(self.audio.0, self.audio.1));
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.sender.connection.close().await.unwrap();
    }

    /// Sends a camera's access units at `fps` and its PCMU in 20 ms packets, in real time, then
    /// closes the connection.
    async fn send_camera(self, access_units: &[Vec<u8>], fps: u64, pcmu: &[u8]) {
        let (video, video_pt) = self.video;
        let (audio, audio_pt) = self.audio;
        let video_frame = Duration::from_nanos(1_000_000_000 / fps);
        let send_video = async {
            let mut ticker = tokio::time::interval(video_frame);
            for unit in access_units {
                ticker.tick().await;
                let sample = Sample { data: unit.clone().into(), duration: video_frame, ..Sample::new(Instant::now()) };
                video.sample_writer(VIDEO_SSRC, video_pt).write_sample(&sample).await.unwrap();
            }
        };
        let send_audio = async {
            let mut ticker = tokio::time::interval(Duration::from_millis(20));
            for samples in pcmu.chunks(camera::AUDIO_PACKET) {
                ticker.tick().await;
                let sample = Sample {
                    data: samples.to_vec().into(),
                    duration: Duration::from_millis(20),
                    ..Sample::new(Instant::now())
                };
                audio.sample_writer(AUDIO_SSRC, audio_pt).write_sample(&sample).await.unwrap();
            }
        };
        tokio::join!(send_video, send_audio);
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.sender.connection.close().await.unwrap();
    }
}

/// Video frames in the WebM file at `path`, and whether it has Cues.
fn video_frames_in(path: &std::path::Path) -> (usize, bool) {
    let bytes = std::fs::read(path).unwrap();
    let has_cues = bytes.windows(4).any(|w| w == [0x1c, 0x53, 0xbb, 0x6b]);
    let mut mkv = matroska_demuxer::MatroskaFile::open(std::io::Cursor::new(bytes)).unwrap();
    let mut frame = matroska_demuxer::Frame::default();
    let mut count = 0;
    while let Ok(true) = mkv.next_frame(&mut frame) {
        count += usize::from(frame.track == 1);
    }
    (count, has_cues)
}

#[actix_web::test]
async fn a_queued_recording_is_joined_announced_stopped_and_finished() {
    let logs = captured_logs();
    let world = world().await;
    let mut ann = world.participant().await;
    // An idle recorder waits on the queue longer than one blocking read lasts.
    let _worker = world.start_worker("rec-a");
    tokio::time::sleep(confab_recorder::jobs::LONGEST_WAIT + Duration::from_millis(500)).await;
    // Meanwhile it keeps its heartbeat key, by which the API counts the recorders alive.
    let alive: i64 = redis::cmd("PTTL")
        .arg(confab_domain::keys::recorder_alive(&world.prefix, "rec-a"))
        .query_async(&mut world.redis().await)
        .await
        .unwrap();
    assert!((1..=10_000).contains(&alive), "heartbeat key TTL {alive} ms");
    let request_id = Uuid::new_v4().simple().to_string();
    let recording = world.queue_recording_by("pending", Some(&request_id)).await;

    let started = ann.recv().await;
    assert_eq!(started["recording_started"]["recording_id"], recording.to_string(), "{started}");
    // Its log lines about the recording name the API request that started it.
    let claimed = logged(&logs, "recording claimed", &recording.to_string()).await;
    assert_eq!(claimed["span"]["request.id"], request_id, "{claimed}");
    let (_, _, recorder) = world.wait_for_status(recording, "recording").await;
    assert_eq!(recorder.as_deref(), Some("rec-a"));
    let started_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select started_at from recordings where id = $1")
            .bind(recording)
            .fetch_one(&world.db)
            .await
            .unwrap();
    assert!(started_at.is_some());

    world.stop_recording(recording).await;
    let stopped = ann.recv().await;
    assert_eq!(stopped["recording_stopped"]["recording_id"], recording.to_string());
    let (_, reason, recorder) = world.wait_for_status(recording, "failed").await;
    assert_eq!(reason.as_deref(), Some("no media was received"), "nobody sent media in this test");
    assert_eq!(recorder, None);
    let pending: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(confab_domain::keys::recording_jobs(&world.prefix))
        .arg("recorders")
        .arg("-")
        .arg("+")
        .arg(10)
        .query_async(&mut world.redis().await)
        .await
        .unwrap();
    assert!(pending.is_empty(), "the job is acknowledged");
}

#[actix_web::test]
async fn a_recording_stopped_before_any_recorder_took_it_is_left_alone() {
    let world = world().await;
    let recording = world.queue_recording("failed").await;
    let _worker = world.start_worker("rec-a");
    let stream = confab_domain::keys::recording_jobs(&world.prefix);
    for _ in 0..50 {
        let left: i64 = redis::cmd("XLEN").arg(&stream).query_async(&mut world.redis().await).await.unwrap();
        if left == 0 {
            assert_eq!(world.status(recording).await.0, "failed");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the job was never acknowledged");
}

#[actix_web::test]
async fn the_job_of_a_dead_recorder_is_taken_over() {
    let world = world().await;
    let mut ann = world.participant().await;
    let recording = world.recording_of_a_dead_recorder().await;

    let _survivor = world.start_worker("rec-b");
    assert_eq!(ann.recv().await["recording_started"]["recording_id"], recording.to_string());
    let (_, _, recorder) = world.wait_for_status(recording, "recording").await;
    assert_eq!(recorder.as_deref(), Some("rec-b"));
}

#[actix_web::test]
async fn a_recording_whose_call_cannot_be_joined_fails_with_a_reason_that_names_no_address() {
    let world = world().await;
    let recording = world.queue_recording("pending").await;
    let _worker = start(world.worker_via("rec-a", "ws://127.0.0.1:1/v1/signal"));
    let (_, reason, recorder) = world.wait_for_status(recording, "failed").await;
    assert_eq!(reason.as_deref(), Some("could not join the call"));
    assert_eq!(recorder, None);
}

#[actix_web::test]
async fn a_participant_offering_its_media_through_the_gateway_is_recorded_into_a_file() {
    let world = world().await;
    let mut ann = world.participant().await;
    let recording = world.queue_recording("pending").await;
    let _worker = world.start_worker("rec-a");
    let started = ann.recv().await;
    let recorder = started["recording_started"]["recorder_peer_id"].as_str().expect("a recorder").to_owned();

    ann.offer_media(&recorder).await.send().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    world.stop_recording(recording).await;
    let (_, reason, _) = world.wait_for_status(recording, "ready").await;
    assert_eq!(reason, None);
    let (path, bytes, codecs): (String, i64, Vec<String>) =
        sqlx::query_as("select path, bytes, codecs from recording_files where recording_id = $1")
            .bind(recording)
            .fetch_one(&world.db)
            .await
            .unwrap();
    assert_eq!(codecs, ["vp8", "opus"]);
    let file = std::env::temp_dir().join(&path);
    assert_eq!(std::fs::metadata(&file).unwrap().len() as i64, bytes);
    let (video_frames, has_cues) = video_frames_in(&file);
    assert!(video_frames * 10 >= VIDEO_FRAMES * 9, "video frames written: {video_frames} of {VIDEO_FRAMES}");
    assert!(has_cues);
    let (packets, lost): (i64, i64) = sqlx::query_as("select packets, packets_lost from recordings where id = $1")
        .bind(recording)
        .fetch_one(&world.db)
        .await
        .unwrap();
    assert!(packets >= (VIDEO_FRAMES + AUDIO_FRAMES) as i64, "{packets} packets counted");
    assert_eq!(lost, 0);
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(recording.to_string()));
}

/// When the first frame of the WebM file at `path` plays, in seconds from the file's start.
fn first_frame_secs(path: &std::path::Path) -> f64 {
    let mut mkv = matroska_demuxer::MatroskaFile::open(std::fs::File::open(path).unwrap()).unwrap();
    let scale_ns = mkv.info().timestamp_scale().get();
    let mut frame = matroska_demuxer::Frame::default();
    assert!(mkv.next_frame(&mut frame).unwrap(), "{} has frames", path.display());
    (frame.timestamp * scale_ns) as f64 / 1e9
}

/// Issue 5: late joiners are recorded from when they join; leavers' files are finished when they
/// leave. Ann sends 3 s and leaves the call: her file is finished and registered at once, while the
/// recording goes on. Bo joins only then and sends 6 s: his file starts at his own first frame,
/// not at the recording's start 3 s earlier, and lasts about twice as long as hers. The recording
/// ends `ready` with both files.
#[actix_web::test]
async fn a_leaver_s_file_is_finished_when_they_leave_and_a_late_joiner_is_recorded_from_when_they_join() {
    let world = world().await;
    let mut ann = world.participant_named("Ann").await;
    let recording = world.queue_recording("pending").await;
    let _worker = world.start_worker("rec-a");
    let recorder =
        ann.recv_with("recording_started").await["recording_started"]["recorder_peer_id"].as_str().unwrap().to_owned();
    let media = ann.offer_media(&recorder).await;
    tokio::join!(send_video(media.video.0.clone(), media.video.1), send_audio(media.audio.0.clone(), media.audio.1));
    ann.send(serde_json::json!({"bye": {}})).await;
    let files = world.wait_for_files(recording, 1).await;
    assert_eq!(world.status(recording).await.0, "recording", "Ann's file was kept before the stop");
    let (ann_frames, ann_finished) = video_frames_in(&std::env::temp_dir().join(&files[0].1));
    assert!(ann_finished, "Ann's file has its Cues: finished, not cut off");
    media.sender.connection.close().await.unwrap();

    let mut bo = world.participant_named("Bo").await;
    let started = bo.recv_with("recording_started").await;
    assert_eq!(started["recording_started"]["recording_id"], recording.to_string());
    let media = bo.offer_media(started["recording_started"]["recorder_peer_id"].as_str().unwrap()).await;
    for _ in 0..2 {
        let (video, audio) = (media.video.clone(), media.audio.clone());
        tokio::join!(send_video(video.0, video.1), send_audio(audio.0, audio.1));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    world.stop_recording(recording).await;
    let (_, reason, _) = world.wait_for_status(recording, "ready").await;
    assert_eq!(reason, None);
    media.sender.connection.close().await.unwrap();

    let files = world.wait_for_files(recording, 2).await;
    let names: Vec<&str> = files.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, ["Ann", "Bo"], "one file each, Ann's first");
    let (ann_ms, bo_ms) = (files[0].2.expect("Ann's duration") as f64, files[1].2.expect("Bo's duration") as f64);
    let ratio = bo_ms / ann_ms;
    assert!((1.5..=2.5).contains(&ratio), "Bo sent twice as long as Ann: {bo_ms} ms and {ann_ms} ms");
    let bo_file = std::env::temp_dir().join(&files[1].1);
    let bo_starts_ms = first_frame_secs(&bo_file) * 1e3;
    assert!(bo_starts_ms < ann_ms / 4.0, "Bo's file starts at his join, not {bo_starts_ms} ms in");
    let (bo_frames, bo_finished) = video_frames_in(&bo_file);
    println!("Ann: {ann_ms} ms, {ann_frames} frames; Bo: {bo_ms} ms from {bo_starts_ms} ms, {bo_frames} frames");
    assert!(bo_finished);
    assert!(ann_frames * 10 >= VIDEO_FRAMES * 9, "Ann's video frames: {ann_frames} of {VIDEO_FRAMES}");
    assert!(bo_frames * 10 >= 2 * VIDEO_FRAMES * 9, "Bo's video frames: {bo_frames} of {}", 2 * VIDEO_FRAMES);
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(recording.to_string()));
}

#[actix_web::test]
async fn a_recording_taken_over_after_its_recorder_died_ends_partial_with_the_gap_named() {
    let world = world().await;
    let mut ann = world.participant().await;
    let recording = world.recording_of_a_dead_recorder().await;
    let _survivor = world.start_worker("rec-b");
    let recorder =
        ann.recv_with("recording_started").await["recording_started"]["recorder_peer_id"].as_str().unwrap().to_owned();
    ann.offer_media(&recorder).await.send().await;
    world.stop_recording(recording).await;
    let (_, reason, _) = world.wait_for_status(recording, "partial").await;
    assert!(reason.unwrap().contains("media is missing"), "the gap is named");
    assert_eq!(
        sqlx::query_scalar::<_, i64>("select count(*) from recording_files where recording_id = $1 and not recovered")
            .bind(recording)
            .fetch_one(&world.db)
            .await
            .unwrap(),
        1
    );
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(recording.to_string()));
}

/// The recorder binary, started like `deploy/local/up` does, recording into `dir`.
fn recorder_process(world: &World, instance_id: &str, dir: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_confab-recorder"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &world.database_url)
        .env("REDIS_URL", env("REDIS_URL"))
        .env("CONFAB_REDIS_PREFIX", &world.prefix)
        .env("CONFAB_JWT_KEY", &world.key_pem)
        .env("CONFAB_GATEWAY_URLS", &world.gateway)
        .env("CONFAB_INSTANCE_ID", instance_id)
        .env("CONFAB_RECORDINGS_DIR", dir)
        .env("CONFAB_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the recorder binary starts")
}

/// SIGTERM: the recorder process leaves the call, finishes its files (Cues and Duration), keeps
/// them, hands the recording over and exits by itself; another recorder continues the recording
/// at once, long before the claim would have gone stale.
#[actix_web::test]
async fn a_recorder_stopped_with_sigterm_keeps_seekable_files_and_hands_the_recording_over() {
    let world = world().await;
    let dir = std::env::temp_dir().join(format!("confab-term-{}", Uuid::new_v4().simple()));
    let mut ann = world.participant().await;
    let recording = world.queue_recording("pending").await;
    let mut process = recorder_process(&world, "rec-stopping", &dir);
    let first =
        ann.recv_with("recording_started").await["recording_started"]["recorder_peer_id"].as_str().unwrap().to_owned();
    let media = ann.offer_media(&first).await;
    tokio::join!(send_video(media.video.0.clone(), media.video.1), send_audio(media.audio.0.clone(), media.audio.1));
    tokio::time::sleep(Duration::from_millis(300)).await; // the last packets arrive

    let pid = process.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut exited = None;
    for _ in 0..250 {
        exited = process.try_wait().unwrap();
        if exited.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(exited.expect("the recorder exits by itself within 25 s").success());
    media.sender.connection.close().await.unwrap();
    assert_eq!(ann.recv_with("recording_stopped").await["recording_stopped"]["recorder_peer_id"], first.as_str());

    let (path, recovered): (String, bool) =
        sqlx::query_as("select path, recovered from recording_files where recording_id = $1")
            .bind(recording)
            .fetch_one(&world.db)
            .await
            .unwrap();
    assert!(!recovered, "kept by the stopping recorder itself");
    let (video_frames, has_cues) = video_frames_in(&dir.join(&path));
    assert!(has_cues, "finished as on a stop: seekable");
    assert!(video_frames * 10 >= VIDEO_FRAMES * 9, "video frames written: {video_frames} of {VIDEO_FRAMES}");
    let (status, _, recorder_id) = world.status(recording).await;
    assert!(status == "starting" || status == "recording", "still running: {status}");
    assert_eq!(recorder_id, None, "handed over");

    // A recorder whose claims go stale only after an hour takes it at once.
    let mut settings = world.worker("rec-next").settings;
    settings.recordings_dir = dir.clone();
    settings.reclaim_after = Duration::from_secs(3600);
    let _next = start(Worker::build(settings).unwrap());
    let again = ann.recv_with("recording_started").await;
    assert_ne!(again["recording_started"]["recorder_peer_id"], first.as_str());
    world.stop_recording(recording).await;
    let (_, reason, _) = world.wait_for_status(recording, "partial").await;
    assert!(reason.unwrap().contains("a recorder stopped"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_web::test]
async fn a_recorder_killed_mid_recording_leaves_a_file_that_a_restarted_one_rebuilds_into_a_partial_recording() {
    let world = world().await;
    let dir = std::env::temp_dir().join(format!("confab-kill-{}", Uuid::new_v4().simple()));
    let mut ann = world.participant().await;
    let recording = world.queue_recording("pending").await;
    let mut process = recorder_process(&world, "rec-killed", &dir);
    let recorder =
        ann.recv_with("recording_started").await["recording_started"]["recorder_peer_id"].as_str().unwrap().to_owned();
    let media = ann.offer_media(&recorder).await;
    // Real VP8 and Opus (the committed clips), so that ffmpeg can judge the rebuilt file.
    play_clips(&media.video.0, media.video.1, &media.audio.0, media.audio.1, Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    process.kill().unwrap(); // SIGKILL
    process.wait().unwrap();
    media.sender.connection.close().await.unwrap();

    // The orphan as the killed process left it: it reads (up to its last flush) but has no Cues.
    let recording_dir = dir.join(recording.to_string());
    let orphan = std::fs::read_dir(&recording_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "webm"))
        .expect("the killed recorder left its file");
    let (frames_left, has_cues) = video_frames_in(&orphan);
    assert!(!has_cues);
    assert!(frames_left >= 30, "at least a second of video survived: {frames_left} frames");

    // The owner stops the recording while no recorder runs; the recorder starts again.
    world.stop_recording(recording).await;
    let mut settings = world.worker("rec-killed").settings;
    settings.recordings_dir = dir.clone();
    let _restarted = start(Worker::build(settings).unwrap());
    let (_, reason, recorder_id) = world.wait_for_status(recording, "partial").await;
    let reason = reason.unwrap_or_default();
    assert!(reason.contains("a recorder stopped"), "{reason}");
    assert_eq!(recorder_id, None);

    let (path, bytes, recovered, codecs, duration_ms): (String, i64, bool, Vec<String>, i64) = sqlx::query_as(
        "select path, bytes, recovered, codecs, duration_ms from recording_files where recording_id = $1",
    )
    .bind(recording)
    .fetch_one(&world.db)
    .await
    .unwrap();
    assert!(recovered);
    assert_eq!(codecs, ["vp8", "opus"]);
    assert!(duration_ms >= 1_000, "{duration_ms} ms");
    let rebuilt = dir.join(&path);
    assert_eq!(rebuilt, orphan, "rebuilt in place");
    assert_eq!(std::fs::metadata(&rebuilt).unwrap().len() as i64, bytes);
    assert_eq!(video_frames_in(&rebuilt), (frames_left, true), "every frame kept, now with Cues");
    let leftovers: Vec<_> = std::fs::read_dir(&recording_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no note or temporary file is left: {leftovers:?}");

    // A room member downloads the partial recording through the API, and it decodes cleanly.
    let api = api(&world, &dir).await;
    let token = member_token(&world, &api).await;
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let mut reply = client.get(format!("{api}/v1/recordings/{recording}")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(reply.status(), awc::http::StatusCode::OK);
    let view: Value = reply.json().await.unwrap();
    assert_eq!(view["status"], "partial", "{view}");
    let file = &view["files"].as_array().expect("files")[..];
    assert_eq!(file.len(), 1, "{view}");
    assert_eq!(file[0]["recovered"], true);
    let path = format!("/v1/recordings/{recording}/files/{}", file[0]["id"].as_str().unwrap());
    let mut reply = client.get(format!("{api}{path}")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(reply.status(), awc::http::StatusCode::OK, "GET {path}");
    assert_eq!(reply.headers().get("content-type").unwrap(), "video/webm");
    let downloaded = reply.body().limit(64 << 20).await.unwrap();
    assert_eq!(downloaded.len() as i64, bytes);
    let sha256: String = sha2::Sha256::digest(&downloaded).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(file[0]["sha256"], sha256, "the download is the rebuilt file");
    let copy = dir.join("downloaded.webm");
    std::fs::write(&copy, &downloaded).unwrap();
    assert_eq!(ffmpeg_decode_errors(&copy), "", "the downloaded partial recording decodes without errors");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 14: a recorder killed with `kill -9` costs the recording only the seconds until its
/// heartbeat key expires (10 s), not the 30 s until its claims go stale. Another recorder, running
/// all along with the production staleness, takes the recording over once the key is gone; the
/// participant offers it the same media and it continues in a new file. The media lost is
/// measured between the last media of the dead recorder's (rebuilt) file and the first of the
/// successor's, both placed on the wall clock of the sender.
#[actix_web::test]
async fn a_recorder_killed_with_sigkill_is_taken_over_within_seconds_of_its_heartbeat_expiring() {
    let world = world().await;
    let dir = TempDir::new("takeover");
    let mut ann = world.participant().await;
    let recording = world.queue_recording("pending").await;
    let mut process = recorder_process(&world, "rec-killed", &dir.0);
    let first =
        ann.recv_with("recording_started").await["recording_started"]["recorder_peer_id"].as_str().unwrap().to_owned();
    let mut settings = world.worker("rec-survivor").settings;
    settings.recordings_dir = dir.0.clone();
    settings.reclaim_after = Duration::from_secs(30);
    let _survivor = start(Worker::build(settings).unwrap());

    let media = ann.offer_media(&first).await;
    let first_sent_at = Instant::now();
    tokio::select! {
        _ = play_clips(&media.video.0, media.video.1, &media.audio.0, media.audio.1, Duration::from_secs(6)) => {
            panic!("the recorder is killed while the media flows")
        }
        () = tokio::time::sleep(Duration::from_secs(4)) => {}
    }
    process.kill().unwrap(); // SIGKILL
    let killed_at = Instant::now();
    process.wait().unwrap();
    media.sender.connection.close().await.unwrap();

    let second = ann.recorder_started_within(Duration::from_secs(60), &first).await.expect("a recorder takes over");
    let media = ann.offer_media(&second).await;
    let sent_again_at = Instant::now();
    let played = play_clips(&media.video.0, media.video.1, &media.audio.0, media.audio.1, Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    media.sender.connection.close().await.unwrap();
    world.stop_recording(recording).await;
    let (_, reason, _) = world.wait_for_status(recording, "partial").await;
    assert!(reason.unwrap_or_default().contains("a recorder stopped"));

    let files: Vec<(bool, i64)> =
        sqlx::query_as("select recovered, duration_ms from recording_files where recording_id = $1 order by recovered")
            .bind(recording)
            .fetch_all(&world.db)
            .await
            .unwrap();
    let [(false, successor_ms), (true, dead_ms)] = files[..] else { panic!("one file of each recorder: {files:?}") };
    let dead_last_media = first_sent_at + Duration::from_millis(dead_ms as u64);
    let successor_first_media = sent_again_at + played.media_time - Duration::from_millis(successor_ms as u64);
    let lost = successor_first_media - dead_last_media;
    let since_kill = successor_first_media - killed_at;
    println!(
        "media lost on recorder death: {:.1} s (kill to the successor's first media: {:.1} s)",
        lost.as_secs_f64(),
        since_kill.as_secs_f64()
    );
    // At worst: the heartbeat's 10 s TTL from a renewal just before the kill, a 0.5 s poll, the
    // rejoin and offer, and the second of media not yet flushed; the 30 s staleness lost 31 s.
    assert!(lost < Duration::from_secs(15), "{:.1} s of media lost", lost.as_secs_f64());
}

#[actix_web::test]
async fn a_recorder_whose_gateway_goes_away_joins_again_through_another_and_loses_no_media() {
    let world = world().await;
    let (doomed, stop_doomed) = gateway(&world.prefix, &world.jwks_url, "gw-doomed");
    let mut ann = world.participant().await;
    let recording = world.queue_recording("pending").await;
    let _worker = start({
        let mut settings = world.worker("rec-a").settings;
        settings.gateway_urls = vec![doomed, world.gateway.clone()];
        Worker::build(settings).unwrap()
    });
    let first =
        ann.recv_with("recording_started").await["recording_started"]["recorder_peer_id"].as_str().unwrap().to_owned();
    let media = ann.offer_media(&first).await;
    let sending = tokio::spawn(media.send());

    let _ = stop_doomed.send(true);
    let stopped = ann.recv_with("recording_stopped").await;
    assert_eq!(stopped["recording_stopped"]["recorder_peer_id"], first.as_str());
    let again = ann.recv_with("recording_started").await;
    let second = again["recording_started"]["recorder_peer_id"].as_str().unwrap();
    assert_ne!(second, first, "the recorder is back under a new peer id");
    assert_eq!(again["recording_started"]["recording_id"], recording.to_string());
    assert_eq!(world.status(recording).await.0, "recording");
    sending.await.unwrap();

    world.stop_recording(recording).await;
    let (_, reason, _) = world.wait_for_status(recording, "ready").await;
    assert_eq!(reason, None);
    let path: String = sqlx::query_scalar("select path from recording_files where recording_id = $1")
        .bind(recording)
        .fetch_one(&world.db)
        .await
        .unwrap();
    let (video_frames, _) = video_frames_in(&std::env::temp_dir().join(path));
    assert!(video_frames * 10 >= VIDEO_FRAMES * 9, "video frames written: {video_frames} of {VIDEO_FRAMES}");
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(recording.to_string()));
}

#[actix_web::test]
async fn a_participant_whose_file_cannot_be_written_fails_the_recording_with_the_reason() {
    let world = world().await;
    let mut ann = world.participant().await;
    let recording = world.queue_recording("pending").await;
    // The recording's directory cannot be created: a file is in its way.
    let blocked = std::env::temp_dir().join(recording.to_string());
    std::fs::write(&blocked, b"in the way").unwrap();
    let _worker = world.start_worker("rec-a");
    let recorder =
        ann.recv_with("recording_started").await["recording_started"]["recorder_peer_id"].as_str().unwrap().to_owned();
    ann.send(serde_json::json!({"signal": {"to": recorder, "sdp": {"type": "offer", "sdp": "v=0\r\n"}}})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    world.stop_recording(recording).await;
    let (_, reason, _) = world.wait_for_status(recording, "failed").await;
    assert_eq!(reason.as_deref(), Some("Ann: cannot create the participant's file"));
    std::fs::remove_file(&blocked).unwrap();
}

/// Issue 5: a write error fails its own recording with the reason, and the other recordings go
/// on. One recorder records two rooms at once; the first recording's directory cannot be created.
/// Bo, in the other room, sends 3 s; then Ann's file fails and her recording ends `failed` with
/// the reason while Bo's is still `recording`; Bo sends 3 s more on the same connection, and his
/// recording ends `ready` with one file holding all 6 s.
#[actix_web::test]
async fn a_recording_whose_file_cannot_be_written_fails_alone_while_another_recording_goes_on() {
    let world = world().await;
    let other_room = world.another_room().await;
    let mut ann = world.participant_named("Ann").await;
    let mut bo = world.participant_in(other_room, "Bo").await;
    let doomed = world.queue_recording("pending").await;
    let blocked = std::env::temp_dir().join(doomed.to_string());
    std::fs::write(&blocked, b"in the way").unwrap();
    let recording = world.queue_recording_in(other_room, "pending", None).await;
    let _worker = world.start_worker("rec-a");

    let started = bo.recv_with("recording_started").await;
    assert_eq!(started["recording_started"]["recording_id"], recording.to_string());
    let media = bo.offer_media(started["recording_started"]["recorder_peer_id"].as_str().unwrap()).await;
    let send_3_s = || {
        let (video, audio) = (media.video.clone(), media.audio.clone());
        async move { tokio::join!(send_video(video.0, video.1), send_audio(audio.0, audio.1)) }
    };
    send_3_s().await;

    let started = ann.recv_with("recording_started").await;
    assert_eq!(started["recording_started"]["recording_id"], doomed.to_string());
    let recorder = started["recording_started"]["recorder_peer_id"].as_str().unwrap().to_owned();
    ann.send(serde_json::json!({"signal": {"to": recorder, "sdp": {"type": "offer", "sdp": "v=0\r\n"}}})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    world.stop_recording(doomed).await;
    let (_, reason, _) = world.wait_for_status(doomed, "failed").await;
    assert_eq!(reason.as_deref(), Some("Ann: cannot create the participant's file"));
    assert_eq!(world.status(recording).await.0, "recording", "the other recording goes on");

    send_3_s().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    world.stop_recording(recording).await;
    let (_, reason, _) = world.wait_for_status(recording, "ready").await;
    assert_eq!(reason, None);
    media.sender.connection.close().await.unwrap();
    let files = world.wait_for_files(recording, 1).await;
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, "Bo");
    let (video_frames, finished) = video_frames_in(&std::env::temp_dir().join(&files[0].1));
    assert!(finished);
    let sent = 2 * VIDEO_FRAMES;
    assert!(
        video_frames * 10 >= sent * 9,
        "Bo's video frames, before and after Ann's failure: {video_frames} of {sent}"
    );
    std::fs::remove_file(&blocked).unwrap();
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(recording.to_string()));
}

/// A directory on a filesystem of its own that holds only `size` bytes (a tmpfs), unmounted and
/// removed when dropped; `None` (said on stdout) when this machine cannot mount one.
struct SmallFilesystem(std::path::PathBuf);

impl SmallFilesystem {
    fn mount(size: &str) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("confab-small-fs-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("mount runs");
        if !mounted.status.success() {
            println!("SKIPPED: cannot mount a {size} tmpfs: {}", String::from_utf8_lossy(&mounted.stderr));
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Self(dir))
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Issue 14: a disk that fills up during a recording. The recordings directory is a 256 KiB
/// tmpfs, and the participant plays 6 s of the real clips (about 330 kB): the disk is full after
/// some 4 s. The recording then ends `partial`, "disk full", within 2 s; what was written is kept,
/// rebuilt into a seekable file registered with its size and SHA-256, which ffmpeg decodes.
#[actix_web::test]
async fn a_full_disk_ends_the_recording_partial_within_2_s_keeping_what_was_written() {
    let Some(disk) = SmallFilesystem::mount("256k") else { return };
    let world = world().await;
    let mut ann = world.participant().await;
    let recording = world.queue_recording("pending").await;
    let mut settings = world.worker("rec-a").settings;
    settings.recordings_dir = disk.0.clone();
    settings.min_free_bytes = 64 << 10;
    let _worker = start(Worker::build(settings).unwrap());
    let recorder =
        ann.recv_with("recording_started").await["recording_started"]["recorder_peer_id"].as_str().unwrap().to_owned();
    let media = ann.offer_media(&recorder).await;

    let playing = play_clips(&media.video.0, media.video.1, &media.audio.0, media.audio.1, Duration::from_secs(6));
    // The disk fills up between two looks at it: the last look that found room bounds from
    // below when the write that failed was made.
    let watching = async {
        let (mut room_seen_at, give_up) = (Instant::now(), Instant::now() + Duration::from_secs(20));
        while Instant::now() < give_up {
            let free = confab_recorder::free_space::free_bytes(&disk.0).unwrap();
            let looked_at = Instant::now();
            if !matches!(world.status(recording).await.0.as_str(), "starting" | "recording") {
                return (room_seen_at, Instant::now());
            }
            if free > 0 {
                room_seen_at = looked_at;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the recording is still {:?} 20 s on", world.status(recording).await)
    };
    let (_, (room_seen_at, ended_at)) = tokio::join!(playing, watching);
    let (status, reason, _) = world.status(recording).await;
    let delay = ended_at - room_seen_at;
    println!("from the disk filling up to `{status}`: at most {:.2} s", delay.as_secs_f64());
    assert_eq!(status, "partial", "{reason:?}");
    assert!(reason.as_deref().unwrap_or_default().starts_with("disk full"), "{reason:?}");
    assert!(delay < Duration::from_secs(2), "{delay:?} from a full disk to `partial`");
    assert_eq!(ann.recv_with("recording_stopped").await["recording_stopped"]["recorder_peer_id"], recorder.as_str());
    media.sender.connection.close().await.unwrap();

    let (path, bytes, sha256, duration_ms): (String, i64, String, i64) =
        sqlx::query_as("select path, bytes, sha256, duration_ms from recording_files where recording_id = $1")
            .bind(recording)
            .fetch_one(&world.db)
            .await
            .unwrap();
    let kept = disk.0.join(&path);
    let on_disk = std::fs::read(&kept).unwrap();
    assert_eq!(on_disk.len() as i64, bytes);
    let digest: String = sha2::Sha256::digest(&on_disk).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, sha256, "registered with the SHA-256 of the kept file");
    assert!(duration_ms >= 2_000, "{duration_ms} ms kept");
    let (video_frames, has_cues) = video_frames_in(&kept);
    assert!(has_cues, "seekable");
    assert!(video_frames >= 60, "{video_frames} video frames kept");
    assert_eq!(ffmpeg_decode_errors(&kept), "", "the kept file decodes without errors");
    let leftovers: Vec<_> =
        std::fs::read_dir(disk.0.join(recording.to_string())).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no note or temporary file is left: {leftovers:?}");
    std::fs::remove_dir_all(disk.0.join(recording.to_string())).unwrap();
}

/// Issue 14: a recorder whose recordings directory has less free space than its floor starts no
/// recording. It puts the job back for a recorder with room; when none takes it within 10 s, the
/// recording fails and says why, without the recorder ever having joined the call.
#[actix_web::test]
async fn a_recorder_below_its_free_space_floor_starts_no_recording_and_it_fails_saying_why() {
    let world = world().await;
    let dir = TempDir::new("floor");
    let mut ann = world.participant().await;
    let recording = world.queue_recording("pending").await;
    let mut settings = world.worker("rec-full").settings;
    settings.recordings_dir = dir.0.clone();
    settings.min_free_bytes = u64::MAX;
    let _worker = start(Worker::build(settings).unwrap());

    let give_up = Instant::now() + Duration::from_secs(25);
    let (status, reason, recorder) = loop {
        let status = world.status(recording).await;
        if status.0 != "pending" && status.0 != "starting" || Instant::now() > give_up {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, "failed");
    assert_eq!(reason.as_deref(), Some("no recorder had enough free disk space to start the recording"));
    assert_eq!(recorder, None);
    let started_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select started_at from recordings where id = $1")
            .bind(recording)
            .fetch_one(&world.db)
            .await
            .unwrap();
    assert_eq!(started_at, None, "never recorded");
    assert_eq!(ann.recorder_started_within(Duration::from_millis(300), "").await, None, "never joined the call");
}

/// Issue 14: the job a recorder short of room puts back goes to a recorder with room, which
/// records it.
#[actix_web::test]
async fn a_recording_a_recorder_short_of_room_puts_back_is_recorded_by_a_recorder_with_room() {
    let logs = captured_logs();
    let world = world().await;
    let mut ann = world.participant().await;
    let recording = world.queue_recording("pending").await;
    let mut settings = world.worker("rec-full").settings;
    settings.min_free_bytes = u64::MAX;
    let _full = start(Worker::build(settings).unwrap());
    logged(&logs, "too little free disk space to start a recording", &recording.to_string()).await;

    let _roomy = world.start_worker("rec-roomy");
    assert!(ann.recorder_started_within(Duration::from_secs(5), "").await.is_some());
    let (_, _, recorder) = world.wait_for_status(recording, "recording").await;
    assert_eq!(recorder.as_deref(), Some("rec-roomy"));
}

#[actix_web::test]
async fn a_job_seen_before_its_row_is_committed_is_still_recorded_at_once() {
    let world = world().await;
    let mut ann = world.participant().await;
    // A recorder that would take 30 s to notice a dropped job.
    let mut settings = world.worker("rec-a").settings;
    settings.reclaim_after = Duration::from_secs(30);
    let _worker = start(Worker::build(settings).unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The API's order: the job first, then the row's commit.
    let recording = Uuid::new_v4();
    let _: String =
        confab_common::recording_jobs::add(&world.prefix, &recording.to_string(), &world.room.to_string(), None)
            .query_async(&mut world.redis().await)
            .await
            .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::query("insert into recordings (id, room_id) values ($1, $2)")
        .bind(recording)
        .bind(world.room)
        .execute(&world.db)
        .await
        .unwrap();
    assert_eq!(ann.recv_with("recording_started").await["recording_started"]["recording_id"], recording.to_string());
    world.wait_for_status(recording, "recording").await;
}

/// What ffprobe says of a file's streams (codec, size) and its duration, and what a full decode
/// prints (nothing, for a good file).
fn probe(path: &std::path::Path) -> (Value, String) {
    let file = path.to_str().unwrap();
    let entries = "stream=codec_type,codec_name,width,height,sample_rate:format=duration";
    let (json, _) = camera::run_tool("ffprobe", &["-v", "error", "-show_entries", entries, "-of", "json", file]);
    let (_, errors) = camera::run_tool("ffmpeg", &["-v", "error", "-i", file, "-f", "null", "-"]);
    (serde_json::from_str(&json).unwrap(), errors)
}

/// The profile-level-id of the clip's SPS (the bytes after its NAL header), as a camera offers it.
fn profile_level_id(keyframe: &[u8]) -> String {
    let sps = keyframe.windows(5).position(|w| w[..4] == [0, 0, 0, 1] && w[4] & 0x1f == 7).expect("an SPS") + 5;
    keyframe[sps..sps + 3].iter().map(|b| format!("{b:02x}")).collect()
}

#[actix_web::test]
async fn a_camera_offering_h264_and_pcmu_through_the_gateway_is_recorded_into_a_matroska_file() {
    let world = world().await;
    let camera_user = format!("camera-{}", Uuid::new_v4());
    let (mut camera, welcome) = world.peer("Front door", "camera", &camera_user).await;
    let camera_peer = welcome["welcome"]["peer_id"].as_str().unwrap().to_owned();
    let _ann = world.participant().await;
    let recording = world.queue_recording("pending").await;
    let _worker = world.start_worker("rec-a");
    // The gateway tells cameras about the recording as it tells participants.
    let started = camera.recv_with("recording_started").await;
    let recorder = started["recording_started"]["recorder_peer_id"].as_str().expect("a recorder").to_owned();

    let clip_dir = TempDir(std::env::temp_dir().join(format!("confab-camera-clip-{}", Uuid::new_v4().simple())));
    std::fs::create_dir_all(&clip_dir.0).unwrap();
    let (access_units, pcmu) = camera::clip(&clip_dir.0, 25, 3);
    let media = camera.offer_camera(&recorder, &profile_level_id(&access_units[0])).await;
    media.send_camera(&access_units, 25, &pcmu).await;

    world.stop_recording(recording).await;
    let (_, reason, _) = world.wait_for_status(recording, "ready").await;
    assert_eq!(reason, None);
    type Row = (String, String, Option<Uuid>, String, String, i64, i64, Vec<String>);
    let (path, participant, user_id, peer_id, content_type, bytes, duration_ms, codecs): Row = sqlx::query_as(
        "select path, participant, user_id, peer_id, content_type, bytes, duration_ms, codecs
           from recording_files where recording_id = $1",
    )
    .bind(recording)
    .fetch_one(&world.db)
    .await
    .unwrap();
    assert!(path.ends_with(".mkv"), "{path}");
    assert_eq!((participant.as_str(), user_id, peer_id), ("Front door", None, camera_peer));
    assert_eq!(content_type, "video/x-matroska");
    assert_eq!(codecs, ["h264", "pcm_mulaw"]);
    assert!((2_500..=3_100).contains(&duration_ms), "{duration_ms} ms");
    let file = std::env::temp_dir().join(&path);
    assert_eq!(std::fs::metadata(&file).unwrap().len() as i64, bytes);
    let (probed, decode_errors) = probe(&file);
    let streams = probed["streams"].as_array().unwrap();
    assert_eq!(streams[0]["codec_name"], "h264");
    assert_eq!((streams[0]["width"].as_u64(), streams[0]["height"].as_u64()), (Some(320), Some(240)));
    assert_eq!(streams[1]["codec_name"], "pcm_mulaw");
    assert_eq!(decode_errors, "");
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(recording.to_string()));
}

#[actix_web::test]
async fn a_camera_file_a_dead_recorder_left_is_rebuilt_into_a_partial_recording() {
    let world = world().await;
    let recording = world.recording_of_a_dead_recorder().await;
    let dir = TempDir(std::env::temp_dir().join(format!("confab-camera-crash-{}", Uuid::new_v4().simple())));
    let recording_dir = dir.0.join(recording.to_string());
    std::fs::create_dir_all(&recording_dir).unwrap();
    // What the dead recorder left: the camera's note and its file up to the last closed cluster
    // (a writer dropped mid-cluster leaves exactly what a kill -9 would).
    let (access_units, pcmu) = camera::clip(&dir.0, 25, 3);
    let orphan = recording_dir.join("cam.mkv");
    let note =
        serde_json::json!({"peer_id": "p-cam", "user_id": "camera-1", "display_name": "Front door", "role": "camera"});
    std::fs::write(recording_dir.join("cam.json"), note.to_string()).unwrap();
    let mut crashed =
        confab_recorder::mkv_file::CameraFile::create(&orphan, Some(confab_recorder::mkv_file::G711::MuLaw)).unwrap();
    for (n, unit) in access_units.iter().enumerate().take(63) {
        let ns = n as u64 * 40_000_000;
        crashed.write_video(ns, unit).unwrap();
        for (k, samples) in pcmu.chunks(camera::AUDIO_PACKET).enumerate().skip(2 * n).take(2) {
            crashed.write_audio(k as u64 * 20_000_000, samples).unwrap();
        }
    }
    drop(crashed);
    assert!(probe(&orphan).0["format"]["duration"].is_null(), "the orphan has no Duration");

    world.stop_recording(recording).await;
    let mut settings = world.worker("rec-b").settings;
    settings.recordings_dir = dir.0.clone();
    let _restarted = start(Worker::build(settings).unwrap());
    let (_, reason, _) = world.wait_for_status(recording, "partial").await;
    assert!(reason.unwrap().contains("media is missing"));
    type Row = (String, String, String, bool, Vec<String>, i64);
    let (path, participant, content_type, recovered, codecs, duration_ms): Row = sqlx::query_as(
        "select path, participant, content_type, recovered, codecs, duration_ms from recording_files
          where recording_id = $1",
    )
    .bind(recording)
    .fetch_one(&world.db)
    .await
    .unwrap();
    assert_eq!(dir.0.join(&path), orphan, "rebuilt in place");
    assert_eq!((participant.as_str(), content_type.as_str(), recovered), ("Front door", "video/x-matroska", true));
    assert_eq!(codecs, ["h264", "pcm_mulaw"]);
    assert!((1_900..=2_100).contains(&duration_ms), "the two complete seconds: {duration_ms} ms");
    let (probed, decode_errors) = probe(&orphan);
    let duration: f64 = probed["format"]["duration"].as_str().expect("a Duration now").parse().unwrap();
    assert!((1.9..=2.1).contains(&duration), "{duration} s");
    assert_eq!(decode_errors, "");
    let leftovers: Vec<_> = std::fs::read_dir(&recording_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no note or temporary file is left: {leftovers:?}");
}
