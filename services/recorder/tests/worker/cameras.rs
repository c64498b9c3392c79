use confab_recorder::worker::Worker;
use uuid::Uuid;

use crate::support::*;
use crate::world::*;

#[actix_web::test]
async fn a_camera_offering_h264_and_pcmu_through_the_gateway_is_recorded_into_a_matroska_file() {
    let world = world().await;
    let camera_user = format!("camera-{}", Uuid::new_v4());
    let (mut camera, welcome) = world.peer("Front door", "camera", &camera_user).await;
    let camera_peer = welcome.peer_id;
    let _ann = world.participant().await;
    let recording = world.queue_recording("pending").await;
    let _worker = world.start_worker("rec-a");
    // The gateway tells cameras about the recording as it tells participants.
    let started = camera.recording_started().await;
    let recorder = started.recorder_peer_id;

    let clip_dir = TempDir::new("camera-clip");
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
    let dir = TempDir::new("camera-crash");
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
