use crate::support::*;
use crate::world::*;

#[actix_web::test]
async fn a_participant_offering_its_media_through_the_gateway_is_recorded_into_a_file() {
    let world = world().await;
    let mut ann = world.participant().await;
    let recording = world.queue_recording("pending").await;
    let _worker = world.start_worker("rec-a");
    let recorder = ann.recording_started().await.recorder_peer_id;

    ann.offer_media(&recorder).await.send().await;

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
    let recorder = ann.recording_started().await.recorder_peer_id;
    let media = ann.offer_media(&recorder).await;
    tokio::join!(send_video(media.video.0.clone(), media.video.1), send_audio(media.audio.0.clone(), media.audio.1));
    ann.signaling.bye().await;
    let files = world.wait_for_files(recording, 1).await;
    assert_eq!(world.status(recording).await.0, "recording", "Ann's file was kept before the stop");
    let (ann_frames, ann_finished) = video_frames_in(&std::env::temp_dir().join(&files[0].1));
    assert!(ann_finished, "Ann's file has its Cues: finished, not cut off");
    media.sender.connection.close().await.unwrap();

    let mut bo = world.participant_named("Bo").await;
    let started = bo.recording_started().await;
    assert_eq!(started.recording_id, recording.to_string());
    let media = bo.offer_media(&started.recorder_peer_id).await;
    for _ in 0..2 {
        let (video, audio) = (media.video.clone(), media.audio.clone());
        tokio::join!(send_video(video.0, video.1), send_audio(audio.0, audio.1));
    }
    tokio::time::sleep(IN_FLIGHT).await;
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
    let recorder = ann.recording_started().await.recorder_peer_id;
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
