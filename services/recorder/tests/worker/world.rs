//! The world the worker's tests run in: Postgres with the schema, Redis under a fresh prefix, a
//! gateway trusting the test's key, a room, recorders, and participants that offer media.

use std::time::{Duration, Instant};

use confab_call::camera_profile;
use confab_protocol::signal::{RecordingStarted, RecordingStopped, Welcome};
use confab_recorder::Settings;
use confab_recorder::worker::Worker;
use confab_testkit::{Gateway, SenderPeer, Signaling, TestKeys, eventually, next};
use rtc::media::Sample;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::Value;
use sqlx::{Executor, PgPool};
use uuid::Uuid;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::peer_connection::MediaEngine;

pub use confab_testkit::env;

use crate::support::*;

/// How long the media a participant wrote last may still be on its way to the recorder (the
/// sender's queue, loopback, the recorder's WebRTC stack). Nothing outside the recorder shows when
/// it has arrived, so a test that ends a recording right after sending waits this long first.
pub const IN_FLIGHT: Duration = Duration::from_millis(500);

/// Postgres with the schema, Redis under a fresh prefix, a gateway trusting `keys`, and a room.
pub struct World {
    pub db: PgPool,
    pub database_url: String,
    pub prefix: String,
    pub keys: TestKeys,
    pub jwks_url: String,
    pub gateway: String,
    pub room: Uuid,
}

pub async fn world() -> World {
    let (db, database_url) = confab_testkit::fresh_database().await;
    let keys = TestKeys::default();
    let prefix = confab_testkit::redis_prefix();
    let jwks_url = confab_testkit::jwks_server(&keys.keys);
    let Gateway { url: gateway, .. } = confab_testkit::gateway(&prefix, &jwks_url, "gw-test");
    let (owner, room) = (Uuid::new_v4(), Uuid::new_v4());
    db.execute(sqlx::AssertSqlSafe(format!(
        "insert into users (id, email, display_name, password_hash) values ('{owner}', '{owner}@example.org', 'Ann', 'x');
         insert into rooms (id, name, owner_id, max_participants) values ('{room}', 'Recorded', '{owner}', 4);"
    )))
    .await
    .unwrap();
    World { db, database_url, prefix, keys, jwks_url, gateway, room }
}

impl World {
    pub fn worker(&self, instance_id: &str) -> Worker {
        self.worker_via(instance_id, &self.gateway)
    }

    pub fn worker_via(&self, instance_id: &str, gateway: &str) -> Worker {
        Worker::build(Settings {
            bind: "127.0.0.1:0".into(),
            redis_url: env("REDIS_URL"),
            redis_prefix: self.prefix.clone(),
            database_url: self.database_url.clone(),
            instance_id: instance_id.into(),
            gateway_urls: vec![gateway.to_owned()],
            jwt_keys_pem: self.keys.pem.clone(),
            jwt_issuer: "confab".into(),
            recordings_dir: std::env::temp_dir(),
            storage: Default::default(),
            reclaim_after: Duration::from_secs(1),
            min_free_bytes: 1 << 30,
        })
        .unwrap()
    }

    /// Starts a worker; it stops when the returned sender is dropped.
    pub fn start_worker(&self, instance_id: &str) -> tokio::sync::watch::Sender<bool> {
        start(self.worker(instance_id))
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(env("REDIS_URL")).unwrap().get_multiplexed_async_connection().await.unwrap()
    }

    /// A recording row in `status` and its job, as the API queues it.
    pub async fn queue_recording(&self, status: &str) -> Uuid {
        self.queue_recording_by(status, None).await
    }

    /// A recording row in `status` and its job, queued by the request `request_id` if any.
    pub async fn queue_recording_by(&self, status: &str, request_id: Option<&str>) -> Uuid {
        self.queue_recording_in(self.room, status, request_id).await
    }

    /// A recording of `room` in `status` and its job, queued by the request `request_id` if any.
    pub async fn queue_recording_in(&self, room: Uuid, status: &str, request_id: Option<&str>) -> Uuid {
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
    pub async fn recording_of_a_dead_recorder(&self) -> Uuid {
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
    pub async fn another_room(&self) -> Uuid {
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
    pub async fn stop_recording(&self, recording: Uuid) {
        sqlx::query("update recordings set status = 'finalizing' where id = $1")
            .bind(recording)
            .execute(&self.db)
            .await
            .unwrap();
    }

    pub async fn status(&self, recording: Uuid) -> (String, Option<String>, Option<String>) {
        sqlx::query_as("select status, reason, recorder_id from recordings where id = $1")
            .bind(recording)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// When the recording began, if it did.
    pub async fn started_at(&self, recording: Uuid) -> Option<chrono::DateTime<chrono::Utc>> {
        sqlx::query_scalar("select started_at from recordings where id = $1")
            .bind(recording)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Waits until the recorder `instance_id` is up: its heartbeat key is there.
    pub async fn wait_for_recorder(&self, instance_id: &str) {
        let key = confab_domain::keys::recorder_alive(&self.prefix, instance_id);
        eventually(&format!("{instance_id} is up"), Duration::from_secs(10), || async {
            let alive: bool = redis::cmd("EXISTS").arg(&key).query_async(&mut self.redis().await).await.unwrap();
            alive.then_some(())
        })
        .await
    }

    /// Waits until the recording's status is `wanted`.
    pub async fn wait_for_status(&self, recording: Uuid, wanted: &str) -> (String, Option<String>, Option<String>) {
        self.wait_for_status_within(recording, wanted, Duration::from_secs(10)).await
    }

    /// Waits up to `within` until the recording's status is `wanted`.
    pub async fn wait_for_status_within(
        &self,
        recording: Uuid,
        wanted: &str,
        within: Duration,
    ) -> (String, Option<String>, Option<String>) {
        let what = format!("the recording becomes {wanted}");
        eventually(&what, within, || async { Some(self.status(recording).await).filter(|status| status.0 == wanted) })
            .await
    }

    /// The recording's file rows (participant, path, duration in ms), oldest first, once there
    /// are `count` of them.
    pub async fn wait_for_files(&self, recording: Uuid, count: usize) -> Vec<(String, String, Option<i64>)> {
        eventually(&format!("the recording has {count} files"), Duration::from_secs(10), || async {
            let files: Vec<(String, String, Option<i64>)> = sqlx::query_as(
                "select participant, path, duration_ms from recording_files where recording_id = $1 order by created_at",
            )
            .bind(recording)
            .fetch_all(&self.db)
            .await
            .unwrap();
            Some(files).filter(|files| files.len() >= count)
        })
        .await
    }

    /// A participant in the room: its socket, after the welcome.
    pub async fn participant(&self) -> Participant {
        self.participant_named("Ann").await
    }

    /// A participant in the room called `display_name`: its socket, after the welcome.
    pub async fn participant_named(&self, display_name: &str) -> Participant {
        self.participant_in(self.room, display_name).await
    }

    /// A participant in `room` called `display_name`: its socket, after the welcome.
    pub async fn participant_in(&self, room: Uuid, display_name: &str) -> Participant {
        self.peer_in(room, display_name, "member", &Uuid::new_v4().to_string()).await.0
    }

    /// A peer with room role `role` in the room: its socket and its welcome.
    pub async fn peer(&self, display_name: &str, role: &str, user_id: &str) -> (Participant, Welcome) {
        self.peer_in(self.room, display_name, role, user_id).await
    }

    /// A peer with room role `role` in `room`: its socket and its welcome.
    pub async fn peer_in(&self, room: Uuid, display_name: &str, role: &str, user_id: &str) -> (Participant, Welcome) {
        let ticket = self.keys.ticket_for(user_id, &room.to_string(), display_name, role, None);
        let (signaling, welcome) = Signaling::join(&self.gateway, &ticket).await;
        (Participant { signaling }, welcome)
    }
}

/// The API on the world's database, Redis prefix and key, reading recordings from `recordings_dir`:
/// its base URL.
pub async fn api(world: &World, recordings_dir: &std::path::Path) -> String {
    let gateways = vec![world.gateway.clone()];
    confab_testkit::api(confab_testkit::api_settings(
        &world.database_url,
        &world.prefix,
        &world.keys.pem,
        gateways,
        recordings_dir,
    ))
    .await
}

/// Signs up a user through the API, makes them a plain member of the world's room, logs them in:
/// their access token.
pub async fn member_token(world: &World, api: &str) -> String {
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
pub fn ffmpeg_decode_errors(path: &std::path::Path) -> String {
    let output = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i", path.to_str().unwrap(), "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs (deploy/local/lib.sh's ensure_packages installs it)");
    assert!(output.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// What this test process logs, as the JSON lines a recorder writes with `CONFAB_LOG_FORMAT=json`.
pub fn captured_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
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
pub async fn logged(logs: &std::sync::Mutex<Vec<u8>>, message: &str, recording: &str) -> Value {
    logged_with(logs, message, "recording.id", recording).await
}

/// The logged line `message` whose `field` is `value`, waiting up to 5 s for it.
pub async fn logged_with(logs: &std::sync::Mutex<Vec<u8>>, message: &str, field: &str, value: &str) -> Value {
    eventually(&format!("a log line {message:?} with {field} {value}"), Duration::from_secs(5), || async {
        let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        let mut lines = text.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok());
        lines.find(|line| line["message"] == message && line[field] == value)
    })
    .await
}

/// Waits until the recorder has refused the media offer of the peer `peer_id` (it logs why):
/// the failure is counted against the recording by then.
pub async fn offer_refused(logs: &std::sync::Mutex<Vec<u8>>, peer_id: &str) {
    logged_with(logs, "cannot record a participant's media offer", "peer.id", peer_id).await;
}

pub fn start(worker: Worker) -> tokio::sync::watch::Sender<bool> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    actix_web::rt::spawn(std::sync::Arc::new(worker).run(stopped));
    stop
}

pub struct Participant {
    pub signaling: Signaling,
}

impl Participant {
    /// The next `recording_started`, skipping other messages.
    pub async fn recording_started(&mut self) -> RecordingStarted {
        next!(self.signaling, RecordingStarted)
    }

    /// The next `recording_stopped`, skipping other messages.
    pub async fn recording_stopped(&mut self) -> RecordingStopped {
        next!(self.signaling, RecordingStopped)
    }

    /// The peer id of the next recorder other than `not` to announce `recording_started`, waiting
    /// up to `limit` (the gateway sends nothing meanwhile).
    pub async fn recorder_started_within(&mut self, limit: Duration, not: &str) -> Option<String> {
        self.signaling
            .next_of_within(limit, |kind| match kind {
                confab_testkit::Kind::RecordingStarted(started) if started.recorder_peer_id != not => {
                    Some(started.recorder_peer_id)
                }
                _ => None,
            })
            .await
    }

    /// Offers a media description the recorder cannot take (`v=0` only).
    pub async fn offer_garbage(&mut self, recorder: &str) {
        self.signaling.send_signal(confab_call::signals::offer(recorder, "v=0\r\n".into())).await;
    }

    /// Opens the send-only connection to `recorder`, signaled through the gateway like a
    /// browser's, and waits until it is connected.
    pub async fn offer_media(&mut self, recorder: &str) -> Media {
        let mut media_engine = MediaEngine::default();
        media_engine.register_default_codecs().unwrap();
        let video = sample_track(RtpCodecKind::Video, VIDEO_SSRC, vp8());
        let audio = sample_track(RtpCodecKind::Audio, AUDIO_SSRC, opus());
        self.connect(media_engine, video, audio, recorder).await
    }

    /// What the ingest's camera peer offers: send-only H.264 (packetization-mode 1, the clip's
    /// profile) and PCMU; connected, ready to send.
    pub async fn offer_camera(&mut self, recorder: &str, profile_level_id: &str) -> Media {
        let h264 = camera_profile::h264(profile_level_id);
        let pcmu = camera_profile::g711(camera_profile::G711::Pcmu);
        let mut media_engine = MediaEngine::default();
        for (parameters, kind) in [(&h264, RtpCodecKind::Video), (&pcmu, RtpCodecKind::Audio)] {
            media_engine.register_codec(parameters.clone(), kind).unwrap();
        }
        let video = sample_track(RtpCodecKind::Video, VIDEO_SSRC, h264.rtp_codec);
        let audio = sample_track(RtpCodecKind::Audio, AUDIO_SSRC, pcmu.rtp_codec);
        self.connect(media_engine, video, audio, recorder).await
    }

    async fn connect(
        &mut self,
        media_engine: MediaEngine,
        video: std::sync::Arc<TrackLocalStaticSample>,
        audio: std::sync::Arc<TrackLocalStaticSample>,
        recorder: &str,
    ) -> Media {
        let mut sender = SenderPeer::new(media_engine).await;
        let video_transceiver = sender.add_send_only(std::sync::Arc::clone(&video)).await;
        let audio_transceiver = sender.add_send_only(std::sync::Arc::clone(&audio)).await;
        sender.connect_through(&mut self.signaling, recorder).await;
        let video_pt = SenderPeer::payload_type(&video_transceiver).await;
        let audio_pt = SenderPeer::payload_type(&audio_transceiver).await;
        Media { sender, video: (video, video_pt), audio: (audio, audio_pt) }
    }
}

/// A participant's connection to the recorder, ready to send.
pub struct Media {
    pub sender: SenderPeer,
    pub video: (std::sync::Arc<TrackLocalStaticSample>, u8),
    pub audio: (std::sync::Arc<TrackLocalStaticSample>, u8),
}

impl Media {
    /// Sends 3 s of VP8 and Opus, then closes the connection.
    pub async fn send(self) {
        tokio::join!(send_video(self.video.0, self.video.1), send_audio(self.audio.0, self.audio.1));
        self.sender.close().await;
    }

    /// Sends a camera's access units at `fps` and its PCMU in 20 ms packets, in real time, then
    /// closes the connection.
    pub async fn send_camera(self, access_units: &[camera::AccessUnit], fps: u64, pcmu: &[u8]) {
        let (video, video_pt) = self.video;
        let (audio, audio_pt) = self.audio;
        let video_frame = Duration::from_nanos(1_000_000_000 / fps);
        let send_video = async {
            let mut ticker = tokio::time::interval(video_frame);
            for unit in access_units {
                ticker.tick().await;
                // webrtc-rs's H.264 payloader finds the NAL units of a sample by its start codes.
                let annex_b: Vec<u8> = unit.iter().flat_map(|nal| [&[0, 0, 0, 1][..], nal].concat()).collect();
                let sample = Sample { data: annex_b.into(), duration: video_frame, ..Sample::new(Instant::now()) };
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
        self.sender.close().await;
    }
}

/// Video frames in the WebM file at `path`, and whether it has Cues.
pub fn video_frames_in(path: &std::path::Path) -> (usize, bool) {
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

/// When the first frame of the WebM file at `path` plays, in seconds from the file's start.
pub fn first_frame_secs(path: &std::path::Path) -> f64 {
    let mut mkv = matroska_demuxer::MatroskaFile::open(std::fs::File::open(path).unwrap()).unwrap();
    let scale_ns = mkv.info().timestamp_scale().get();
    let mut frame = matroska_demuxer::Frame::default();
    assert!(mkv.next_frame(&mut frame).unwrap(), "{} has frames", path.display());
    (frame.timestamp * scale_ns) as f64 / 1e9
}

/// The recorder binary, started like `deploy/local/up` does, recording into `dir`.
pub fn recorder_process(world: &World, instance_id: &str, dir: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_confab-recorder"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &world.database_url)
        .env("REDIS_URL", env("REDIS_URL"))
        .env("CONFAB_REDIS_PREFIX", &world.prefix)
        .env("CONFAB_JWT_KEY", &world.keys.pem)
        .env("CONFAB_GATEWAY_URLS", &world.gateway)
        .env("CONFAB_INSTANCE_ID", instance_id)
        .env("CONFAB_RECORDINGS_DIR", dir)
        .env("CONFAB_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the recorder binary starts")
}

/// A directory on a filesystem of its own that holds only `size` bytes (a tmpfs), unmounted and
/// removed when dropped; `None` (said on stdout) when this machine cannot mount one.
pub struct SmallFilesystem(pub std::path::PathBuf);

impl SmallFilesystem {
    pub fn mount(size: &str) -> Option<Self> {
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

/// What ffprobe says of a file's streams (codec, size) and its duration, and what a full decode
/// prints (nothing, for a good file).
pub fn probe(path: &std::path::Path) -> (Value, String) {
    let file = path.to_str().unwrap();
    let entries = "stream=codec_type,codec_name,width,height,sample_rate:format=duration";
    let (json, _) = camera::run_tool("ffprobe", &["-v", "error", "-show_entries", entries, "-of", "json", file]);
    let (_, errors) = camera::run_tool("ffmpeg", &["-v", "error", "-i", file, "-f", "null", "-"]);
    (serde_json::from_str(&json).unwrap(), errors)
}

/// The profile-level-id of the clip's SPS (the bytes after its NAL header), as a camera offers it.
pub fn profile_level_id(keyframe: &camera::AccessUnit) -> String {
    let sps = keyframe.iter().find(|nal| nal[0] & 0x1f == 7).expect("an SPS");
    sps[1..4].iter().map(|b| format!("{b:02x}")).collect()
}
