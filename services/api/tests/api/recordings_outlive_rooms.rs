//! A deleted room's recordings stay, for the people who were in the room while they were made:
//! their rows and files survive the room, they see, list and download them, people who joined
//! the room later do not, and the room's owner and moderators of the time may still delete them.
//! Only `?delete_recordings=true` on the room's delete (its owner's or an admin's) takes them
//! along; any other query is a 400, and the OpenAPI document says exactly that. Recordings made
//! before the access list existed get theirs from their room's members when the migration runs.

use awc::http::StatusCode;
use serde_json::json;
use sqlx::Executor;
use uuid::Uuid;

use crate::helpers::{Reply, TestApp, spawn_app};
use crate::recordings::{Room, room_with_people};

/// Adds a fresh user to `room` (as its owner does); their access token.
async fn new_member(app: &TestApp, room: &Room) -> String {
    let (email, login) = app.logged_in_user().await;
    let added = app.post(&format!("/v1/rooms/{}/members", room.id), Some(&room.owner), json!({"email": email})).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    login["access_token"].as_str().unwrap().to_owned()
}

async fn listed(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let reply = app.get(&format!("/v1/recordings{query}"), Some(token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["recordings"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

async fn delete(app: &TestApp, path: &str, token: &str) -> Reply {
    app.send("DELETE", path, Some(token), None).await
}

async fn rows(app: &TestApp, recording: Uuid) -> i64 {
    sqlx::query_scalar("select count(*) from recordings where id = $1")
        .bind(recording)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[actix_web::test]
async fn a_deleted_rooms_recordings_stay_for_its_members_at_recording_time_and_no_one_else() {
    let app = spawn_app().await;
    let room = room_with_people(&app).await;
    let room_id: Uuid = room.id.parse().unwrap();
    let recording = app.insert_recording(room_id, "ready").await;
    let file = app.insert_recording_file(recording, b"the call").await;
    let latecomer = new_member(&app, &room).await;
    let (_, admin) = app.admin_token().await;
    assert_eq!(listed(&app, &latecomer, "").await, vec![recording.to_string()], "the room's members see it now");

    let deleted = delete(&app, &format!("/v1/rooms/{}", room.id), &room.owner).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    assert_eq!(app.get(&format!("/v1/rooms/{}", room.id), Some(&room.owner)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(rows(&app, recording).await, 1);
    assert!(app.stored(recording, file).await, "the file stays in storage");

    let one = format!("/v1/recordings/{recording}");
    let download = format!("{one}/files/{file}");
    for who in [&room.owner, &room.member, &admin] {
        let got = app.get(&one, Some(who)).await;
        assert_eq!((got.status, got.body["room_id"].clone()), (StatusCode::OK, json!(room.id)));
        let bytes = app.get(&download, Some(who)).await;
        assert_eq!((bytes.status, bytes.raw.as_slice()), (StatusCode::OK, b"the call".as_slice()));
    }
    for (who, can_manage) in [(&room.owner, true), (&room.member, false), (&admin, true)] {
        assert_eq!(app.get(&one, Some(who)).await.body["can_manage"], can_manage);
    }
    let owners_list = app.get("/v1/recordings", Some(&room.owner)).await.body;
    assert_eq!(owners_list["recordings"][0]["can_manage"], true, "the list says it too");
    for who in [&room.owner, &room.member] {
        assert_eq!(listed(&app, who, "").await, vec![recording.to_string()]);
        assert_eq!(listed(&app, who, &format!("?room_id={}", room.id)).await, vec![recording.to_string()]);
    }
    for who in [&latecomer, &room.stranger] {
        assert_eq!(app.get(&one, Some(who)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&download, Some(who)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(delete(&app, &one, who).await.status, StatusCode::NOT_FOUND);
        assert!(listed(&app, who, "").await.is_empty());
    }

    // The owner at recording time may still delete it; a plain member of then may not.
    let refused = delete(&app, &one, &room.member).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "forbidden"));
    assert_eq!(delete(&app, &one, &room.owner).await.status, StatusCode::NO_CONTENT);
    assert_eq!(rows(&app, recording).await, 0);
    assert!(!app.stored(recording, file).await);
}

#[actix_web::test]
async fn a_recording_running_when_its_room_is_deleted_is_stopped_kept_and_finished_by_its_recorder() {
    let app = spawn_app().await;
    let room = room_with_people(&app).await;
    let room_id: Uuid = room.id.parse().unwrap();
    let started = app.post(&format!("/v1/rooms/{}/recordings", room.id), Some(&room.owner), json!({})).await;
    assert_eq!(started.status, StatusCode::ACCEPTED);
    let pending: Uuid = started.body["id"].as_str().unwrap().parse().unwrap();
    sqlx::query("update recordings set status = 'ready' where id = $1").bind(pending).execute(&app.db).await.unwrap();
    let running = app.insert_recording(room_id, "recording").await;
    // Joined during the call: on the recording's list too.
    let joined_during_the_call = new_member(&app, &room).await;
    let moderator = new_member(&app, &room).await;
    let moderator_id: Uuid = app.get("/v1/me", Some(&moderator)).await.body["id"].as_str().unwrap().parse().unwrap();
    let promoted = app
        .send(
            "PATCH",
            &format!("/v1/rooms/{}/members/{moderator_id}", room.id),
            Some(&room.owner),
            Some(json!({"role": "moderator"})),
        )
        .await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.body);
    let mut control = app.control_listener().await;

    assert_eq!(delete(&app, &format!("/v1/rooms/{}", room.id), &room.owner).await.status, StatusCode::NO_CONTENT);
    assert_eq!(control.next().await, json!({"close_room": {"room_id": room.id}}));
    let one = format!("/v1/recordings/{running}");
    let seen = app.get(&one, Some(&joined_during_the_call)).await;
    assert_eq!((seen.status, seen.body["status"].clone()), (StatusCode::OK, json!("finalizing")), "{}", seen.body);

    // The recorder finishes the row as it does for any call that ends (services/recorder/src/store.rs).
    let finished = sqlx::query(
        "update recordings set status = 'partial', reason = 'the call ended before the recording was stopped',
                ended_at = now(), recorder_id = null, updated_at = now()
          where id = $1 and status in ('starting', 'recording', 'finalizing')",
    )
    .bind(running)
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(finished.rows_affected(), 1);
    // A moderator of the time may delete it now that the room is gone.
    assert_eq!(delete(&app, &one, &joined_during_the_call).await.status, StatusCode::FORBIDDEN);
    assert_eq!(delete(&app, &one, &moderator).await.status, StatusCode::NO_CONTENT);
    assert_eq!(rows(&app, pending).await, 1, "the other recording stays");
}

#[actix_web::test]
async fn a_delete_recordings_value_that_is_not_a_boolean_or_any_other_parameter_is_a_400() {
    let app = spawn_app().await;
    let room = room_with_people(&app).await;
    let (_, admin) = app.admin_token().await;
    let recording = app.insert_recording(room.id.parse().unwrap(), "ready").await;
    for query in [
        "delete_recordings=yes",
        "delete_recordings=1",
        "delete_recordings=",
        "delete_recordings=TRUE",
        "delete_recording=true",
        "delete_recordings=true&force=1",
        "delete_recordings=true&delete_recordings=false",
    ] {
        for (path, token) in
            [(format!("/v1/rooms/{}", room.id), &room.owner), (format!("/v1/admin/rooms/{}", room.id), &admin)]
        {
            let reply = delete(&app, &format!("{path}?{query}"), token).await;
            assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, "invalid_query"), "{path}?{query}");
        }
    }
    assert_eq!(app.get(&format!("/v1/rooms/{}", room.id), Some(&room.owner)).await.status, StatusCode::OK);
    assert_eq!(rows(&app, recording).await, 1);
    // The document says so, for the fuzzer and for clients: an optional boolean, nothing else.
    let doc = app.get("/openapi.json", None).await.body;
    for path in ["/v1/rooms/{id}", "/v1/admin/rooms/{id}"] {
        let parameters = doc["paths"][path]["delete"]["parameters"].as_array().unwrap();
        let queries: Vec<_> = parameters.iter().filter(|p| p["in"] == "query").collect();
        assert_eq!(queries.len(), 1, "{path}");
        assert_eq!(queries[0]["name"], "delete_recordings");
        assert_eq!(queries[0]["required"], false);
        assert_eq!(queries[0]["schema"], json!({"type": "boolean", "default": false}), "{path}");
    }
    let explicit_false = delete(&app, &format!("/v1/rooms/{}?delete_recordings=false", room.id), &room.owner).await;
    assert_eq!(explicit_false.status, StatusCode::NO_CONTENT);
    assert_eq!(rows(&app, recording).await, 1);
}

#[actix_web::test]
async fn an_admin_deletes_a_room_keeping_its_recordings_or_with_them_when_asked() {
    let app = spawn_app().await;
    let (_, admin) = app.admin_token().await;
    let kept_room = room_with_people(&app).await;
    let kept = app.insert_recording(kept_room.id.parse().unwrap(), "ready").await;
    let kept_file = app.insert_recording_file(kept, b"kept").await;
    let gone_room = room_with_people(&app).await;
    let gone = app.insert_recording(gone_room.id.parse().unwrap(), "failed").await;
    let gone_file = app.insert_recording_file(gone, b"gone").await;

    assert_eq!(delete(&app, &format!("/v1/admin/rooms/{}", kept_room.id), &admin).await.status, StatusCode::NO_CONTENT);
    assert!(app.stored(kept, kept_file).await);
    assert_eq!(listed(&app, &kept_room.member, "").await, vec![kept.to_string()]);
    let admin_list = app.get("/v1/admin/recordings", Some(&admin)).await.body;
    assert!(admin_list["recordings"].as_array().unwrap().iter().any(|r| r["id"] == kept.to_string()));

    let path = format!("/v1/admin/rooms/{}?delete_recordings=true", gone_room.id);
    assert_eq!(delete(&app, &path, &admin).await.status, StatusCode::NO_CONTENT);
    assert_eq!(rows(&app, gone).await, 0);
    assert!(!app.stored(gone, gone_file).await);
    assert!(listed(&app, &gone_room.member, "").await.is_empty());
    let audit: Vec<serde_json::Value> =
        sqlx::query_scalar("select details from audit_log where action = 'admin.room.delete' order by id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        audit,
        vec![
            json!({"delete_recordings": false, "recordings_deleted": []}),
            json!({"delete_recordings": true, "recordings_deleted": [gone]}),
        ]
    );
}

#[actix_web::test]
async fn deleting_a_user_keeps_the_recordings_of_the_rooms_they_owned_for_the_others() {
    let app = spawn_app().await;
    let (_, admin) = app.admin_token().await;
    let room = room_with_people(&app).await;
    let recording = app.insert_recording(room.id.parse().unwrap(), "ready").await;
    let owner_id = app.get("/v1/me", Some(&room.owner)).await.body["id"].as_str().unwrap().to_owned();
    assert_eq!(delete(&app, &format!("/v1/admin/users/{owner_id}"), &admin).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/v1/rooms/{}", room.id), Some(&admin)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(listed(&app, &room.member, "").await, vec![recording.to_string()]);
}

#[actix_web::test]
async fn the_migration_gives_earlier_recordings_their_rooms_members_as_their_access_list() {
    // A database of the test's own, emptied: the migrations below start from nothing.
    let (db, _) = confab_testkit::fresh_database().await;
    db.execute("drop schema public cascade; create schema public").await.unwrap();
    // The schema as it was before the access list, with a room of two and its recording.
    confab_api::MIGRATOR.run_to(20261207000001, &db).await.unwrap();
    let (owner, member, room, recording) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    db.execute(sqlx::AssertSqlSafe(format!(
        "insert into users (id, email, display_name, password_hash)
           values ('{owner}', '{owner}@example.org', 'Ann', 'x'), ('{member}', '{member}@example.org', 'Bo', 'x');
         insert into rooms (id, name, owner_id, max_participants) values ('{room}', 'Old', '{owner}', 4);
         insert into room_members (room_id, user_id, role) values ('{room}', '{owner}', 'owner'), ('{room}', '{member}', 'member');
         insert into recordings (id, room_id, status) values ('{recording}', '{room}', 'ready');"
    )))
    .await
    .unwrap();

    confab_api::MIGRATOR.run(&db).await.unwrap();
    let mut listed: Vec<(Uuid, String)> =
        sqlx::query_as("select user_id, role from recording_access where recording_id = $1")
            .bind(recording)
            .fetch_all(&db)
            .await
            .unwrap();
    listed.sort();
    let mut expected = vec![(owner, "owner".to_owned()), (member, "member".to_owned())];
    expected.sort();
    assert_eq!(listed, expected);
    sqlx::query("delete from rooms where id = $1").bind(room).execute(&db).await.unwrap();
    let kept: i64 = sqlx::query_scalar("select count(*) from recording_access where recording_id = $1")
        .bind(recording)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(kept, 2, "the room's deletion leaves the recording and its list");
}
