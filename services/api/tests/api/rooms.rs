//! Rooms: creation, privacy, pagination, changes and deletion.

use std::collections::HashSet;

use awc::http::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn a_new_room_is_private_owned_by_its_creator_and_has_sane_defaults() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user().await;
    let token = login["access_token"].as_str().unwrap();
    let reply = app.post("/v1/rooms", Some(token), json!({"name": "  Stand-up  "})).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["name"], "Stand-up");
    assert_eq!(reply.body["max_participants"], 8);
    assert_eq!(reply.body["owner_id"], login["user"]["id"]);
    assert_eq!(reply.body["my_role"], "owner");
    let id = uuid::Uuid::parse_str(reply.body["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 4, "random, unguessable ids");
}

#[actix_web::test]
async fn room_fields_are_validated() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user().await;
    let token = login["access_token"].as_str();
    for (body, code) in [
        (json!({"name": ""}), "invalid_name"),
        (json!({"name": "x".repeat(101)}), "invalid_name"),
        (json!({"name": "ok", "max_participants": 1}), "invalid_max_participants"),
        (json!({"name": "ok", "max_participants": 51}), "invalid_max_participants"),
        (json!({"name": "ok", "max_participants": 1001, "mode": "lecture"}), "invalid_max_participants"),
        (json!({"name": "ok", "media": "p2p"}), "invalid_media"),
        (json!({"name": "ok", "mode": "webinar"}), "invalid_mode"),
        (json!({"name": "ok", "max_participants": "ten"}), "invalid_field"),
        (json!({"max_participants": 4}), "invalid_field"),
    ] {
        let reply = app.post("/v1/rooms", token, body.clone()).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, code), "{body}");
    }
}

#[actix_web::test]
async fn strangers_get_the_same_404_as_for_a_room_that_does_not_exist() {
    let app = spawn_app().await;
    let owner = app.logged_in_user().await.1;
    let stranger = app.logged_in_user().await.1;
    let room = app.create_room(owner["access_token"].as_str().unwrap(), "Secret").await;
    let token = stranger["access_token"].as_str();
    let hidden = app.get(&format!("/v1/rooms/{room}"), token).await;
    let missing = app.get(&format!("/v1/rooms/{}", uuid::Uuid::new_v4()), token).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    assert_eq!(hidden.raw, missing.raw);
    for sub in ["members", "invites", "participants"] {
        assert_eq!(app.get(&format!("/v1/rooms/{room}/{sub}"), token).await.raw, missing.raw, "{sub}");
    }
    let rooms = app.get("/v1/rooms", token).await;
    assert_eq!(rooms.body["rooms"], json!([]), "not listed either");
}

#[actix_web::test]
async fn ids_that_are_not_uuids_are_a_404_never_a_500() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user().await;
    let token = login["access_token"].as_str();
    for id in [
        "not-a-uuid",
        "1",
        "%27%20OR%201=1",
        "..%2F..%2Fetc",
        "00000000-0000-0000-0000-00000000000Z",
        &"a".repeat(5000),
    ] {
        for (method, suffix) in [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/members"), ("POST", "/join")] {
            let reply = app.send_raw(method, &format!("/v1/rooms/{id}{suffix}"), token, "{}").await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {id}{suffix}");
        }
    }
    let room = app.create_room(login["access_token"].as_str().unwrap(), "R").await;
    for user in ["x", "1", "00000000-0000-0000-0000-00000000000Z"] {
        let reply = app.send_raw("DELETE", &format!("/v1/rooms/{room}/members/{user}"), token, "").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }
}

#[actix_web::test]
async fn listing_pages_through_every_room_once_even_while_rooms_are_created() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user().await;
    let token = login["access_token"].as_str().unwrap();
    for i in 0..5 {
        app.create_room(token, &format!("Room {i}")).await;
    }
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/rooms?limit=2&cursor={c}"),
            None => "/v1/rooms?limit=2".to_owned(),
        };
        let page = app.get(&path, Some(token)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for room in page.body["rooms"].as_array().unwrap() {
            assert!(seen.insert(room["id"].as_str().unwrap().to_owned()), "a room appeared twice");
        }
        pages += 1;
        if pages == 1 {
            app.create_room(token, "Created while paging").await;
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "the five rooms that existed when paging began, each once");
    assert_eq!(pages, 3);
    for bad in ["?limit=0", "?limit=201", "?limit=x", "?cursor=garbage", "?cursor="] {
        let reply = app.get(&format!("/v1/rooms{bad}"), Some(token)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[actix_web::test]
async fn moderators_rename_but_only_owners_delete_and_deletion_ends_the_call() {
    let app = spawn_app().await;
    let (_, owner) = app.logged_in_user().await;
    let (moderator_email, moderator) = app.logged_in_user().await;
    let owner_token = owner["access_token"].as_str().unwrap();
    let room = app.create_room(owner_token, "Team").await;
    let added = app
        .post(
            &format!("/v1/rooms/{room}/members"),
            Some(owner_token),
            json!({"email": moderator_email, "role": "moderator"}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let mod_token = moderator["access_token"].as_str();
    let renamed =
        app.send("PATCH", &format!("/v1/rooms/{room}"), mod_token, Some(json!({"max_participants": 12}))).await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(renamed.body["max_participants"], 12);
    assert_eq!(app.send("DELETE", &format!("/v1/rooms/{room}"), mod_token, None).await.status, StatusCode::FORBIDDEN);

    app.post(&format!("/v1/rooms/{room}/invites"), Some(owner_token), json!({})).await;
    let mut control = app.control_listener().await;
    assert_eq!(
        app.send("DELETE", &format!("/v1/rooms/{room}"), Some(owner_token), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(control.next().await, json!({"close_room": {"room_id": room}}));
    assert_eq!(app.get(&format!("/v1/rooms/{room}"), Some(owner_token)).await.status, StatusCode::NOT_FOUND);
    let leftovers: i64 = sqlx::query_scalar(
        "select (select count(*) from room_members) + (select count(*) from invites) + (select count(*) from room_bans)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(leftovers, 0, "members, invites and bans go with the room");
}

#[actix_web::test]
async fn whole_numbers_may_be_written_with_a_fraction_of_zero_as_json_allows() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user().await;
    let token = login["access_token"].as_str().unwrap();
    let reply = app.post("/v1/rooms", Some(token), json!({"name": "Big", "max_participants": 24.0})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["max_participants"], 24);
    let half = app.post("/v1/rooms", Some(token), json!({"name": "Big", "max_participants": 24.5})).await;
    assert_eq!((half.status, half.code()), (StatusCode::BAD_REQUEST, "invalid_field"));
}
