//! Recordings through the API: starting is idempotent even under a race and queues exactly one
//! job; stopping is a no-op the second time; only the room's people see or download files;
//! downloads honour Range and ETag; deleting removes the files. Downloads and deletes run
//! against both storages: a local directory and S3 (the server `deploy/local/test` starts).

use awc::http::StatusCode;
use confab_storage::Key;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, cuttable_proxy, spawn_app, spawn_app_on_s3, spawn_app_with};

pub struct Room {
    pub id: String,
    pub owner: String,
    pub member: String,
    pub stranger: String,
}

/// A room with its owner, a member, and a stranger to it (access tokens).
pub async fn room_with_people(app: &TestApp) -> Room {
    let (_, owner) = app.logged_in_user().await;
    let owner = owner["access_token"].as_str().unwrap().to_owned();
    let id = app.create_room(&owner, "Recorded").await;
    let (member_email, member) = app.logged_in_user().await;
    let added = app.post(&format!("/v1/rooms/{id}/members"), Some(&owner), json!({"email": member_email})).await;
    assert_eq!(added.status, StatusCode::CREATED);
    let (_, stranger) = app.logged_in_user().await;
    Room {
        id,
        owner,
        member: member["access_token"].as_str().unwrap().to_owned(),
        stranger: stranger["access_token"].as_str().unwrap().to_owned(),
    }
}

async fn queued_jobs(app: &TestApp) -> Vec<(String, String)> {
    let jobs = app.recording_jobs().await;
    jobs.into_iter().map(|job| (job["recording_id"].clone(), job["room_id"].clone())).collect()
}

#[actix_web::test]
async fn starting_twice_or_in_a_race_makes_one_recording_and_one_job() {
    let app = spawn_app().await;
    let room = room_with_people(&app).await;
    let path = format!("/v1/rooms/{}/recordings", room.id);

    let first = app.post(&path, Some(&room.owner), json!({})).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert_eq!(first.body["status"], "pending");
    assert_eq!(first.body["room_id"], room.id);
    let racing = futures_util::future::join_all((0..8).map(|_| app.post(&path, Some(&room.owner), json!({})))).await;
    for reply in racing {
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        assert_eq!(reply.body["id"], first.body["id"], "the running recording is returned");
    }
    assert_eq!(queued_jobs(&app).await, vec![(first.body["id"].as_str().unwrap().to_owned(), room.id.clone())]);

    // A fresh room, raced from the start: still one recording.
    let other = app.create_room(&room.owner, "Raced").await;
    let other_path = format!("/v1/rooms/{other}/recordings");
    let racing =
        futures_util::future::join_all((0..8).map(|_| app.post(&other_path, Some(&room.owner), json!({})))).await;
    let ids: std::collections::BTreeSet<String> =
        racing.iter().map(|r| r.body["id"].as_str().expect("202 with a recording").to_owned()).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(queued_jobs(&app).await.len(), 2);
}

#[actix_web::test]
async fn members_may_look_but_not_start_stop_or_delete_and_strangers_see_nothing() {
    let app = spawn_app().await;
    let room = room_with_people(&app).await;
    let start = format!("/v1/rooms/{}/recordings", room.id);
    assert_eq!(app.post(&start, Some(&room.member), json!({})).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.post(&start, Some(&room.stranger), json!({})).await.status, StatusCode::NOT_FOUND);
    let recording = app.post(&start, Some(&room.owner), json!({})).await.body["id"].as_str().unwrap().to_owned();

    let one = format!("/v1/recordings/{recording}");
    let seen = app.get(&one, Some(&room.member)).await;
    assert_eq!((seen.status, seen.body["can_manage"].clone()), (StatusCode::OK, json!(false)));
    assert_eq!(app.get(&one, Some(&room.owner)).await.body["can_manage"], true);
    assert_eq!(app.post(&format!("{one}/stop"), Some(&room.member), json!({})).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.send("DELETE", &one, Some(&room.member), None).await.status, StatusCode::FORBIDDEN);
    for (method, path) in [("GET", one.clone()), ("POST", format!("{one}/stop")), ("DELETE", one.clone())] {
        let reply = app.send(method, &path, Some(&room.stranger), None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(reply.code(), "not_found");
    }
    let mine = app.get("/v1/recordings", Some(&room.stranger)).await;
    assert_eq!(mine.body["recordings"], json!([]));
    let theirs = app.get(&format!("/v1/recordings?room_id={}", room.id), Some(&room.member)).await;
    assert_eq!(theirs.body["recordings"][0]["id"], recording.as_str());

    for hostile in ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "%2e%2e%2fetc"] {
        assert_eq!(
            app.get(&format!("/v1/recordings/{hostile}"), Some(&room.owner)).await.status,
            StatusCode::NOT_FOUND
        );
    }
    let bad_filter = app.get("/v1/recordings?room_id=nope", Some(&room.owner)).await;
    assert_eq!((bad_filter.status, bad_filter.code()), (StatusCode::BAD_REQUEST, "invalid_room_id"));
    let bad_limit = app.get("/v1/recordings?limit=0", Some(&room.owner)).await;
    assert_eq!(bad_limit.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.get("/v1/recordings", None).await.status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn stopping_finalizes_a_running_recording_once() {
    let app = spawn_app().await;
    let room = room_with_people(&app).await;
    // Taken by a recorder and recording.
    let recording = app.insert_recording(room.id.parse().unwrap(), "recording").await;
    let stop = format!("/v1/recordings/{recording}/stop");
    let stopped = app.post(&stop, Some(&room.owner), json!({})).await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.body);
    assert_eq!(stopped.body["status"], "finalizing");
    let again = app.post(&stop, Some(&room.owner), json!({})).await;
    assert_eq!((again.status, again.body["status"].clone()), (StatusCode::OK, json!("finalizing")));

    // A new one may start while the last one finalizes; stopped before any recorder took it,
    // it ends at once with a reason.
    let start = format!("/v1/rooms/{}/recordings", room.id);
    let pending = app.post(&start, Some(&room.owner), json!({})).await.body["id"].as_str().unwrap().to_owned();
    assert_ne!(pending, recording.to_string());
    let ended = app.post(&format!("/v1/recordings/{pending}/stop"), Some(&room.owner), json!({})).await;
    assert_eq!(ended.body["status"], "failed");
    assert!(ended.body["reason"].as_str().unwrap().contains("before"));
    assert!(ended.body["ended_at"].is_string());
}

#[actix_web::test]
async fn files_download_from_a_local_directory_as_attachments_with_range_and_etag_and_only_for_the_room() {
    downloads_with_range_and_etag_only_for_the_room(spawn_app().await).await;
}

#[actix_web::test]
async fn files_download_from_s3_as_attachments_with_range_and_etag_and_only_for_the_room() {
    downloads_with_range_and_etag_only_for_the_room(spawn_app_on_s3().await).await;
}

async fn downloads_with_range_and_etag_only_for_the_room(app: TestApp) {
    let room = room_with_people(&app).await;
    let recording = app.insert_recording(room.id.parse().unwrap(), "ready").await;
    let content: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let file = app.insert_recording_file(recording, &content).await;
    let url = app.url(&format!("/v1/recordings/{recording}/files/{file}"));
    // What a recorder adds up from its participants.
    sqlx::query(
        "update recordings set packets = 900, packets_lost = 3, keyframe_requests = 2, av_drift_ms = 17 where id = $1",
    )
    .bind(recording)
    .execute(&app.db)
    .await
    .unwrap();

    let listed = app.get(&format!("/v1/recordings/{recording}"), Some(&room.member)).await.body;
    assert_eq!(listed["files"][0]["id"], file.to_string());
    assert_eq!(listed["files"][0]["bytes"], 10_000);
    assert_eq!(listed["files"][0]["codecs"], json!(["vp8", "opus"]));
    assert_eq!(listed["files"][0]["recovered"], false);
    let stats = json!({"files": 1, "bytes": 10_000, "duration_ms": 6000, "packets": 900, "packets_lost": 3,
                       "keyframe_requests": 2, "av_drift_ms": 17});
    assert_eq!(listed["stats"], stats);

    let get = |range: Option<&str>| {
        let request = app.client.get(&url).bearer_auth(&room.member);
        match range {
            Some(range) => request.insert_header(("Range", range.to_owned())),
            None => request,
        }
    };
    let header = |res: &awc::ClientResponse<_>, name: &str| {
        res.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
    };
    let mut whole = get(None).send().await.unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(header(&whole, "content-type"), "video/webm");
    assert_eq!(header(&whole, "content-length"), "10000");
    assert!(header(&whole, "content-disposition").starts_with("attachment; filename=\"Ann_Lee-"));
    assert_eq!(header(&whole, "x-content-type-options"), "nosniff");
    let etag = header(&whole, "etag");
    assert!(!etag.is_empty());
    assert_eq!(whole.body().limit(1 << 20).await.unwrap().to_vec(), content);

    for (range, content_range, bytes) in [
        ("bytes=100-199", "bytes 100-199/10000", &content[100..200]),
        ("bytes=9990-", "bytes 9990-9999/10000", &content[9990..]),
        ("bytes=-10", "bytes 9990-9999/10000", &content[9990..]),
        ("bytes=9000-20000", "bytes 9000-9999/10000", &content[9000..]),
    ] {
        let mut part = get(Some(range)).send().await.unwrap();
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(header(&part, "content-range"), content_range, "{range}");
        assert_eq!(header(&part, "content-length"), bytes.len().to_string(), "{range}");
        assert_eq!(part.body().await.unwrap().to_vec(), bytes, "{range}");
    }
    let beyond = get(Some("bytes=20000-")).send().await.unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&beyond, "content-range"), "bytes */10000");
    let unchanged = get(None).insert_header(("If-None-Match", etag.clone())).send().await.unwrap();
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    let changed = get(None).insert_header(("If-None-Match", "\"other\"")).send().await.unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let still_same = get(Some("bytes=0-9")).insert_header(("If-Range", etag)).send().await.unwrap();
    assert_eq!(still_same.status(), StatusCode::PARTIAL_CONTENT);
    let stale = get(Some("bytes=0-9")).insert_header(("If-Range", "\"other\"")).send().await.unwrap();
    assert_eq!((stale.status(), header(&stale, "content-length")), (StatusCode::OK, "10000".into()));

    let owner = app.client.get(&url).bearer_auth(&room.owner).send().await.unwrap();
    assert_eq!(owner.status(), StatusCode::OK);
    let admin = app.client.get(&url).bearer_auth(admin_token(&app).await).send().await.unwrap();
    assert_eq!(admin.status(), StatusCode::OK);
    let stranger = app.client.get(&url).bearer_auth(&room.stranger).send().await.unwrap();
    assert_eq!(stranger.status(), StatusCode::NOT_FOUND);
    let anonymous = app.client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let other_file = app.get(&format!("/v1/recordings/{recording}/files/{}", Uuid::new_v4()), Some(&room.member)).await;
    assert_eq!(other_file.status, StatusCode::NOT_FOUND);

    // Gone from storage: a clear 404, not a 500.
    app.storage.delete_all_under(&Key::parse(recording.to_string()).unwrap()).await.unwrap();
    assert_eq!(
        app.get(&format!("/v1/recordings/{recording}/files/{file}"), Some(&room.member)).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn admin_token(app: &TestApp) -> String {
    let (email, _) = app.logged_in_user().await;
    sqlx::query("update users set role = 'admin' where email = $1").bind(&email).execute(&app.db).await.unwrap();
    app.login(&email, crate::helpers::PASSWORD).await.body["access_token"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn file_paths_outside_the_recordings_directory_cannot_be_stored() {
    let app = spawn_app().await;
    let room = room_with_people(&app).await;
    let recording = app.insert_recording(room.id.parse().unwrap(), "ready").await;
    for hostile in ["/etc/passwd", "../../etc/passwd", "a/../../b"] {
        let stored = sqlx::query(
            "insert into recording_files (id, recording_id, peer_id, participant, path) values ($1, $2, 'p', 'P', $3)",
        )
        .bind(Uuid::new_v4())
        .bind(recording)
        .bind(hostile)
        .execute(&app.db)
        .await;
        assert!(stored.is_err(), "{hostile} was accepted");
    }
}

#[actix_web::test]
async fn deleting_a_recording_or_a_room_with_its_recordings_removes_local_files_but_never_a_running_one() {
    deleting_removes_the_files_but_never_a_running_one(spawn_app().await).await;
}

#[actix_web::test]
async fn deleting_a_recording_or_a_room_with_its_recordings_removes_s3_objects_but_never_a_running_one() {
    deleting_removes_the_files_but_never_a_running_one(spawn_app_on_s3().await).await;
}

async fn deleting_removes_the_files_but_never_a_running_one(app: TestApp) {
    let room = room_with_people(&app).await;
    let room_id: Uuid = room.id.parse().unwrap();
    let running = app.insert_recording(room_id, "recording").await;
    let conflict = app.send("DELETE", &format!("/v1/recordings/{running}"), Some(&room.owner), None).await;
    assert_eq!((conflict.status, conflict.code()), (StatusCode::CONFLICT, "recording_running"));

    let done = app.insert_recording(room_id, "partial").await;
    let files = [app.insert_recording_file(done, b"data").await, app.insert_recording_file(done, b"more").await];
    let kept = app.insert_recording(room_id, "ready").await;
    let kept_file = app.insert_recording_file(kept, b"data").await;
    for file in files {
        assert!(app.stored(done, file).await);
    }
    let deleted = app.send("DELETE", &format!("/v1/recordings/{done}"), Some(&room.owner), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    for file in files {
        assert!(!app.stored(done, file).await, "the files went with the recording");
    }
    assert!(app.stored(kept, kept_file).await, "another recording's files stay");
    assert_eq!(app.get(&format!("/v1/recordings/{done}"), Some(&room.owner)).await.status, StatusCode::NOT_FOUND);

    // Asked to take its recordings along, the room waits for the running one to be stopped.
    let delete_room = format!("/v1/rooms/{}?delete_recordings=true", room.id);
    let refused = app.send("DELETE", &delete_room, Some(&room.owner), None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "recording_running"));
    assert_eq!(app.get(&format!("/v1/rooms/{}", room.id), Some(&room.owner)).await.status, StatusCode::OK);
    assert!(app.stored(kept, kept_file).await);
    sqlx::query("update recordings set status = 'ready' where id = $1").bind(running).execute(&app.db).await.unwrap();
    assert_eq!(app.send("DELETE", &delete_room, Some(&room.owner), None).await.status, StatusCode::NO_CONTENT);
    assert!(!app.stored(kept, kept_file).await, "the room took its recordings along");
    let left: i64 = sqlx::query_scalar("select count(*) from recordings").fetch_one(&app.db).await.unwrap();
    assert_eq!(left, 0);
    let audit: Vec<String> = sqlx::query_scalar("select action from audit_log where action like 'recording.%'")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(audit, vec!["recording.delete".to_owned()]);
}

#[actix_web::test]
async fn admins_list_every_recording() {
    let app = spawn_app().await;
    let room = room_with_people(&app).await;
    let recording = app.insert_recording(room.id.parse().unwrap(), "ready").await;
    let admin = admin_token(&app).await;
    let listed: Value = app.get("/v1/admin/recordings?limit=1", Some(&admin)).await.body;
    assert_eq!(listed["recordings"][0]["id"], recording.to_string());
    assert_eq!(app.get("/v1/admin/recordings", Some(&room.owner)).await.status, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn a_recording_whose_job_cannot_be_queued_is_refused_with_503_and_leaves_no_row() {
    // This app reaches Redis through a proxy that the test cuts once the room is set up.
    let redis_url = std::env::var("REDIS_URL").unwrap();
    let upstream = redis_url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let (port, cut) = cuttable_proxy(&upstream).await;
    let app = spawn_app_with(|settings| settings.redis_url = format!("redis://127.0.0.1:{port}/")).await;
    let room = room_with_people(&app).await;
    cut.send(true).unwrap();

    let started = app.post(&format!("/v1/rooms/{}/recordings", room.id), Some(&room.owner), json!({})).await;
    assert_eq!(started.status, StatusCode::SERVICE_UNAVAILABLE, "{}", started.body);
    assert!(started.body["error"]["code"].is_string(), "{}", started.body);
    let rows: i64 = sqlx::query_scalar("select count(*) from recordings").fetch_one(&app.db).await.unwrap();
    assert_eq!(rows, 0, "nothing is left pending without a job");
}

#[actix_web::test]
async fn a_cameras_file_is_listed_beside_the_participants_and_downloads_as_matroska() {
    let app = spawn_app().await;
    let room = room_with_people(&app).await;
    let recording = app.insert_recording(room.id.parse().unwrap(), "ready").await;
    let ann = app.insert_recording_file(recording, b"webm bytes").await;
    let camera = app.insert_recorded_file(recording, b"matroska bytes", "Front door", "video/x-matroska").await;

    let listed = app.get(&format!("/v1/recordings/{recording}"), Some(&room.member)).await.body;
    let files = listed["files"].as_array().unwrap();
    let by_id = |id: Uuid| files.iter().find(|f| f["id"] == id.to_string()).expect("listed").clone();
    assert_eq!(files.len(), 2);
    assert_eq!(
        (by_id(ann)["participant"].clone(), by_id(ann)["content_type"].clone()),
        (json!("Ann Lee"), json!("video/webm"))
    );
    let camera_file = by_id(camera);
    assert_eq!(camera_file["participant"], "Front door");
    assert_eq!(camera_file["content_type"], "video/x-matroska");
    assert_eq!(camera_file["codecs"], json!(["h264", "pcm_mulaw"]));

    let mut download = app
        .client
        .get(app.url(&format!("/v1/recordings/{recording}/files/{camera}")))
        .bearer_auth(&room.member)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    let header = |name: &str| download.headers().get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "video/x-matroska");
    let disposition = header("content-disposition");
    assert!(
        disposition.starts_with("attachment; filename=\"Front_door-") && disposition.ends_with(".mkv\""),
        "{disposition}"
    );
    assert_eq!(download.body().await.unwrap().to_vec(), b"matroska bytes");
}
