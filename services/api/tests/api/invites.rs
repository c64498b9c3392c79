//! Invites: one-time secrets, every way they stop working, and concurrent use.

use awc::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

async fn owner_and_room(app: &TestApp) -> (String, String) {
    let owner = app.logged_in_user().await.1["access_token"].as_str().unwrap().to_owned();
    let room = app.create_room(&owner, "Invited").await;
    (owner, room)
}

async fn invite(app: &TestApp, owner: &str, room: &str, body: Value) -> Value {
    let reply = app.post(&format!("/v1/rooms/{room}/invites"), Some(owner), body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

async fn accept(app: &TestApp, token: &str) -> crate::helpers::Reply {
    let user = app.logged_in_user().await.1;
    app.post(&format!("/v1/invites/{token}/accept"), user["access_token"].as_str(), Value::Null).await
}

#[actix_web::test]
async fn an_invite_is_a_secret_shown_once_with_a_link_and_makes_the_accepter_a_member() {
    let app = spawn_app().await;
    let (owner, room) = owner_and_room(&app).await;
    let created = invite(&app, &owner, &room, json!({})).await;
    let token = created["token"].as_str().unwrap();
    assert!(token.len() >= 43, "at least 128 bits");
    assert_eq!(created["url"], format!("http://confab.test/invite/{token}"));
    assert_eq!(created["max_uses"], 1);
    let listed = app.get(&format!("/v1/rooms/{room}/invites"), Some(&owner)).await;
    assert!(!String::from_utf8_lossy(&listed.raw).contains(token), "never listed again");

    let (_, guest) = app.logged_in_user().await;
    let guest_token = guest["access_token"].as_str();
    let accepted = app.post(&format!("/v1/invites/{token}/accept"), guest_token, Value::Null).await;
    assert_eq!(accepted.status, StatusCode::OK);
    assert_eq!(accepted.body, json!({"room_id": room, "role": "member"}));
    assert_eq!(app.get(&format!("/v1/rooms/{room}"), guest_token).await.status, StatusCode::OK);
    let again = app.post(&format!("/v1/invites/{token}/accept"), guest_token, Value::Null).await;
    assert_eq!(again.status, StatusCode::OK, "accepting twice is idempotent");
}

#[actix_web::test]
async fn expired_exhausted_revoked_and_unknown_invites_all_get_the_same_404() {
    let app = spawn_app().await;
    let (owner, room) = owner_and_room(&app).await;
    let expired = invite(&app, &owner, &room, json!({})).await;
    sqlx::query("update invites set expires_at = now() - interval '1 second' where id = $1")
        .bind(uuid::Uuid::parse_str(expired["id"].as_str().unwrap()).unwrap())
        .execute(&app.db)
        .await
        .unwrap();
    let exhausted = invite(&app, &owner, &room, json!({"max_uses": 1})).await;
    assert_eq!(accept(&app, exhausted["token"].as_str().unwrap()).await.status, StatusCode::OK);
    let revoked = invite(&app, &owner, &room, json!({})).await;
    let revoke = app
        .send("DELETE", &format!("/v1/rooms/{room}/invites/{}", revoked["id"].as_str().unwrap()), Some(&owner), None)
        .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT);

    let unknown = accept(&app, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    for dead in [&expired, &exhausted, &revoked] {
        let reply = accept(&app, dead["token"].as_str().unwrap()).await;
        assert_eq!(reply.raw, unknown.raw);
    }
    assert_eq!(accept(&app, &"x".repeat(5000)).await.raw, unknown.raw);
}

#[actix_web::test]
async fn a_banned_user_cannot_come_back_through_an_invite_until_unbanned() {
    let app = spawn_app().await;
    let (owner, room) = owner_and_room(&app).await;
    let (_, guest) = app.logged_in_user().await;
    let (guest_id, guest_token) = (guest["user"]["id"].as_str().unwrap(), guest["access_token"].as_str());
    let ban = app.post(&format!("/v1/rooms/{room}/bans"), Some(&owner), json!({"user_id": guest_id})).await;
    assert_eq!(ban.status, StatusCode::CREATED);
    let created = invite(&app, &owner, &room, json!({"max_uses": 5})).await;
    let path = format!("/v1/invites/{}/accept", created["token"].as_str().unwrap());
    assert_eq!(app.post(&path, guest_token, Value::Null).await.status, StatusCode::NOT_FOUND);
    let uses: i32 = sqlx::query_scalar("select uses from invites").fetch_one(&app.db).await.unwrap();
    assert_eq!(uses, 0, "a refused accept uses nothing");
    let unban = app.send("DELETE", &format!("/v1/rooms/{room}/bans/{guest_id}"), Some(&owner), None).await;
    assert_eq!(unban.status, StatusCode::NO_CONTENT);
    assert_eq!(app.post(&path, guest_token, Value::Null).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn concurrent_accepts_of_a_single_use_invite_admit_exactly_one() {
    let app = spawn_app().await;
    let (owner, room) = owner_and_room(&app).await;
    let created = invite(&app, &owner, &room, json!({"max_uses": 1})).await;
    let path = format!("/v1/invites/{}/accept", created["token"].as_str().unwrap());
    let mut tokens = Vec::new();
    for _ in 0..6 {
        tokens.push(app.logged_in_user().await.1["access_token"].as_str().unwrap().to_owned());
    }
    let replies = futures_util::future::join_all(tokens.iter().map(|t| app.post(&path, Some(t), Value::Null))).await;
    let admitted = replies.iter().filter(|r| r.status == StatusCode::OK).count();
    assert_eq!(admitted, 1);
    assert!(replies.iter().all(|r| r.status == StatusCode::OK || r.status == StatusCode::NOT_FOUND));
    let members: i64 = sqlx::query_scalar("select count(*) from room_members").fetch_one(&app.db).await.unwrap();
    assert_eq!(members, 2, "the owner and exactly one guest");
}

#[actix_web::test]
async fn invite_limits_are_validated() {
    let app = spawn_app().await;
    let (owner, room) = owner_and_room(&app).await;
    let path = format!("/v1/rooms/{room}/invites");
    for (body, code) in [
        (json!({"max_uses": 0}), "invalid_max_uses"),
        (json!({"max_uses": 1001}), "invalid_max_uses"),
        (json!({"expires_in": 59}), "invalid_expires_in"),
        (json!({"expires_in": 30 * 86_400 + 1}), "invalid_expires_in"),
        (json!({"expires_in": -5}), "invalid_expires_in"),
        (json!({"max_uses": "many"}), "invalid_field"),
    ] {
        let reply = app.post(&path, Some(&owner), body.clone()).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, code), "{body}");
    }
    let longest = invite(&app, &owner, &room, json!({"expires_in": 30 * 86_400, "max_uses": 1000})).await;
    assert_eq!(longest["max_uses"], 1000);
    let bad_id = app.send("DELETE", &format!("{path}/not-a-uuid"), Some(&owner), None).await;
    assert_eq!(bad_id.status, StatusCode::NOT_FOUND);
}
