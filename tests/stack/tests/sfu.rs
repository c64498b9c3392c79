//! A call through the media server with nothing faked but the browsers: the API, a gateway and
//! the SFU on real Postgres and Redis ([`Deployment`]), and two webrtc-rs participants speaking
//! docs/protocol.md. Ann creates an `sfu` room; the gateway queues it and the SFU takes its hidden
//! seat (Ann is told with `media_changed`, Bob finds it in `welcome`); Ann publishes the committed
//! VP8 and Opus clips on her `publish` connection; Bob answers the SFU's `subscribe` offer and
//! receives both tracks, named after Ann's peer id. A recording of such a room gets Ann's media
//! from the SFU (she offers the recorder nothing) into a file of her own, whatever another
//! participant posing as the SFU sends the recorder. When the SFU serving the room dies, the room
//! goes to a second instance: media flows again through it within 5 s, and the recording goes on
//! in a new file, its gap stated. An RTSP camera (GStreamer's test server)
//! attached to an `sfu` room publishes to the SFU through the camera ingest: a participant
//! receives its H.264 and PCMU through the SFU, named after the camera's peer id, and a recording
//! gets it from the SFU into the camera's own Matroska file.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use awc::http::StatusCode;
use confab_protocol::signal::{SessionDescription, Signal, signal::Payload};
use confab_stack::{Deployment, probe};
use confab_testkit::media::{AUDIO_SSRC, Played, VIDEO_SSRC, opus, play_clips, sample_track, vp8};
use confab_testkit::{Kind, RtspServer, SenderPeer, Signaling, TempDir, loopback_connection, run_tool};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::json;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_remote::TrackRemoteEvent;
use webrtc::peer_connection::{MediaEngine, RTCSessionDescription};

/// Packets of each track Bob must receive.
const ENOUGH: usize = 50;

fn media_engine() -> MediaEngine {
    let mut engine = MediaEngine::default();
    engine.register_default_codecs().unwrap();
    engine
}

/// A room of Ann (owner) and Bob (member), both in its call once the SFU has taken its seat.
struct SfuCall {
    deployment: Deployment,
    room: String,
    ann_token: String,
    sfu: String,
    ann: Signaling,
    bob: Signaling,
    ann_id: String,
}

async fn call_through_the_sfu(settings: serde_json::Value) -> SfuCall {
    let deployment = Deployment::start().await;
    let (ann_token, _) = deployment.signed_up().await;
    let (bob_token, bob_email) = deployment.signed_up().await;
    let room = deployment.post("/v1/rooms", Some(&ann_token), settings, StatusCode::CREATED).await;
    let room = room["id"].as_str().unwrap().to_owned();
    deployment
        .post(&format!("/v1/rooms/{room}/members"), Some(&ann_token), json!({"email": bob_email}), StatusCode::CREATED)
        .await;

    let join = deployment.post(&format!("/v1/rooms/{room}/join"), Some(&ann_token), json!({}), StatusCode::OK).await;
    let (mut ann, _) = Signaling::join(join["gateway_url"].as_str().unwrap(), join["ticket"].as_str().unwrap()).await;
    let sfu = ann
        .next_of_within(Duration::from_secs(10), |kind| match kind {
            Kind::MediaChanged(changed) => changed.sfu.map(|sfu| sfu.peer_id),
            _ => None,
        })
        .await
        .expect("the SFU takes its seat in the room");

    let join = deployment.post(&format!("/v1/rooms/{room}/join"), Some(&bob_token), json!({}), StatusCode::OK).await;
    let (bob, welcome) = Signaling::join(join["gateway_url"].as_str().unwrap(), join["ticket"].as_str().unwrap()).await;
    assert_eq!(welcome.sfu.map(|sfu| sfu.peer_id), Some(sfu.clone()), "Bob's welcome names the SFU");
    let ann_id = welcome.peers.iter().map(|peer| peer.peer_id.clone()).collect::<Vec<_>>();
    assert_eq!(ann_id.len(), 1, "Bob sees Ann, not the SFU: {ann_id:?}");
    SfuCall { deployment, room, ann_token, sfu, ann, bob, ann_id: ann_id[0].clone() }
}

/// Publishes the committed VP8 and Opus clips on `signaling`'s `publish` connection to `sfu`,
/// played in real time for `length` by the task returned.
async fn publish_clips(signaling: &mut Signaling, sfu: &str, length: Duration) -> (SenderPeer, JoinHandle<Played>) {
    let mut camera = SenderPeer::new(media_engine()).await;
    let video = sample_track(RtpCodecKind::Video, VIDEO_SSRC, vp8());
    let audio = sample_track(RtpCodecKind::Audio, AUDIO_SSRC, opus());
    let video_sender = camera.add_send_only(Arc::clone(&video)).await;
    let audio_sender = camera.add_send_only(Arc::clone(&audio)).await;
    camera.connect_as(signaling, sfu, "publish").await;
    let (video_pt, audio_pt) =
        (SenderPeer::payload_type(&video_sender).await, SenderPeer::payload_type(&audio_sender).await);
    let playing = tokio::spawn(async move { play_clips(&video, video_pt, &audio, audio_pt, length).await });
    (camera, playing)
}

#[actix_web::test]
async fn a_participant_receives_anothers_camera_and_microphone_through_the_media_server() {
    let settings = json!({"name": "Through the SFU", "media": "sfu"});
    let SfuCall { deployment: _deployment, sfu, mut ann, mut bob, ann_id, .. } = call_through_the_sfu(settings).await;
    // Ann is told of Bob before she offers (every message on her way to the SFU is its own).
    ann.next_of(|kind| matches!(kind, Kind::PeerJoined(_)).then_some(())).await;

    // Ann publishes her camera and microphone to the SFU.
    let (_camera, playing) = publish_clips(&mut ann, &sfu, Duration::from_secs(8)).await;

    // Bob answers the SFU's offer of his subscribe connection and counts what arrives.
    let tracks = receive_through_the_sfu(&mut bob, &sfu).await;
    assert_eq!(tracks.len(), 2, "Ann's camera and microphone");
    assert!(tracks.iter().all(|track| track.stream == ann_id), "named after Ann: {tracks:?}");
    playing.abort();
}

#[actix_web::test]
async fn a_lecture_viewer_publishes_once_the_owner_lets_him_speak() {
    let settings = json!({"name": "Lecture", "media": "sfu", "mode": "lecture"});
    let SfuCall { deployment, room, ann_token, sfu, mut ann, mut bob, .. } = call_through_the_sfu(settings).await;
    let bob_id = ann.next_of(|kind| match kind {
        Kind::PeerJoined(joined) => joined.peer.map(|peer| peer.peer_id),
        _ => None,
    });
    let bob_id = bob_id.await;
    let offer_camera = || async {
        let camera = SenderPeer::new(media_engine()).await;
        camera.add_send_only(sample_track(RtpCodecKind::Video, VIDEO_SSRC, vp8())).await;
        let offer = camera.connection.create_offer(None).await.unwrap();
        camera.connection.set_local_description(offer.clone()).await.unwrap();
        (camera, offer.sdp)
    };
    let publish = |sdp: String| Signal {
        to: sfu.clone(),
        connection: "publish".into(),
        payload: Some(Payload::Sdp(SessionDescription { r#type: "offer".into(), sdp })),
        ..Signal::default()
    };
    let sfu_says = |kind: Kind| match kind {
        Kind::Signal(Signal { payload: Some(payload @ (Payload::Refusal(_) | Payload::Sdp(_))), .. }) => Some(payload),
        _ => None,
    };

    let (_refused_camera, sdp) = offer_camera().await;
    bob.send_signal(publish(sdp)).await;
    match bob.next_of(sfu_says).await {
        Payload::Refusal(refusal) => assert_eq!(refusal.code, "not_allowed_to_publish"),
        other => panic!("a viewer's offer is refused, not {other:?}"),
    }

    let speakers = format!("/v1/rooms/{room}/speakers");
    deployment.post(&speakers, Some(&ann_token), json!({"peer_id": bob_id}), StatusCode::NO_CONTENT).await;
    bob.next_of(|kind| matches!(kind, Kind::SpeakGranted(_)).then_some(())).await;
    let (_camera, sdp) = offer_camera().await;
    bob.send_signal(publish(sdp)).await;
    match bob.next_of(sfu_says).await {
        Payload::Sdp(answer) => assert_eq!(answer.r#type, "answer"),
        other => panic!("once let speak, the offer is answered, not {other:?}"),
    }
}

#[actix_web::test]
async fn a_recording_takes_each_publishers_media_from_the_media_server_into_its_own_file() {
    // Before anything is built: without the tools this test cannot judge the file.
    run_tool("ffprobe", &["-version"]);
    let settings = json!({"name": "Recorded through the SFU", "media": "sfu"});
    let SfuCall { deployment, room, ann_token, sfu, mut ann, mut bob, .. } = call_through_the_sfu(settings).await;
    ann.next_of(|kind| matches!(kind, Kind::PeerJoined(_)).then_some(())).await;
    let started = deployment
        .post(&format!("/v1/rooms/{room}/recordings"), Some(&ann_token), json!({}), StatusCode::ACCEPTED)
        .await;
    let recording = started["id"].as_str().unwrap().to_owned();
    ann.next_of(|kind| matches!(kind, Kind::RecordingStarted(_)).then_some(())).await;
    let recorder = bob
        .next_of(|kind| match kind {
            Kind::RecordingStarted(started) => Some(started.recorder_peer_id),
            _ => None,
        })
        .await;

    // Ann publishes to the SFU only: she offers the recorder nothing, the SFU hands it her tracks.
    let (camera, playing) = publish_clips(&mut ann, &sfu, Duration::from_secs(6)).await;
    // Midway, Bob poses as the SFU with an offer on the recorder's `subscribe` connection: the
    // recorder hears only the call's SFU, so Ann's recording goes on.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let posing = SessionDescription { r#type: "offer".into(), sdp: "v=0\r\n".into() };
    let posing = Signal {
        to: recorder,
        connection: "subscribe".into(),
        payload: Some(Payload::Sdp(posing)),
        ..Signal::default()
    };
    bob.send_signal(posing).await;
    let played = playing.await.unwrap();
    deployment.post(&format!("/v1/recordings/{recording}/stop"), Some(&ann_token), json!({}), StatusCode::OK).await;
    camera.connection.close().await.unwrap();

    let ready = deployment.wait_for_recording(&ann_token, &recording, "ready").await;
    let files = ready["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "Ann's file; Bob publishes nothing: {ready}");
    assert_eq!(files[0]["codecs"], json!(["vp8", "opus"]));
    let (_, bytes) = deployment
        .download(&ann_token, &format!("/v1/recordings/{recording}/files/{}", files[0]["id"].as_str().unwrap()))
        .await;
    let downloaded = TempDir::new("sfu-recording");
    let path = downloaded.0.join("ann.webm");
    std::fs::write(&path, &bytes).unwrap();
    let probe = probe(&path);
    println!("sent {:?}; recorded {} bytes, stats {}: {probe:?}", played.media_time, bytes.len(), ready["stats"]);
    let mut codecs = probe.codecs.clone();
    codecs.sort();
    assert_eq!(codecs, [("audio".to_owned(), "opus".to_owned()), ("video".to_owned(), "vp8".to_owned())]);
    let sent_secs = played.media_time.as_secs_f64();
    assert!(probe.duration_secs >= sent_secs - 1.5, "{} s recorded of {sent_secs} s sent", probe.duration_secs);
    let (stdout, stderr) =
        run_tool("ffmpeg", &["-v", "error", "-nostdin", "-i", path.to_str().unwrap(), "-f", "null", "-"]);
    assert_eq!(stdout + &stderr, "", "the file decodes without errors");
}

#[actix_web::test]
async fn an_rtsp_camera_in_an_sfu_room_reaches_a_participant_through_the_media_server() {
    let camera = RtspServer::start(&["--fps", "15", "--gop", "15"]);
    let deployment = Deployment::start().await;
    let owner = deployment.signed_up_user().await;
    let settings = json!({"name": "Yard", "media": "sfu"});
    let room = deployment.post("/v1/rooms", Some(&owner), settings, StatusCode::CREATED).await;
    let room = room["id"].as_str().unwrap().to_owned();
    let attach = json!({"name": "Gate camera", "rtsp_url": camera.url()});
    deployment.post(&format!("/v1/rooms/{room}/cameras"), Some(&owner), attach, StatusCode::CREATED).await;

    // The owner's arrival brings the SFU (an `sfu` room) and the camera (a call is on).
    let join = deployment.post(&format!("/v1/rooms/{room}/join"), Some(&owner), json!({}), StatusCode::OK).await;
    let (mut ann, _) = Signaling::join(join["gateway_url"].as_str().unwrap(), join["ticket"].as_str().unwrap()).await;
    let (mut sfu, mut camera_id) = (None, None);
    while sfu.is_none() || camera_id.is_none() {
        match ann.recv_within(Duration::from_secs(30)).await.expect("the SFU and the camera arrive") {
            Kind::MediaChanged(changed) => sfu = changed.sfu.map(|sfu| sfu.peer_id),
            Kind::PeerJoined(joined) => {
                let peer = joined.peer.unwrap();
                assert_eq!((peer.display_name.as_str(), peer.role.as_str()), ("Gate camera", "camera"));
                camera_id = Some(peer.peer_id);
            }
            Kind::Signal(signal) => panic!("nothing but the SFU signals Ann in an SFU room: {signal:?}"),
            _ => {}
        }
    }
    let (sfu, camera_id) = (sfu.unwrap(), camera_id.unwrap());

    // The camera sent its media to the SFU only: Ann gets it on her subscribe connection.
    let tracks = receive_through_the_sfu(&mut ann, &sfu).await;
    assert_eq!(tracks.len(), 2, "the camera's video and sound: {tracks:?}");
    assert!(tracks.iter().all(|track| track.stream == camera_id), "named after the camera: {tracks:?}");
    let mut codecs: Vec<&str> = tracks.iter().map(|track| track.mime_type.as_str()).collect();
    codecs.sort_unstable();
    assert_eq!(codecs, ["audio/PCMU", "video/H264"]);
    let video = tracks.iter().find(|track| track.kind == RtpCodecKind::Video).unwrap();
    assert!(confab_payload::h264::starts_keyframe(&video.first_payload), "the video starts at a keyframe");
}

#[actix_web::test]
async fn a_recording_takes_a_camera_in_an_sfu_room_from_the_media_server_into_its_matroska_file() {
    run_tool("ffprobe", &["-version"]);
    let camera = RtspServer::start(&["--fps", "15", "--gop", "8"]);
    let deployment = Deployment::start().await;
    let owner = deployment.signed_up_user().await;
    let room =
        deployment.post("/v1/rooms", Some(&owner), json!({"name": "Yard", "media": "sfu"}), StatusCode::CREATED).await;
    let room = room["id"].as_str().unwrap().to_owned();
    let attach = json!({"name": "Gate camera", "rtsp_url": camera.url()});
    deployment.post(&format!("/v1/rooms/{room}/cameras"), Some(&owner), attach, StatusCode::CREATED).await;
    let join = deployment.post(&format!("/v1/rooms/{room}/join"), Some(&owner), json!({}), StatusCode::OK).await;
    let (mut ann, _) = Signaling::join(join["gateway_url"].as_str().unwrap(), join["ticket"].as_str().unwrap()).await;
    let camera_joined = |kind| match kind {
        Kind::PeerJoined(joined) => joined.peer.filter(|peer| peer.role == "camera"),
        _ => None,
    };
    ann.next_of_within(Duration::from_secs(30), camera_joined).await.expect("the camera joins");

    // Ann answers nothing; the camera publishes to the SFU, which sends it to the recorder.
    let started =
        deployment.post(&format!("/v1/rooms/{room}/recordings"), Some(&owner), json!({}), StatusCode::ACCEPTED).await;
    let recording = started["id"].as_str().unwrap().to_owned();
    deployment.wait_for_camera_file(&recording).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    deployment.post(&format!("/v1/recordings/{recording}/stop"), Some(&owner), json!({}), StatusCode::OK).await;

    let ready = deployment.wait_for_recording(&owner, &recording, "ready").await;
    let files = ready["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "the camera's file; Ann sent nothing: {ready}");
    assert_eq!(
        (files[0]["participant"].as_str(), files[0]["content_type"].as_str()),
        (Some("Gate camera"), Some("video/x-matroska"))
    );
    assert_eq!(files[0]["codecs"], json!(["h264", "pcm_mulaw"]));
    let (_, bytes) = deployment
        .download(&owner, &format!("/v1/recordings/{recording}/files/{}", files[0]["id"].as_str().unwrap()))
        .await;
    let downloaded = TempDir::new("sfu-camera");
    let path = downloaded.0.join("camera.mkv");
    std::fs::write(&path, &bytes).unwrap();
    let probe = probe(&path);
    println!("recorded {} bytes of the camera through the SFU: {probe:?}", bytes.len());
    assert!(probe.duration_secs >= 3.0, "{} s in the camera's file", probe.duration_secs);
    let (stdout, stderr) =
        run_tool("ffmpeg", &["-v", "error", "-nostdin", "-i", path.to_str().unwrap(), "-f", "null", "-"]);
    assert_eq!(stdout + &stderr, "", "the file decodes without errors");
}

#[actix_web::test]
async fn when_the_media_server_dies_the_call_and_its_recording_go_on_through_another() {
    run_tool("ffprobe", &["-version"]);
    let settings = json!({"name": "Failover", "media": "sfu"});
    let SfuCall { mut deployment, room, ann_token, sfu, mut ann, mut bob, ann_id } =
        call_through_the_sfu(settings).await;
    // The room is on the first instance; a second one stands by.
    deployment.start_sfu("sfu-standby").await;
    ann.next_of(|kind| matches!(kind, Kind::PeerJoined(_)).then_some(())).await;
    let started = deployment
        .post(&format!("/v1/rooms/{room}/recordings"), Some(&ann_token), json!({}), StatusCode::ACCEPTED)
        .await;
    let recording = started["id"].as_str().unwrap().to_owned();
    for participant in [&mut ann, &mut bob] {
        participant.next_of(|kind| matches!(kind, Kind::RecordingStarted(_)).then_some(())).await;
    }
    let (camera, playing) = publish_clips(&mut ann, &sfu, Duration::from_secs(30)).await;
    receive_through_the_sfu(&mut bob, &sfu).await;
    // Recorded for a while through the first instance.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // kill -9 of the instance serving the room. Both participants are told the other's seat
    // next (not a move back to mesh); Ann publishes to it as a client does, Bob answers its offer.
    deployment.kill_sfu("sfu-stack");
    let died = std::time::Instant::now();
    let told = |kind| match kind {
        Kind::MediaChanged(changed) => Some(changed.sfu.map(|sfu| sfu.peer_id)),
        _ => None,
    };
    let successor = ann.next_of_within(Duration::from_secs(10), told).await.flatten().expect("another SFU");
    assert_ne!(successor, sfu);
    assert_eq!(bob.next_of_within(Duration::from_secs(10), told).await.flatten(), Some(successor.clone()));
    playing.abort();
    camera.connection.close().await.unwrap();
    let (camera, playing) = publish_clips(&mut ann, &successor, Duration::from_secs(8)).await;
    let tracks = receive_through_the_sfu(&mut bob, &successor).await;
    assert!(tracks.iter().all(|track| track.stream == ann_id), "Ann's tracks again: {tracks:?}");
    let back_after = tracks.iter().map(|track| track.first_at.duration_since(died)).max().unwrap();
    println!("media back through the other SFU {} ms after the death", back_after.as_millis());
    assert!(back_after <= Duration::from_secs(5), "media back {back_after:?} after the death (aim: 5 s)");
    let _ = playing.await;
    deployment.post(&format!("/v1/recordings/{recording}/stop"), Some(&ann_token), json!({}), StatusCode::OK).await;
    camera.connection.close().await.unwrap();

    // The recording goes on in a new file of Ann's through the other instance, and says so.
    let partial = deployment.wait_for_recording(&ann_token, &recording, "partial").await;
    println!("{partial}");
    let files = partial["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "Ann's file from each instance: {partial}");
    assert!(partial["reason"].as_str().unwrap().contains("media server"), "the gap is stated: {partial}");
    let downloaded = TempDir::new("sfu-failover-recording");
    for file in files {
        let (_, bytes) = deployment
            .download(&ann_token, &format!("/v1/recordings/{recording}/files/{}", file["id"].as_str().unwrap()))
            .await;
        let path = downloaded.0.join(format!("{}.webm", file["id"].as_str().unwrap()));
        std::fs::write(&path, &bytes).unwrap();
        assert!(probe(&path).duration_secs >= 2.0, "{file}");
    }
}

/// A track received on a subscribe connection.
#[derive(Debug)]
struct ReceivedTrack {
    /// `a=msid`'s stream id: the publisher's peer id.
    stream: String,
    kind: RtpCodecKind,
    mime_type: String,
    first_payload: Vec<u8>,
    /// When its first packet arrived.
    first_at: std::time::Instant,
}

/// Answers the SFU's offers of `participant`'s subscribe connection until every track it offered
/// delivered [`ENOUGH`] packets; what each track was.
async fn receive_through_the_sfu(participant: &mut Signaling, sfu: &str) -> Vec<ReceivedTrack> {
    let (viewer, mut events) = loopback_connection(media_engine()).await;
    let subscribe = |payload| Signal {
        to: sfu.to_owned(),
        connection: "subscribe".into(),
        payload: Some(payload),
        ..Signal::default()
    };
    let (first_packets, mut tracks) = (tokio::sync::mpsc::unbounded_channel(), Vec::new());
    let (first_packet, mut first_packets) = first_packets;
    let mut received: Vec<Arc<AtomicUsize>> = Vec::new();
    let mut section = None;
    let enough = |received: &[Arc<AtomicUsize>]| {
        !received.is_empty() && received.iter().all(|n| n.load(Ordering::Relaxed) >= ENOUGH)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !enough(&received) || tracks.len() < received.len() {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => panic!("received {received:?} packets of {tracks:?}"),
            // The counts grow in the tracks' tasks: look at them again.
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            Some(message) = participant.recv_within(Duration::from_secs(30)) => match message {
                Kind::Signal(Signal { from, connection, payload: Some(Payload::Sdp(offer)), .. }) => {
                    assert_eq!((from.as_str(), connection.as_str(), offer.r#type.as_str()), (sfu, "subscribe", "offer"));
                    viewer.set_remote_description(RTCSessionDescription::offer(offer.sdp).unwrap()).await.unwrap();
                    let answer = viewer.create_answer(None).await.unwrap();
                    viewer.set_local_description(answer.clone()).await.unwrap();
                    section = Some(confab_call::MediaSection::of_candidates(&answer.sdp));
                    participant.send_signal(subscribe(Payload::Sdp(SessionDescription { r#type: "answer".into(), sdp: answer.sdp }))).await;
                }
                Kind::Signal(Signal { payload: Some(Payload::Candidate(candidate)), .. }) => {
                    viewer.add_ice_candidate(confab_call::rtc_candidate(candidate)).await.unwrap();
                }
                _ => {}
            },
            Some(candidate) = events.candidates.recv() => {
                let section = section.as_ref().expect("candidates come after the answer");
                participant.send_signal(subscribe(Payload::Candidate(section.place(candidate)))).await;
            }
            Some(track) = events.tracks.recv() => {
                let (stream, kind) = (track.stream_id().await, track.kind().await);
                let count = Arc::new(AtomicUsize::new(0));
                received.push(Arc::clone(&count));
                let first_packet = first_packet.clone();
                tokio::spawn(async move {
                    while let Some(event) = track.poll().await {
                        let TrackRemoteEvent::OnRtpPacket(packet) = event else { continue };
                        if count.fetch_add(1, Ordering::Relaxed) == 0 {
                            let codec = track.codec(packet.header.ssrc).await.map(|codec| codec.mime_type);
                            let first_payload = packet.payload.to_vec();
                            let first_at = std::time::Instant::now();
                            let received = ReceivedTrack { stream: stream.clone(), kind, mime_type: codec.unwrap_or_default(), first_payload, first_at };
                            let _ = first_packet.send(received);
                        }
                    }
                });
            }
            Some(track) = first_packets.recv() => tracks.push(track),
        }
    }
    tracks
}
