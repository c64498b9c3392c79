//! The recording path with nothing faked but the browser: a real API, gateway, recorder and
//! camera ingest on real Postgres and Redis ([`Deployment`]), and a webrtc-rs participant that
//! signs up, creates a room, joins its call, starts a recording over HTTP, offers the recorder its
//! camera and microphone (the committed VP8 and Opus clips, played in real time), stops the
//! recording and downloads the file. An RTSP camera attached to a room (GStreamer's test server)
//! is recorded into its own Matroska file the same way. The files are judged by ffprobe and
//! ffmpeg, independent of the recorder's own reading of them.

use std::sync::Arc;
use std::time::Duration;

use awc::http::StatusCode;
use confab_stack::{Deployment, probe};
use confab_testkit::media::{AUDIO_SSRC, VIDEO_SSRC, opus, play_clips, sample_track, vp8};
use confab_testkit::{Kind, SenderPeer, Signaling, TempDir, next, run_tool};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::json;
use sha2::{Digest, Sha256};
use webrtc::peer_connection::MediaEngine;

/// How much of the clips the participant sends.
const SENT: Duration = Duration::from_secs(5);
/// The largest start offset between audio and video that lip sync tolerates here.
const MAX_AV_OFFSET_SECS: f64 = 0.040;

#[actix_web::test]
async fn a_participant_sending_vp8_and_opus_is_recorded_into_a_file_that_plays_in_sync() {
    // Before anything is built: without the tools this test cannot judge the file.
    run_tool("ffprobe", &["-version"]);
    run_tool("ffmpeg", &["-version"]);
    let deployment = Deployment::start().await;
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
    let video = sample_track(RtpCodecKind::Video, VIDEO_SSRC, vp8());
    let audio = sample_track(RtpCodecKind::Audio, AUDIO_SSRC, opus());
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

    let (_, bytes) = deployment
        .download(&owner, &format!("/v1/recordings/{recording}/files/{}", file["id"].as_str().unwrap()))
        .await;
    let sha256: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(file["sha256"], sha256, "the download is the file the recorder finished");
    let downloaded = TempDir::new("stack-download");
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
    let deployment = Deployment::start().await;
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
    deployment.wait_for_camera_file(&recording).await;
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
        .download(&owner, &format!("/v1/recordings/{recording}/files/{}", file["id"].as_str().unwrap()))
        .await;
    assert_eq!(content_type, "video/x-matroska");
    let downloaded = TempDir::new("stack-camera");
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
