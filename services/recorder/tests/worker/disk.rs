use std::time::{Duration, Instant};

use confab_recorder::worker::Worker;
use sha2::Digest;
use uuid::Uuid;

use crate::support::*;
use crate::world::*;

#[actix_web::test]
async fn a_participant_whose_file_cannot_be_written_fails_the_recording_with_the_reason() {
    let logs = captured_logs();
    let world = world().await;
    let (mut ann, welcome) = world.peer("Ann", "member", &Uuid::new_v4().to_string()).await;
    let recording = world.queue_recording("pending").await;
    // The recording's directory cannot be created: a file is in its way.
    let blocked = std::env::temp_dir().join(recording.to_string());
    std::fs::write(&blocked, b"in the way").unwrap();
    let _worker = world.start_worker("rec-a");
    let recorder = ann.recording_started().await.recorder_peer_id;
    ann.offer_garbage(&recorder).await;
    offer_refused(&logs, &welcome.peer_id).await;
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
    let logs = captured_logs();
    let world = world().await;
    let other_room = world.another_room().await;
    let (mut ann, welcome) = world.peer("Ann", "member", &Uuid::new_v4().to_string()).await;
    let mut bo = world.participant_in(other_room, "Bo").await;
    let doomed = world.queue_recording("pending").await;
    let blocked = std::env::temp_dir().join(doomed.to_string());
    std::fs::write(&blocked, b"in the way").unwrap();
    let recording = world.queue_recording_in(other_room, "pending", None).await;
    let _worker = world.start_worker("rec-a");

    let started = bo.recording_started().await;
    assert_eq!(started.recording_id, recording.to_string());
    let media = bo.offer_media(&started.recorder_peer_id).await;
    let send_3_s = || {
        let (video, audio) = (media.video.clone(), media.audio.clone());
        async move { tokio::join!(send_video(video.0, video.1), send_audio(audio.0, audio.1)) }
    };
    send_3_s().await;

    let started = ann.recording_started().await;
    assert_eq!(started.recording_id, doomed.to_string());
    let recorder = &started.recorder_peer_id.to_owned();
    ann.offer_garbage(recorder).await;
    offer_refused(&logs, &welcome.peer_id).await;
    world.stop_recording(doomed).await;
    let (_, reason, _) = world.wait_for_status(doomed, "failed").await;
    assert_eq!(reason.as_deref(), Some("Ann: cannot create the participant's file"));
    assert_eq!(world.status(recording).await.0, "recording", "the other recording goes on");

    send_3_s().await;
    tokio::time::sleep(IN_FLIGHT).await;
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
    let recorder = ann.recording_started().await.recorder_peer_id;
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
    assert_eq!(ann.recording_stopped().await.recorder_peer_id, recorder.as_str());
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

    let (_, reason, recorder) = world.wait_for_status_within(recording, "failed", Duration::from_secs(25)).await;
    assert_eq!(reason.as_deref(), Some("no recorder had enough free disk space to start the recording"));
    assert_eq!(recorder, None);
    assert_eq!(world.started_at(recording).await, None, "never recorded");
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
