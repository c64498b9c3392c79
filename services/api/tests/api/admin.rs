//! Administration: accounts, rooms, live participants, the audit log and statistics.

use awc::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, spawn_app};

async fn admin_token(app: &TestApp) -> (String, String) {
    let (email, login) = app.logged_in_user().await;
    sqlx::query("update users set role = 'admin' where email = $1").bind(&email).execute(&app.db).await.unwrap();
    (login["user"]["id"].as_str().unwrap().to_owned(), login["access_token"].as_str().unwrap().to_owned())
}

#[actix_web::test]
async fn disabling_a_user_ends_their_sessions_and_connections_at_once() {
    let app = spawn_app().await;
    let (_, admin) = admin_token(&app).await;
    let (email, user) = app.logged_in_user().await;
    let (id, token) = (user["user"]["id"].as_str().unwrap(), user["access_token"].as_str());
    let mut control = app.control_listener().await;
    let reply =
        app.send("PATCH", &format!("/v1/admin/users/{id}"), Some(&admin), Some(json!({"disabled": true}))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["disabled"], true);
    assert_eq!(control.next().await, json!({"disconnect_user": {"user_id": id, "reason": "disabled"}}));
    assert_eq!(app.get("/v1/me", token).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(user["refresh_token"].as_str().unwrap()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login(&email, PASSWORD).await.code(), "account_disabled");
    app.send("PATCH", &format!("/v1/admin/users/{id}"), Some(&admin), Some(json!({"disabled": false}))).await;
    assert_eq!(app.login(&email, PASSWORD).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_demoted_admin_loses_admin_routes_on_the_next_request() {
    let app = spawn_app().await;
    let (_, admin) = admin_token(&app).await;
    let (other_id, other) = admin_token(&app).await;
    assert_eq!(app.get("/v1/admin/stats", Some(&other)).await.status, StatusCode::OK);
    let demote =
        app.send("PATCH", &format!("/v1/admin/users/{other_id}"), Some(&admin), Some(json!({"role": "user"}))).await;
    assert_eq!(demote.status, StatusCode::OK);
    assert_eq!(app.get("/v1/admin/stats", Some(&other)).await.status, StatusCode::FORBIDDEN, "same token, new role");
}

#[actix_web::test]
async fn admins_cannot_demote_disable_or_delete_themselves() {
    let app = spawn_app().await;
    let (id, admin) = admin_token(&app).await;
    let path = format!("/v1/admin/users/{id}");
    for (method, body) in
        [("PATCH", Some(json!({"role": "user"}))), ("PATCH", Some(json!({"disabled": true}))), ("DELETE", None)]
    {
        let reply = app.send(method, &path, Some(&admin), body).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "cannot_modify_self"));
    }
}

#[actix_web::test]
async fn deleting_a_user_deletes_the_rooms_they_own_and_ends_those_calls() {
    let app = spawn_app().await;
    let (_, admin) = admin_token(&app).await;
    let (_, owner) = app.logged_in_user().await;
    let room = app.create_room(owner["access_token"].as_str().unwrap(), "Theirs").await;
    let id = owner["user"]["id"].as_str().unwrap();
    let mut control = app.control_listener().await;
    assert_eq!(
        app.send("DELETE", &format!("/v1/admin/users/{id}"), Some(&admin), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(control.next().await, json!({"disconnect_user": {"user_id": id, "reason": "deleted"}}));
    assert_eq!(control.next().await, json!({"close_room": {"room_id": room}}));
    assert_eq!(app.get(&format!("/v1/admin/users/{id}"), Some(&admin)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.send("DELETE", &format!("/v1/admin/rooms/{room}"), Some(&admin), None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn user_search_matches_email_and_name_literally_and_pages() {
    let app = spawn_app().await;
    let (_, admin) = admin_token(&app).await;
    for name in ["Zed 100%", "Zed one", "Zed two"] {
        let email = format!("{}@example.org", uuid::Uuid::new_v4().simple());
        app.post("/v1/auth/signup", None, json!({"email": email, "password": PASSWORD, "display_name": name})).await;
    }
    let found = app.get("/v1/admin/users?q=zed", Some(&admin)).await;
    assert_eq!(found.body["users"].as_array().unwrap().len(), 3);
    let literal = app.get("/v1/admin/users?q=100%25", Some(&admin)).await;
    assert_eq!(literal.body["users"].as_array().unwrap().len(), 1, "% is matched literally");
    let wildcard = app.get("/v1/admin/users?q=%25", Some(&admin)).await;
    assert_eq!(wildcard.body["users"].as_array().unwrap().len(), 1);
    let first = app.get("/v1/admin/users?q=zed&limit=2", Some(&admin)).await.body;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app.get(&format!("/v1/admin/users?q=zed&limit=2&cursor={cursor}"), Some(&admin)).await.body;
    assert_eq!(second["users"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());
    assert_eq!(app.get("/v1/admin/users/not-a-uuid", Some(&admin)).await.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn kicking_a_live_participant_tells_the_gateways_and_is_audited() {
    let app = spawn_app().await;
    let (admin_id, admin) = admin_token(&app).await;
    let (_, owner) = app.logged_in_user().await;
    let room = app.create_room(owner["access_token"].as_str().unwrap(), "Call").await;
    let user = uuid::Uuid::parse_str(owner["user"]["id"].as_str().unwrap()).unwrap();
    app.put_presence(uuid::Uuid::parse_str(&room).unwrap(), "p-7", user).await;
    let listed = app.get(&format!("/v1/admin/rooms/{room}/participants"), Some(&admin)).await;
    assert_eq!(listed.body["participants"][0]["peer_id"], "p-7");
    let unknown = app.post(&format!("/v1/admin/rooms/{room}/participants/p-8/kick"), Some(&admin), Value::Null).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let mut control = app.control_listener().await;
    let kick = app.post(&format!("/v1/admin/rooms/{room}/participants/p-7/kick"), Some(&admin), Value::Null).await;
    assert_eq!(kick.status, StatusCode::ACCEPTED);
    assert_eq!(control.next().await, json!({"kick_peer": {"room_id": room, "peer_id": "p-7"}}));
    let log = app.get("/v1/admin/audit-log", Some(&admin)).await.body;
    assert_eq!(log["entries"][0]["action"], "participant.kick");
    assert_eq!(log["entries"][0]["actor_id"], admin_id);
}

#[actix_web::test]
async fn stats_count_users_rooms_and_live_calls() {
    let app = spawn_app().await;
    let (_, admin) = admin_token(&app).await;
    let owner = app.logged_in_user().await.1["access_token"].as_str().unwrap().to_owned();
    let room = app.create_room(&owner, "Live").await;
    let mut redis =
        redis::Client::open(app.settings.redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::AsyncCommands::sadd(&mut redis, format!("{}:rooms:live", app.settings.redis_prefix), &room)
        .await
        .unwrap();
    let stats = app.get("/v1/admin/stats", Some(&admin)).await.body;
    assert_eq!(stats, json!({"users": 2, "rooms": 1, "live_calls": 1}));
    let recordings = app.get("/v1/admin/recordings", Some(&admin)).await.body;
    assert_eq!(recordings, json!({"recordings": [], "next_cursor": null}));
}

#[actix_web::test]
async fn the_audit_log_pages_newest_first() {
    let app = spawn_app().await;
    let (_, admin) = admin_token(&app).await;
    let owner = app.logged_in_user().await.1["access_token"].as_str().unwrap().to_owned();
    let room = app.create_room(&owner, "Audited").await;
    for _ in 0..3 {
        app.post(&format!("/v1/rooms/{room}/invites"), Some(&owner), json!({})).await;
    }
    let first = app.get("/v1/admin/audit-log?limit=2", Some(&admin)).await.body;
    assert_eq!(first["entries"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = app.get(&format!("/v1/admin/audit-log?limit=2&cursor={cursor}"), Some(&admin)).await.body;
    assert_eq!(rest["entries"].as_array().unwrap().len(), 1);
    assert!(first["entries"][0]["id"].as_i64() > first["entries"][1]["id"].as_i64());
    assert_eq!(app.get("/v1/admin/audit-log?cursor=x", Some(&admin)).await.status, StatusCode::BAD_REQUEST);
}
