//! A room's `media` and `mode` (issue 16): stored, validated, returned by every room view, and
//! holding `max_participants` to the limit they set (8 peer to peer, 50 a meeting, 1000 a lecture).

use awc::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, spawn_app};

async fn owner(app: &TestApp) -> String {
    app.logged_in_user().await.1["access_token"].as_str().unwrap().to_owned()
}

async fn create(app: &TestApp, token: &str, body: Value) -> Reply {
    app.post("/v1/rooms", Some(token), body).await
}

async fn update(app: &TestApp, token: &str, room: &str, body: Value) -> Reply {
    app.send("PATCH", &format!("/v1/rooms/{room}"), Some(token), Some(body)).await
}

fn settings(body: &Value) -> (i64, &str, &str) {
    (body["max_participants"].as_i64().unwrap(), body["media"].as_str().unwrap(), body["mode"].as_str().unwrap())
}

#[actix_web::test]
async fn a_new_room_is_automatic_media_and_a_meeting_and_every_view_says_so() {
    let app = spawn_app().await;
    let token = owner(&app).await;
    let created = create(&app, &token, json!({"name": "Stand-up"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(settings(&created.body), (8, "auto", "meeting"));
    let room = created.body["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/v1/rooms/{room}"), Some(&token)).await.body, created.body);
    assert_eq!(app.get("/v1/rooms", Some(&token)).await.body["rooms"][0], created.body);
    let nulls =
        create(&app, &token, json!({"name": "Nulls", "max_participants": null, "media": null, "mode": null})).await;
    assert_eq!(settings(&nulls.body), (8, "auto", "meeting"), "null is the default");

    let (_, admin) = app.admin_token().await;
    let listed_for_admin = app.get("/v1/admin/rooms", Some(&admin)).await;
    let admin_rooms = listed_for_admin.body["rooms"].as_array().unwrap();
    let listed = admin_rooms.iter().find(|r| r["id"] == room).expect("the admin lists every room");
    assert_eq!(settings(listed), (8, "auto", "meeting"));
}

#[actix_web::test]
async fn every_media_and_mode_is_stored_as_given_on_create_and_on_update() {
    let app = spawn_app().await;
    let token = owner(&app).await;
    for media in ["mesh", "sfu", "auto"] {
        for mode in ["meeting", "lecture"] {
            let created = create(&app, &token, json!({"name": "R", "media": media, "mode": mode})).await;
            assert_eq!(created.status, StatusCode::CREATED, "{media} {mode}: {}", created.body);
            assert_eq!(settings(&created.body), (8, media, mode));
            let room = created.body["id"].as_str().unwrap();
            let got = app.get(&format!("/v1/rooms/{room}"), Some(&token)).await;
            assert_eq!(settings(&got.body), (8, media, mode));
        }
    }
    let room = app.create_room(&token, "Changing").await;
    for (media, mode) in [("sfu", "lecture"), ("mesh", "lecture"), ("auto", "meeting"), ("mesh", "meeting")] {
        let changed = update(&app, &token, &room, json!({"media": media, "mode": mode})).await;
        assert_eq!(changed.status, StatusCode::OK, "{media} {mode}: {}", changed.body);
        assert_eq!(settings(&changed.body), (8, media, mode));
        assert_eq!(settings(&app.get(&format!("/v1/rooms/{room}"), Some(&token)).await.body), (8, media, mode));
    }
    let renamed = update(&app, &token, &room, json!({"name": "Renamed", "media": null, "mode": null})).await;
    assert_eq!((renamed.body["name"].as_str(), settings(&renamed.body)), (Some("Renamed"), (8, "mesh", "meeting")));
}

#[actix_web::test]
async fn unknown_values_and_wrong_types_are_a_400_naming_the_field() {
    let app = spawn_app().await;
    let token = owner(&app).await;
    let room = app.create_room(&token, "Target").await;
    let cases = [
        ("media", vec![json!("p2p"), json!("MESH"), json!(""), json!(" sfu")], "invalid_media"),
        ("mode", vec![json!("webinar"), json!("Lecture"), json!("auto")], "invalid_mode"),
        ("media", vec![json!(1), json!(true)], "invalid_field"),
        ("mode", vec![json!(["lecture"]), json!({"name": "lecture"})], "invalid_field"),
    ];
    for (fields, code) in cases
        .into_iter()
        .flat_map(|(field, values, code)| values.into_iter().map(move |value| (json!({ field: value }), code)))
    {
        let mut body = fields.clone();
        body["name"] = json!("R");
        let created = create(&app, &token, body).await;
        assert_eq!((created.status, created.code()), (StatusCode::BAD_REQUEST, code), "create {fields}");
        let updated = update(&app, &token, &room, fields.clone()).await;
        assert_eq!((updated.status, updated.code()), (StatusCode::BAD_REQUEST, code), "update {fields}");
    }
    let rooms = app.get("/v1/rooms", Some(&token)).await;
    assert_eq!(rooms.body["rooms"].as_array().unwrap().len(), 1, "nothing was created");
    assert_eq!(settings(&rooms.body["rooms"][0]), (8, "auto", "meeting"), "nothing was changed");
}

#[actix_web::test]
async fn the_participant_limit_is_8_peer_to_peer_50_in_a_meeting_and_1000_in_a_lecture() {
    let app = spawn_app().await;
    let token = owner(&app).await;
    for (body, allowed) in [
        (json!({"media": "mesh", "max_participants": 8}), true),
        (json!({"media": "mesh", "max_participants": 9}), false),
        (json!({"media": "mesh", "mode": "lecture", "max_participants": 9}), false),
        (json!({"max_participants": 50}), true),
        (json!({"max_participants": 51}), false),
        (json!({"media": "sfu", "mode": "meeting", "max_participants": 51}), false),
        (json!({"mode": "lecture", "max_participants": 1000}), true),
        (json!({"media": "sfu", "mode": "lecture", "max_participants": 1000}), true),
        (json!({"mode": "lecture", "max_participants": 1001}), false),
        (json!({"mode": "lecture", "max_participants": 1}), false),
    ] {
        let mut request = body.clone();
        request["name"] = json!("Sized");
        let reply = create(&app, &token, request).await;
        if allowed {
            assert_eq!(reply.status, StatusCode::CREATED, "{body}: {}", reply.body);
            assert_eq!(reply.body["max_participants"], body["max_participants"]);
        } else {
            assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, "invalid_max_participants"), "{body}");
        }
    }
    let mesh = create(&app, &token, json!({"name": "R", "media": "mesh", "max_participants": 9})).await;
    assert!(mesh.body["error"]["message"].as_str().unwrap().contains("mesh room allows at most 8"), "{}", mesh.body);
    let meeting = create(&app, &token, json!({"name": "R", "max_participants": 51})).await;
    assert!(meeting.body["error"]["message"].as_str().unwrap().contains("meeting allows at most 50"));
    let lecture = create(&app, &token, json!({"name": "R", "mode": "lecture", "max_participants": 1001})).await;
    assert!(lecture.body["error"]["message"].as_str().unwrap().contains("1000"));
}

#[actix_web::test]
async fn a_change_that_no_longer_fits_the_room_is_refused_and_nothing_is_lowered_to_fit() {
    let app = spawn_app().await;
    let token = owner(&app).await;
    let room = create(&app, &token, json!({"name": "Twenty", "max_participants": 20})).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The request is valid on its own; the room's 20 is what a mesh cannot take.
    let mesh = update(&app, &token, &room, json!({"media": "mesh"})).await;
    assert_eq!((mesh.status, mesh.code()), (StatusCode::CONFLICT, "invalid_max_participants"), "{}", mesh.body);
    assert!(mesh.body["error"]["message"].as_str().unwrap().contains("at most 8"));
    // Its own values do not fit: a 400, as on create.
    let both = update(&app, &token, &room, json!({"media": "mesh", "max_participants": 20})).await;
    assert_eq!((both.status, both.code()), (StatusCode::BAD_REQUEST, "invalid_max_participants"));
    let unchanged = app.get(&format!("/v1/rooms/{room}"), Some(&token)).await;
    assert_eq!(settings(&unchanged.body), (20, "auto", "meeting"));

    let fitted = update(&app, &token, &room, json!({"media": "mesh", "max_participants": 6})).await;
    assert_eq!(settings(&fitted.body), (6, "mesh", "meeting"), "{}", fitted.body);
    let grown = update(&app, &token, &room, json!({"max_participants": 9})).await;
    assert_eq!(
        (grown.status, grown.code()),
        (StatusCode::CONFLICT, "invalid_max_participants"),
        "a mesh room stays ≤ 8"
    );

    let lecture =
        update(&app, &token, &room, json!({"media": "sfu", "mode": "lecture", "max_participants": 600})).await;
    assert_eq!(settings(&lecture.body), (600, "sfu", "lecture"), "{}", lecture.body);
    let meeting = update(&app, &token, &room, json!({"mode": "meeting"})).await;
    assert_eq!((meeting.status, meeting.code()), (StatusCode::CONFLICT, "invalid_max_participants"));
    assert!(meeting.body["error"]["message"].as_str().unwrap().contains("at most 50"));
    let over = update(&app, &token, &room, json!({"mode": "meeting", "max_participants": 51})).await;
    assert_eq!((over.status, over.code()), (StatusCode::BAD_REQUEST, "invalid_max_participants"));
    let stored: (i32, String, String) =
        sqlx::query_as("select max_participants, media, mode from rooms where id = $1::uuid")
            .bind(&room)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(stored, (600, "sfu".to_owned(), "lecture".to_owned()));
}

#[actix_web::test]
async fn only_those_who_may_update_a_room_change_its_settings_as_for_any_other_change() {
    let app = spawn_app().await;
    let owner_token = owner(&app).await;
    let room = app.create_room(&owner_token, "Team").await;
    let (member_email, member) = app.logged_in_user().await;
    let (moderator_email, moderator) = app.logged_in_user().await;
    for (email, role) in [(&member_email, "member"), (&moderator_email, "moderator")] {
        let added = app
            .post(&format!("/v1/rooms/{room}/members"), Some(&owner_token), json!({"email": email, "role": role}))
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    }
    let stranger = owner(&app).await;
    let elsewhere = app.create_room(&stranger, "Elsewhere").await;
    let change = json!({"mode": "lecture"});

    let member_token = member["access_token"].as_str().unwrap();
    assert_eq!(update(&app, member_token, &room, change.clone()).await.status, StatusCode::FORBIDDEN);
    assert_eq!(update(&app, &stranger, &room, change.clone()).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        update(&app, &owner_token, &elsewhere, change.clone()).await.status,
        StatusCode::NOT_FOUND,
        "another room"
    );
    let anonymous = app.send("PATCH", &format!("/v1/rooms/{room}"), None, Some(change.clone())).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    // A refused request is refused before its values are looked at, even bad ones.
    assert_eq!(update(&app, member_token, &room, json!({"media": "p2p"})).await.status, StatusCode::FORBIDDEN);
    assert_eq!(update(&app, &stranger, &room, json!({"media": "p2p"})).await.status, StatusCode::NOT_FOUND);
    let still = app.get(&format!("/v1/rooms/{room}"), Some(&owner_token)).await;
    assert_eq!(settings(&still.body), (8, "auto", "meeting"));

    let by_moderator = update(&app, moderator["access_token"].as_str().unwrap(), &room, change).await;
    assert_eq!((by_moderator.status, by_moderator.body["mode"].as_str()), (StatusCode::OK, Some("lecture")));
    let (_, admin) = app.admin_token().await;
    let by_admin = update(&app, &admin, &room, json!({"media": "sfu"})).await;
    assert_eq!(settings(&by_admin.body), (8, "sfu", "lecture"));
    assert!(by_admin.body.get("my_role").is_none(), "the admin is not a member");
}

#[actix_web::test]
async fn hostile_values_are_refused_without_being_echoed() {
    let app = spawn_app().await;
    let token = owner(&app).await;
    let room = app.create_room(&token, "Target").await;
    let huge = "mesh".repeat(15_000);
    for (field, value, code) in [
        ("media", json!(huge), "invalid_media"),
        ("mode", json!(huge), "invalid_mode"),
        ("media", json!("mesh\u{200b}"), "invalid_media"),
        ("mode", json!("lecture'; drop table rooms;--"), "invalid_mode"),
        ("media", json!("<script>alert(1)</script>"), "invalid_media"),
        ("max_participants", json!(1e300), "invalid_field"),
        ("max_participants", json!(-1), "invalid_max_participants"),
        ("max_participants", json!(i64::MAX), "invalid_field"),
        ("max_participants", json!(2_147_483_648_i64), "invalid_max_participants"),
    ] {
        let reply = update(&app, &token, &room, json!({ field: value })).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, code), "{field}");
        assert!(reply.raw.len() < 1000, "{field}: the value is not repeated back");
    }
    let nul = app.send_raw("PATCH", &format!("/v1/rooms/{room}"), Some(&token), r#"{"media": "mesh\u0000"}"#).await;
    assert_eq!((nul.status, nul.code()), (StatusCode::BAD_REQUEST, "invalid_text"));
    let twice =
        app.send_raw("PATCH", &format!("/v1/rooms/{room}"), Some(&token), r#"{"mode": "lecture", "mode": 1}"#).await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST);
    let all_null =
        update(&app, &token, &room, json!({"name": null, "max_participants": null, "media": null, "mode": null})).await;
    assert_eq!((all_null.status, settings(&all_null.body)), (StatusCode::OK, (8, "auto", "meeting")));
}

#[actix_web::test]
async fn the_table_holds_every_room_to_the_rule_and_rooms_from_before_get_the_defaults() {
    let app = spawn_app().await;
    let token = owner(&app).await;
    let room = app.create_room(&token, "R").await;
    let owner_id: uuid::Uuid = sqlx::query_scalar("select owner_id from rooms where id = $1::uuid")
        .bind(&room)
        .fetch_one(&app.db)
        .await
        .unwrap();
    // Written as code from before the migration writes rooms: without media or mode.
    let old: (String, String) = sqlx::query_as(
        "insert into rooms (id, name, owner_id, max_participants) values (gen_random_uuid(), 'Old', $1, 50)
         returning media, mode",
    )
    .bind(owner_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(old, ("auto".to_owned(), "meeting".to_owned()));
    for (set, allowed) in [
        ("media = 'mesh', mode = 'meeting', max_participants = 9", false),
        ("media = 'mesh', mode = 'lecture', max_participants = 9", false),
        ("media = 'mesh', mode = 'meeting', max_participants = 8", true),
        ("media = 'sfu', mode = 'lecture', max_participants = 1000", true),
        ("media = 'auto', mode = 'lecture', max_participants = 1001", false),
        ("media = 'auto', mode = 'meeting', max_participants = 51", false),
        ("media = 'auto', mode = 'meeting', max_participants = 1", false),
        ("media = 'p2p'", false),
        ("mode = 'webinar'", false),
    ] {
        let update = format!("update rooms set {set} where id = $1::uuid");
        let done = sqlx::query(sqlx::AssertSqlSafe(update)).bind(&room).execute(&app.db).await;
        assert_eq!(done.is_ok(), allowed, "{set}");
    }
}
