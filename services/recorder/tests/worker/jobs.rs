use std::time::Duration;

use confab_recorder::worker::Worker;
use uuid::Uuid;

use crate::world::*;

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

    let started = ann.recording_started().await;
    assert_eq!(started.recording_id, recording.to_string(), "{started:?}");
    // Its log lines about the recording name the API request that started it.
    let claimed = logged(&logs, "recording claimed", &recording.to_string()).await;
    assert_eq!(claimed["span"]["request.id"], request_id, "{claimed}");
    let (_, _, recorder) = world.wait_for_status(recording, "recording").await;
    assert_eq!(recorder.as_deref(), Some("rec-a"));
    assert!(world.started_at(recording).await.is_some());

    world.stop_recording(recording).await;
    let stopped = ann.recording_stopped().await;
    assert_eq!(stopped.recording_id, recording.to_string());
    let (_, reason, recorder) = world.wait_for_status(recording, "failed").await;
    assert_eq!(reason.as_deref(), Some("no media was received"), "nobody sent media in this test");
    assert_eq!(recorder, None);
    assert!(pending_jobs(&world).await.is_empty(), "the job is acknowledged");
}

#[actix_web::test]
async fn a_recording_whose_room_is_deleted_mid_call_is_still_finished_and_the_recorder_goes_on() {
    let world = world().await;
    let mut ann = world.participant().await;
    let _worker = world.start_worker("rec-a");
    let recording = world.queue_recording("pending").await;
    assert_eq!(ann.recording_started().await.recording_id, recording.to_string());
    world.wait_for_status(recording, "recording").await;

    // What the API does on `DELETE /v1/rooms/{id}` without `delete_recordings`: in one
    // transaction the room goes and its recording is asked to stop; then the gateways are told.
    let mut tx = world.db.begin().await.unwrap();
    sqlx::query("delete from rooms where id = $1").bind(world.room).execute(&mut *tx).await.unwrap();
    sqlx::query(
        "update recordings set status = 'finalizing', stop_requested_at = now(), updated_at = now() where id = $1",
    )
    .bind(recording)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let redis = redis::aio::ConnectionManager::new(redis::Client::open(env("REDIS_URL")).unwrap()).await.unwrap();
    let close = confab_api::control::Control::CloseRoom { room_id: confab_domain::RoomId::from_uuid(world.room) };
    confab_api::control::ControlBus::new(redis, &world.prefix).send(&close, "req-room-delete").await;

    let (_, reason, recorder) = world.wait_for_status(recording, "failed").await;
    assert_eq!(reason.as_deref(), Some("no media was received"), "nobody sent media in this test");
    assert_eq!(recorder, None);
    let room: Uuid = sqlx::query_scalar("select room_id from recordings where id = $1")
        .bind(recording)
        .fetch_one(&world.db)
        .await
        .unwrap();
    assert_eq!(room, world.room, "the row still names the deleted room");

    let other_room = world.another_room().await;
    let _bob = world.participant_in(other_room, "Bob").await;
    let next = world.queue_recording_in(other_room, "pending", None).await;
    world.wait_for_status(next, "recording").await;
}

#[actix_web::test]
async fn a_recording_stopped_before_any_recorder_took_it_is_left_alone() {
    let world = world().await;
    let recording = world.queue_recording("failed").await;
    let _worker = world.start_worker("rec-a");
    let stream = confab_domain::keys::recording_jobs(&world.prefix);
    confab_testkit::eventually("the job is acknowledged", Duration::from_secs(5), || async {
        let left: i64 = redis::cmd("XLEN").arg(&stream).query_async(&mut world.redis().await).await.unwrap();
        (left == 0).then_some(())
    })
    .await;
    assert_eq!(world.status(recording).await.0, "failed");
}

#[actix_web::test]
async fn the_job_of_a_dead_recorder_is_taken_over() {
    let world = world().await;
    let mut ann = world.participant().await;
    let recording = world.recording_of_a_dead_recorder().await;

    let _survivor = world.start_worker("rec-b");
    assert_eq!(ann.recording_started().await.recording_id, recording.to_string());
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
async fn a_job_seen_before_its_row_is_committed_is_still_recorded_at_once() {
    let world = world().await;
    let mut ann = world.participant().await;
    // A recorder that would take 30 s to notice a dropped job.
    let mut settings = world.worker("rec-a").settings;
    settings.reclaim_after = Duration::from_secs(30);
    let _worker = start(Worker::build(settings).unwrap());
    world.wait_for_recorder("rec-a").await;
    // The API's order: the job first, then the row's commit.
    let recording = Uuid::new_v4();
    let _: String =
        confab_common::recording_jobs::add(&world.prefix, &recording.to_string(), &world.room.to_string(), None)
            .query_async(&mut world.redis().await)
            .await
            .unwrap();
    // The recorder reads the job (it is pending, delivered to rec-a) while the row is not there;
    // the commit comes 300 ms after that.
    confab_testkit::eventually("rec-a reads the job", Duration::from_secs(5), || async {
        (!pending_jobs(&world).await.is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::query("insert into recordings (id, room_id) values ($1, $2)")
        .bind(recording)
        .bind(world.room)
        .execute(&world.db)
        .await
        .unwrap();
    assert_eq!(ann.recording_started().await.recording_id, recording.to_string());
    world.wait_for_status(recording, "recording").await;
}

/// The jobs a recorder has read and not acknowledged yet (`XPENDING`, up to 10).
async fn pending_jobs(world: &World) -> Vec<redis::Value> {
    redis::cmd("XPENDING")
        .arg(confab_domain::keys::recording_jobs(&world.prefix))
        .arg(confab_recorder::jobs::GROUP)
        .arg("-")
        .arg("+")
        .arg(10)
        .query_async(&mut world.redis().await)
        .await
        .unwrap()
}
