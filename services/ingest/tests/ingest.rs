//! The ingest worker against real Postgres, Redis and a GStreamer RTSP server on loopback: a
//! camera is pulled only while its room has a call, reports what it streams, fails with a clear
//! reason (credentials, codec, forbidden address), reconnects when its server goes away, stalls
//! or comes back, and moves to another worker when its worker dies.

use std::time::Duration;

use confab_ingest::frames::{G711, MediaFrame};
use confab_ingest::store::CameraId;
use confab_testkit::eventually;

mod support;

use support::*;

const SOON: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread")]
async fn a_camera_is_pulled_while_its_room_has_a_call_and_reports_what_it_streams() {
    let world = world().await;
    let server = RtspServer::start(&["--fps", "15"]);
    let camera = world.add_camera("Lobby", &server.url(), None).await;
    let worker = world.worker(world.settings("ingest-a"));

    // A recorder alone is not a call: a scan made after it joined leaves the camera alone.
    world.join("rec-1", "recorder").await;
    worker.worker.scan().await;
    assert!(worker.worker.pulled().is_empty(), "pulled a camera nobody watches");
    assert_eq!(world.lease_holder(camera).await, None);
    assert!(world.status(camera).await.is_none());

    world.join("p-1", "member").await;
    let connected = world.wait_for(camera, "connected", SOON, |s| s.state == "connected").await;
    assert_eq!(connected.codec.as_deref(), Some("h264"));
    assert_eq!((connected.width, connected.height), (Some(320), Some(240)));
    assert_eq!(connected.audio.as_deref(), Some("pcmu"));
    assert_eq!(connected.worker_id.as_deref(), Some("ingest-a"));
    assert_eq!(connected.last_error, None);
    assert_eq!(world.lease_holder(camera).await.as_deref(), Some("ingest-a"));

    // The first measurement may still hold the test server's start-up (GStreamer on a loaded
    // machine): the rate must settle near the 15 fps served.
    let near_15_fps = |s: &StatusRow| s.frame_rate.is_some_and(|rate| (12.0..=18.0).contains(&rate));
    let measured = world.wait_for(camera, "measured a frame rate near the 15 fps served", SOON, near_15_fps).await;
    assert!(measured.bitrate_kbps.unwrap() > 0, "{measured:?}");

    // Keyframes come as NAL units with SPS and PPS in front; audio as PCMU.
    let mut frames = worker.worker.subscribe(camera).expect("the worker pulls the camera");
    let (mut keyframe, mut audio) = (None, None);
    let deadline = tokio::time::Instant::now() + SOON;
    while keyframe.is_none() || audio.is_none() {
        let frame = tokio::time::timeout_at(deadline, frames.recv()).await.expect("no keyframe or audio").unwrap();
        match frame {
            MediaFrame::Video(v) if v.keyframe => keyframe = Some(v),
            MediaFrame::Audio(a) => audio = Some(a),
            MediaFrame::Video(_) => {}
        }
    }
    let keyframe = keyframe.unwrap();
    assert!(keyframe.nal_units.iter().all(|unit| !unit.is_empty()), "whole NAL units, nothing between them");
    let types: Vec<u8> = keyframe.nal_units.iter().map(|unit| unit[0] & 0x1f).collect();
    let (sps, pps, idr) = (pos(&types, 7), pos(&types, 8), pos(&types, 5));
    assert!(sps < idr && pps < idr, "keyframe NAL units {types:?}");
    let audio = audio.unwrap();
    assert_eq!(audio.codec, G711::Pcmu);
    assert!(!audio.payload.is_empty());

    worker.stop().await;
    let idle = world.status(camera).await.unwrap();
    assert_eq!((idle.state.as_str(), idle.worker_id), ("idle", None));
    assert_eq!(world.lease_holder(camera).await, None, "a stopped worker releases its leases");
}

fn pos(types: &[u8], wanted: u8) -> usize {
    types.iter().position(|t| *t == wanted).unwrap_or_else(|| panic!("no NAL unit of type {wanted} in {types:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_room_empties_the_camera_is_let_go() {
    let world = world().await;
    let server = RtspServer::start(&[]);
    let camera = world.add_camera("Lobby", &server.url(), None).await;
    let worker = world.worker(world.settings("ingest-a"));
    world.join("p-1", "member").await;
    world.join("rec-1", "recorder").await;
    world.wait_for(camera, "connected", SOON, |s| s.state == "connected").await;

    world.leave("p-1").await;
    let idle = world.wait_for(camera, "idle", SOON, |s| s.state == "idle").await;
    assert_eq!(idle.worker_id, None);
    assert_eq!(world.lease_holder(camera).await, None);
    assert!(worker.worker.pulled().is_empty());

    // A call again: pulled again.
    world.join("p-2", "member").await;
    world.wait_for(camera, "connected again", SOON, |s| s.state == "connected").await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_fail_with_an_authentication_reason_and_other_cameras_are_unaffected() {
    let world = world().await;
    let server = RtspServer::start(&["--user", "admin", "--password", "right-horse"]);
    let wrong = world.add_camera("Wrong", &server.url(), Some(("admin", "wrong-horse"))).await;
    let none = world.add_camera("Anonymous", &server.url(), None).await;
    let right = world.add_camera("Right", &server.url(), Some(("admin", "right-horse"))).await;
    let worker = world.worker(world.settings("ingest-a"));
    world.join("p-1", "member").await;

    world.wait_for(right, "connected", SOON, |s| s.state == "connected").await;
    for camera in [wrong, none] {
        let failed =
            world.wait_for(camera, "failed and retried", SOON, |s| s.state == "failed" && s.reconnects >= 1).await;
        let reason = failed.last_error.unwrap();
        assert!(reason.contains("authentication failed"), "{reason}");
        assert!(!reason.contains("horse") && !reason.contains("rtsp://"), "{reason}");
    }
    let right = world.status(right).await.unwrap();
    assert_eq!((right.state.as_str(), right.reconnects), ("connected", 0));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_codecs_are_named_in_the_status() {
    let world = world().await;
    let mjpeg = RtspServer::start(&["--video", "mjpeg", "--audio", "none"]);
    let opus = RtspServer::start(&["--audio", "opus"]);
    let mjpeg_camera = world.add_camera("Old", &mjpeg.url(), None).await;
    let opus_camera = world.add_camera("Opus", &opus.url(), None).await;
    let worker = world.worker(world.settings("ingest-a"));
    world.join("p-1", "member").await;

    let failed = world.wait_for(mjpeg_camera, "refused", SOON, |s| s.state == "failed").await;
    assert_eq!(failed.codec.as_deref(), Some("jpeg"), "{failed:?}");
    let reason = failed.last_error.unwrap();
    assert!(reason.contains("unsupported video codec jpeg"), "{reason}");

    // Video is forwarded; audio it cannot forward is reported as such.
    let connected = world.wait_for(opus_camera, "connected", SOON, |s| s.state == "connected").await;
    assert_eq!(connected.audio.as_deref(), Some("opus (not forwarded)"));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_camera_on_a_forbidden_address_is_refused_at_connect_time() {
    let world = world().await;
    let server = RtspServer::start(&[]);
    let camera = world.add_camera("Loopback", &server.url(), None).await;
    let mut settings = world.settings("ingest-a");
    settings.host_policy = confab_common::camera_url::HostPolicy::default();
    let worker = world.worker(settings);
    world.join("p-1", "member").await;
    let failed = world.wait_for(camera, "refused", SOON, |s| s.state == "failed").await;
    let reason = failed.last_error.unwrap();
    assert!(reason.contains("loopback"), "{reason}");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_camera_whose_server_goes_away_reconnects_and_comes_back() {
    let world = world().await;
    let server = RtspServer::start(&[]);
    let camera = world.add_camera("Yard", &server.url(), None).await;
    let worker = world.worker(world.settings("ingest-a"));
    world.join("p-1", "member").await;
    world.wait_for(camera, "connected", SOON, |s| s.state == "connected").await;

    let stopped = server.kill();
    let failed = world.wait_for(camera, "failed", SOON, |s| s.state == "failed" && s.reconnects >= 1).await;
    assert!(failed.last_error.is_some(), "{failed:?}");
    // Still retrying meanwhile.
    let before = failed.reconnects;
    world.wait_for(camera, "retrying", SOON, |s| s.reconnects > before).await;

    let _server = stopped.restart();
    let back = world.wait_for(camera, "connected again", SOON, |s| s.state == "connected").await;
    assert!(back.reconnects >= 2, "{back:?}");
    assert_eq!(back.last_error, None);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_stalls_is_reconnected() {
    let world = world().await;
    let server = RtspServer::start(&[]);
    let camera = world.add_camera("Gate", &server.url(), None).await;
    let worker = world.worker(world.settings("ingest-a"));
    world.join("p-1", "member").await;
    world.wait_for(camera, "connected", SOON, |s| s.state == "connected").await;

    server.pause(true);
    let stalled = world.wait_for(camera, "stalled", SOON, |s| s.state == "failed").await;
    let reason = stalled.last_error.unwrap();
    assert!(reason.contains("stalled"), "{reason}");
    server.pause(false);
    world.wait_for(camera, "connected again", SOON, |s| s.state == "connected" && s.reconnects >= 1).await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn new_video_parameters_mid_stream_show_in_the_status() {
    let world = world().await;
    let server = RtspServer::start(&["--resize-after", "3"]);
    let camera = world.add_camera("Zoom", &server.url(), None).await;
    let worker = world.worker(world.settings("ingest-a"));
    world.join("p-1", "member").await;
    let first = world.wait_for(camera, "connected", SOON, |s| s.state == "connected").await;
    assert_eq!((first.width, first.height), (Some(320), Some(240)));
    let resized = world.wait_for(camera, "resized", SOON, |s| s.width == Some(640)).await;
    assert_eq!((resized.state.as_str(), resized.height, resized.reconnects), ("connected", Some(480), 0));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_worker_takes_over_the_camera_of_a_worker_that_died() {
    let world = world().await;
    let server = RtspServer::start(&[]);
    let camera = world.add_camera("Hall", &server.url(), None).await;
    world.join("p-1", "member").await;

    // Worker A runs on a runtime of its own; dropping that runtime ends all its tasks at once,
    // without letting anything go: as if its process were killed.
    let settings = world.settings("ingest-a");
    let (die, dead) = std::sync::mpsc::channel::<()>();
    let a = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.spawn(async move {
            let worker = std::sync::Arc::new(confab_ingest::worker::Worker::build(settings).unwrap());
            let (_stop, stopped) = tokio::sync::watch::channel(false);
            worker.run(stopped).await;
        });
        dead.recv().unwrap();
        runtime.shutdown_background();
    });
    world.wait_for(camera, "connected under A", SOON, |s| s.state == "connected").await;

    // A is alive: it renews its lease (which runs down otherwise), and a scan of B's after that
    // leaves the camera to it.
    let b = world.worker(world.settings("ingest-b"));
    let (first_ttl, since) = (world.lease_ttl(camera).await, tokio::time::Instant::now());
    eventually("A renews its lease", SOON, || async {
        let unrenewed = first_ttl.saturating_sub(since.elapsed());
        (world.lease_ttl(camera).await > unrenewed + Duration::from_millis(100)).then_some(())
    })
    .await;
    b.worker.scan().await;
    assert_eq!(world.lease_holder(camera).await.as_deref(), Some("ingest-a"), "B took a live worker's camera");
    assert!(b.worker.pulled().is_empty());

    die.send(()).unwrap();
    a.join().unwrap();
    let taken = world
        .wait_for(camera, "taken over by B", SOON, |s| {
            s.state == "connected" && s.worker_id.as_deref() == Some("ingest-b")
        })
        .await;
    assert_eq!(taken.codec.as_deref(), Some("h264"));
    assert_eq!(world.lease_holder(camera).await.as_deref(), Some("ingest-b"));
    assert_eq!(b.worker.pulled(), vec![camera]);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_camera_is_let_go() {
    let world = world().await;
    let server = RtspServer::start(&[]);
    let camera: CameraId = world.add_camera("Temp", &server.url(), None).await;
    let worker = world.worker(world.settings("ingest-a"));
    world.join("p-1", "member").await;
    world.wait_for(camera, "connected", SOON, |s| s.state == "connected").await;
    sqlx::query("delete from cameras where id = $1").bind(camera).execute(&world.db).await.unwrap();
    eventually("the deleted camera is let go", SOON, || async {
        (worker.worker.pulled().is_empty() && world.lease_holder(camera).await.is_none()).then_some(())
    })
    .await;
    assert!(world.status(camera).await.is_none());
    worker.stop().await;
}
