//! The whole recording path with nothing faked but the browser: a real API, gateway, recorder and
//! camera ingest on real Postgres and Redis, and a webrtc-rs participant that signs up, creates a
//! room, joins its call, starts a recording over HTTP, offers the recorder its camera and
//! microphone (the committed VP8 and Opus clips, played in real time), stops the recording and
//! downloads the file. An RTSP camera attached to a room (GStreamer's test server) is recorded
//! into its own Matroska file the same way. The files are judged by ffprobe and ffmpeg,
//! independent of the recorder's own reading of them.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use awc::http::StatusCode;
use confab_testkit::{Kind, SenderPeer, Signaling, env, eventually, next};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;
use webrtc::peer_connection::MediaEngine;

mod support;

use support::*;

/// How much of the clips the participant sends.
const SENT: Duration = Duration::from_secs(5);
/// The largest start offset between audio and video that lip sync tolerates here.
const MAX_AV_OFFSET_SECS: f64 = 0.040;

/// The three services, in-process, sharing one database, one Redis prefix, one signing key and
/// one recordings directory.
struct Deployment {
    api: String,
    db: PgPool,
    client: awc::Client,
    recordings: TempDir,
    _recorder: tokio::sync::watch::Sender<bool>,
    _ingest: tokio::sync::watch::Sender<bool>,
}

async fn deploy() -> Deployment {
    let (_, database_url) = confab_testkit::fresh_database().await;
    let key_pem = SigningKey::from_bytes(&random_key()).to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let prefix = format!("confab-test:{}", Uuid::new_v4().simple());
    let recordings = TempDir(std::env::temp_dir().join(format!("confab-e2e-{}", Uuid::new_v4().simple())));
    std::fs::create_dir_all(&recordings.0).unwrap();

    // The gateway is built before the API (the API hands out the gateway's address), so it
    // reaches the API's key set through a relay that learns the API's address afterwards.
    let api_address = Arc::new(OnceLock::new());
    let gateway = confab_gateway::Application::build(confab_gateway::Settings {
        bind: "127.0.0.1:0".into(),
        redis_url: env("REDIS_URL"),
        redis_prefix: prefix.clone(),
        jwks_url: jwks_relay(Arc::clone(&api_address)),
        jwt_issuer: "confab".into(),
        allowed_origins: vec![],
        instance_id: "gw-e2e".into(),
        ice: Default::default(),
        limits: Default::default(),
    })
    .unwrap();
    let gateway_url = format!("ws://127.0.0.1:{}/v1/signal", gateway.port());
    actix_web::rt::spawn(gateway.run_until_stopped());

    let mut settings =
        confab_testkit::api_settings(&database_url, &prefix, &key_pem, vec![gateway_url.clone()], &recordings.0);
    // The test camera is on loopback, which the SSRF guard refuses by default.
    settings.cameras = confab_api::settings::CameraSettings {
        key: None,
        allowed_hosts: vec!["127.0.0.1".into()],
        allow_private: false,
    };
    let api_url = confab_testkit::api(settings).await;
    api_address.set(api_url.clone()).unwrap();

    let worker = confab_recorder::worker::Worker::build(confab_recorder::Settings {
        bind: "127.0.0.1:0".into(),
        redis_url: env("REDIS_URL"),
        redis_prefix: prefix.clone(),
        database_url: database_url.clone(),
        instance_id: "rec-e2e".into(),
        gateway_urls: vec![gateway_url.clone()],
        jwt_keys_pem: key_pem.clone(),
        jwt_issuer: "confab".into(),
        recordings_dir: recordings.0.clone(),
        // The default: nothing in this flow may wait for a take-over.
        reclaim_after: Duration::from_secs(30),
        storage: Default::default(),
        min_free_bytes: 1 << 30,
    })
    .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    actix_web::rt::spawn(Arc::new(worker).run(stopped));

    let ingest = confab_ingest::worker::Worker::build(confab_ingest::Settings {
        bind: "127.0.0.1:0".into(),
        redis_url: env("REDIS_URL"),
        redis_prefix: prefix,
        database_url: database_url.clone(),
        instance_id: "ingest-e2e".into(),
        secrets: None,
        host_policy: confab_common::camera_url::HostPolicy::new(false, &["127.0.0.1".to_owned()]).unwrap(),
        call: Some(confab_ingest::settings::CallSettings {
            gateway_urls: vec![gateway_url],
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
    let db = PgPool::connect_lazy(&database_url).unwrap();
    Deployment { api: api_url, db, client, recordings, _recorder: stop, _ingest: stop_ingest }
}

fn random_key() -> [u8; 32] {
    let mut key = [0; 32];
    key[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    key
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

impl Deployment {
    /// Waits until the room's webhook events are `expected` (besides `room.created`), each once:
    /// the gateway's presence stream and the recorder's status changes reach the outbox.
    async fn expect_webhook_events(&self, room: &str, expected: &[&str]) {
        let room = Uuid::parse_str(room).unwrap();
        let mut expected: Vec<&str> = expected.to_vec();
        expected.sort();
        let mut events = Vec::new();
        for _ in 0..100 {
            events = sqlx::query_scalar::<_, String>(
                "select type from webhook_events where room_id = $1 and type <> 'room.created' order by type",
            )
            .bind(room)
            .fetch_all(&self.db)
            .await
            .unwrap();
            if events.len() >= expected.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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
    async fn post(&self, path: &str, token: Option<&str>, body: Value, expected: StatusCode) -> Value {
        let (status, reply) = self.send("POST", path, token, Some(body)).await;
        assert_eq!(status, expected, "POST {path}: {reply}");
        reply
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let (status, reply) = self.send("GET", path, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {reply}");
        reply
    }

    /// Signs up a user and logs in; the access token.
    async fn signed_up_user(&self) -> String {
        let email = format!("user-{}@example.org", Uuid::new_v4().simple());
        let password = "correct horse battery staple";
        let signup = json!({"email": email, "password": password, "display_name": "Ann"});
        self.post("/v1/auth/signup", None, signup, StatusCode::CREATED).await;
        let login = self.post("/v1/auth/login", None, json!({"email": email, "password": password}), StatusCode::OK);
        login.await["access_token"].as_str().expect("an access token").to_owned()
    }

    /// Polls the recording until it is `status` (the recorder checks for a stop every 500 ms).
    async fn wait_for_recording(&self, token: &str, recording: &str, status: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..150 {
            last = self.get(&format!("/v1/recordings/{recording}"), token).await;
            if last["status"] == status {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the recording never became {status}: {last}")
    }

    async fn download(&self, token: &str, path: &str) -> Vec<u8> {
        self.download_typed(token, path).await.1
    }

    /// The file at `path` and its `Content-Type`.
    async fn download_typed(&self, token: &str, path: &str) -> (String, Vec<u8>) {
        let mut reply = self.client.get(format!("{}{path}", self.api)).bearer_auth(token).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::OK, "GET {path}");
        let content_type = reply.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        (content_type.unwrap_or_default(), reply.body().limit(64 << 20).await.unwrap().to_vec())
    }
}

/// What ffprobe reads in a file.
#[derive(Debug)]
struct Probe {
    /// Codec name by codec type (`video`, `audio`).
    codecs: Vec<(String, String)>,
    duration_secs: f64,
    /// The first packet's presentation time by codec type.
    first_pts_secs: Vec<(String, f64)>,
}

/// Runs `program` with `args`; its stdout and stderr. A missing tool fails the test: the
/// provisioning scripts install ffmpeg, so its absence is a broken setup, not a reason to skip.
fn run_tool(program: &str, args: &[&str]) -> (String, String) {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {program} ({e}): install ffmpeg (deploy/local/lib.sh's ensure_packages does, with apt-get)")
    });
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{program} {args:?} failed: {stderr}");
    (stdout.into_owned(), stderr.into_owned())
}

fn probe(file: &Path) -> Probe {
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

#[actix_web::test]
async fn a_participant_sending_vp8_and_opus_is_recorded_into_a_file_that_plays_in_sync() {
    // Before anything is built: without the tools this test cannot judge the file.
    run_tool("ffprobe", &["-version"]);
    run_tool("ffmpeg", &["-version"]);
    let deployment = deploy().await;
    let owner = deployment.signed_up_user().await;
    let room = deployment.post("/v1/rooms", Some(&owner), json!({"name": "Recorded"}), StatusCode::CREATED).await;
    let room = room["id"].as_str().unwrap().to_owned();
    let join = deployment.post(&format!("/v1/rooms/{room}/join"), Some(&owner), json!({}), StatusCode::OK).await;
    let (mut signaling, _) =
        Signaling::join(join["gateway_url"].as_str().unwrap(), join["ticket"].as_str().unwrap()).await;

    let started =
        deployment.post(&format!("/v1/rooms/{room}/recordings"), Some(&owner), json!({}), StatusCode::ACCEPTED).await;
    let recording = started["id"].as_str().unwrap().to_owned();
    let announced = next!(signaling, RecordingStarted);
    assert_eq!(announced.recording_id, recording);
    let recorder = announced.recorder_peer_id;

    // The participant's send-only connection to the recorder: camera and microphone.
    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs().unwrap();
    let mut sender = SenderPeer::new(media_engine).await;
    let video = sample_track(RtpCodecKind::Video, VIDEO_SSRC, codec("video/VP8", 90_000, 0));
    let audio = sample_track(RtpCodecKind::Audio, AUDIO_SSRC, codec("audio/opus", 48_000, 2));
    let video_transceiver = sender.add_send_only(Arc::clone(&video)).await;
    let audio_transceiver = sender.add_send_only(Arc::clone(&audio)).await;
    sender.connect_through(&mut signaling, &recorder).await;
    let video_pt = SenderPeer::payload_type(&video_transceiver).await;
    let audio_pt = SenderPeer::payload_type(&audio_transceiver).await;
    let played = play_clips(&video, video_pt, &audio, audio_pt, SENT).await;

    deployment.post(&format!("/v1/recordings/{recording}/stop"), Some(&owner), json!({}), StatusCode::OK).await;
    assert_eq!(next!(signaling, RecordingStopped).recording_id, recording);
    sender.connection.close().await.unwrap();
    let ready = deployment.wait_for_recording(&owner, &recording, "ready").await;
    let files = ready["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "one participant, one file: {ready}");
    let file = &files[0];
    assert_eq!(file["codecs"], json!(["vp8", "opus"]));
    deployment.expect_webhook_events(&room, &["participant.joined", "recording.started", "recording.ready"]).await;

    let bytes = deployment
        .download(&owner, &format!("/v1/recordings/{recording}/files/{}", file["id"].as_str().unwrap()))
        .await;
    let sha256: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(file["sha256"], sha256, "the download is the file the recorder finished");
    let downloaded = TempDir(std::env::temp_dir().join(format!("confab-e2e-download-{}", Uuid::new_v4().simple())));
    std::fs::create_dir_all(&downloaded.0).unwrap();
    let path = downloaded.0.join("recording.webm");
    std::fs::write(&path, &bytes).unwrap();

    let probe = probe(&path);
    println!(
        "sent {:?} ({} video frames, {} audio packets); recorded {} bytes, stats {}: {probe:?}",
        played.media_time,
        played.video_frames,
        played.audio_packets,
        bytes.len(),
        ready["stats"]
    );
    let mut codecs = probe.codecs.clone();
    codecs.sort();
    assert_eq!(codecs, [("audio".to_owned(), "opus".to_owned()), ("video".to_owned(), "vp8".to_owned())]);
    let sent_secs = played.media_time.as_secs_f64();
    assert!((probe.duration_secs - sent_secs).abs() <= 1.0, "{} s recorded of {sent_secs} s sent", probe.duration_secs);
    let first = |kind: &str| probe.first_pts_secs.iter().find(|(k, _)| k == kind).expect("packets of each stream").1;
    let offset = first("audio") - first("video");
    assert!(offset.abs() <= MAX_AV_OFFSET_SECS, "audio starts {:.1} ms after video", offset * 1000.0);
    let (stdout, stderr) =
        run_tool("ffmpeg", &["-v", "error", "-nostdin", "-i", path.to_str().unwrap(), "-f", "null", "-"]);
    assert_eq!(stdout + &stderr, "", "the file decodes without errors");
}

#[actix_web::test]
async fn an_rtsp_camera_attached_to_a_room_is_recorded_into_its_own_matroska_file() {
    run_tool("ffprobe", &["-version"]);
    run_tool("ffmpeg", &["-version"]);
    // The camera's file starts at its first keyframe after the recorder connected (an RTSP camera
    // cannot be asked for one), so a short GOP keeps the comparison with the recorded time tight.
    let camera = confab_testkit::RtspServer::start(&["--fps", "15", "--gop", "8"]);
    let deployment = deploy().await;
    let owner = deployment.signed_up_user().await;
    let room = deployment.post("/v1/rooms", Some(&owner), json!({"name": "Lab"}), StatusCode::CREATED).await;
    let room = room["id"].as_str().unwrap().to_owned();
    let attach = json!({"name": "Bench camera", "rtsp_url": camera.url()});
    deployment.post(&format!("/v1/rooms/{room}/cameras"), Some(&owner), attach, StatusCode::CREATED).await;

    // A participant joins: the call is on, the ingest pulls the camera into it.
    let join = deployment.post(&format!("/v1/rooms/{room}/join"), Some(&owner), json!({}), StatusCode::OK).await;
    let (mut signaling, _) =
        Signaling::join(join["gateway_url"].as_str().unwrap(), join["ticket"].as_str().unwrap()).await;
    let pick_joined = |kind| match kind {
        Kind::PeerJoined(joined) => joined.peer,
        _ => None,
    };
    let joined = signaling.next_of_within(Duration::from_secs(30), pick_joined).await.expect("the camera joins");
    assert_eq!((joined.display_name.as_str(), joined.role.as_str()), ("Bench camera", "camera"));

    let started =
        deployment.post(&format!("/v1/rooms/{room}/recordings"), Some(&owner), json!({}), StatusCode::ACCEPTED).await;
    let recording = started["id"].as_str().unwrap().to_owned();
    // The participant sends nothing; the camera's offer to it goes unanswered.
    next!(signaling, RecordingStarted);
    // The camera's file begins at the camera's first keyframe once its connection to the
    // recorder is up (an RTSP camera cannot be asked for one); how long that takes varies with
    // the machine, so the recorded time counts from when the file has its header on disk.
    let announced = std::time::Instant::now();
    let recording_dir = deployment.recordings.0.join(&recording);
    let camera_file_started = || {
        let entries = std::fs::read_dir(&recording_dir).into_iter().flatten().flatten();
        entries.into_iter().any(|e| e.path().extension().is_some_and(|x| x == "mkv") && e.metadata().unwrap().len() > 0)
    };
    eventually("the camera's file starts", Duration::from_secs(20), || {
        std::future::ready(camera_file_started().then_some(()))
    })
    .await;
    let recording_since = std::time::Instant::now();
    let start_lag = recording_since - announced;
    tokio::time::sleep(Duration::from_secs(5)).await;
    deployment.post(&format!("/v1/recordings/{recording}/stop"), Some(&owner), json!({}), StatusCode::OK).await;
    let recorded_secs = recording_since.elapsed().as_secs_f64();
    let ready = deployment.wait_for_recording(&owner, &recording, "ready").await;
    let files = ready["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "the participant sent nothing; the camera has its file: {ready}");
    let file = &files[0];
    assert_eq!(file["participant"], "Bench camera");
    assert_eq!(file["content_type"], "video/x-matroska");
    assert_eq!(file["codecs"], json!(["h264", "pcm_mulaw"]));

    let (content_type, bytes) = deployment
        .download_typed(&owner, &format!("/v1/recordings/{recording}/files/{}", file["id"].as_str().unwrap()))
        .await;
    assert_eq!(content_type, "video/x-matroska");
    let downloaded = TempDir(std::env::temp_dir().join(format!("confab-e2e-camera-{}", Uuid::new_v4().simple())));
    std::fs::create_dir_all(&downloaded.0).unwrap();
    let path = downloaded.0.join("camera.mkv");
    std::fs::write(&path, &bytes).unwrap();
    let probe = probe(&path);
    println!(
        "recorded {recorded_secs:.1} s of the camera, its file started {start_lag:?} after recording_started; \
         {} bytes: {probe:?}",
        bytes.len()
    );
    let mut codecs = probe.codecs.clone();
    codecs.sort();
    assert_eq!(codecs, [("audio".to_owned(), "pcm_mulaw".to_owned()), ("video".to_owned(), "h264".to_owned())]);
    assert!(
        (probe.duration_secs - recorded_secs).abs() <= 1.5,
        "{} s in the file of {recorded_secs} s recorded",
        probe.duration_secs
    );
    let (stdout, stderr) =
        run_tool("ffmpeg", &["-v", "error", "-nostdin", "-i", path.to_str().unwrap(), "-f", "null", "-"]);
    assert_eq!(stdout + &stderr, "", "the file decodes without errors");
}
