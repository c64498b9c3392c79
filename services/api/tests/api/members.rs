//! Membership: roles, the moderator/owner hierarchy, removal, bans, and the audit trail.

use awc::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, unique_email};

struct Room {
    id: String,
    owner: String,
}

async fn room_with_owner(app: &TestApp) -> Room {
    let (_, owner) = app.logged_in_user().await;
    let owner = owner["access_token"].as_str().unwrap().to_owned();
    Room { id: app.create_room(&owner, "Team").await, owner }
}

/// Signs up a user and adds them with `role`: (user id, access token).
async fn add(app: &TestApp, room: &Room, role: &str) -> (String, String) {
    let (email, login) = app.logged_in_user().await;
    let reply = app
        .post(&format!("/v1/rooms/{}/members", room.id), Some(&room.owner), json!({"email": email, "role": role}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    (login["user"]["id"].as_str().unwrap().to_owned(), login["access_token"].as_str().unwrap().to_owned())
}

#[actix_web::test]
async fn adding_members_checks_the_account_the_role_and_duplicates() {
    let app = spawn_app().await;
    let room = room_with_owner(&app).await;
    let (_, moderator) = add(&app, &room, "moderator").await;
    let path = format!("/v1/rooms/{}/members", room.id);
    let (email, _) = app.logged_in_user().await;
    let as_moderator = app.post(&path, Some(&moderator), json!({"email": email, "role": "moderator"})).await;
    assert_eq!((as_moderator.status, as_moderator.code()), (StatusCode::FORBIDDEN, "forbidden"));
    assert_eq!(app.post(&path, Some(&moderator), json!({"email": email})).await.status, StatusCode::CREATED);
    let again = app.post(&path, Some(&room.owner), json!({"email": email})).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "already_member"));
    let nobody = app.post(&path, Some(&room.owner), json!({"email": unique_email()})).await;
    assert_eq!((nobody.status, nobody.code()), (StatusCode::UNPROCESSABLE_ENTITY, "user_not_found"));
    let owner_role = app.post(&path, Some(&room.owner), json!({"email": unique_email(), "role": "owner"})).await;
    assert_eq!(owner_role.code(), "invalid_role");
    let members = app.get(&path, Some(&room.owner)).await.body;
    assert_eq!(members["members"].as_array().unwrap().len(), 3);
}

#[actix_web::test]
async fn moderators_manage_members_but_not_moderators_or_the_owner() {
    let app = spawn_app().await;
    let room = room_with_owner(&app).await;
    let (mod_a, token_a) = add(&app, &room, "moderator").await;
    let (mod_b, _) = add(&app, &room, "moderator").await;
    let (member, member_token) = add(&app, &room, "member").await;
    let owner_id = app.get("/v1/me", Some(&room.owner)).await.body["id"].as_str().unwrap().to_owned();
    let member_path = |user: &str| format!("/v1/rooms/{}/members/{user}", room.id);

    let promote = app.send("PATCH", &member_path(&member), Some(&token_a), Some(json!({"role": "moderator"}))).await;
    assert_eq!(promote.status, StatusCode::FORBIDDEN, "only the owner appoints moderators");
    let demote = app.send("PATCH", &member_path(&mod_b), Some(&token_a), Some(json!({"role": "member"}))).await;
    assert_eq!(demote.status, StatusCode::FORBIDDEN);
    assert_eq!(app.send("DELETE", &member_path(&mod_b), Some(&token_a), None).await.status, StatusCode::FORBIDDEN);
    let on_owner = app.send("DELETE", &member_path(&owner_id), Some(&token_a), None).await;
    assert_eq!((on_owner.status, on_owner.code()), (StatusCode::FORBIDDEN, "owner_protected"));
    let as_member = app.send("PATCH", &member_path(&mod_a), Some(&member_token), Some(json!({"role": "member"}))).await;
    assert_eq!(as_member.status, StatusCode::FORBIDDEN);

    let by_owner = app.send("PATCH", &member_path(&mod_b), Some(&room.owner), Some(json!({"role": "member"}))).await;
    assert_eq!(by_owner.status, StatusCode::OK);
    assert_eq!(by_owner.body["role"], "member");
    assert_eq!(app.send("DELETE", &member_path(&mod_b), Some(&token_a), None).await.status, StatusCode::NO_CONTENT);
}

#[actix_web::test]
async fn members_may_leave_but_the_owner_may_not() {
    let app = spawn_app().await;
    let room = room_with_owner(&app).await;
    let (member, token) = add(&app, &room, "member").await;
    let owner_id = app.get("/v1/me", Some(&room.owner)).await.body["id"].as_str().unwrap().to_owned();
    let leave = app.send("DELETE", &format!("/v1/rooms/{}/members/{member}", room.id), Some(&token), None).await;
    assert_eq!(leave.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/v1/rooms/{}", room.id), Some(&token)).await.status, StatusCode::NOT_FOUND);
    let owner_leaves =
        app.send("DELETE", &format!("/v1/rooms/{}/members/{owner_id}", room.id), Some(&room.owner), None).await;
    assert_eq!(owner_leaves.code(), "owner_protected");
}

#[actix_web::test]
async fn removal_and_bans_end_access_at_once_and_tell_the_gateways() {
    let app = spawn_app().await;
    let room = room_with_owner(&app).await;
    let (member, token) = add(&app, &room, "member").await;
    let (other, other_token) = add(&app, &room, "member").await;
    let mut control = app.control_listener().await;

    let removed = app.send("DELETE", &format!("/v1/rooms/{}/members/{member}", room.id), Some(&room.owner), None).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(
        control.next().await,
        json!({"remove_user": {"room_id": room.id, "user_id": member, "reason": "removed"}})
    );
    assert_eq!(app.get(&format!("/v1/rooms/{}", room.id), Some(&token)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.post(&format!("/v1/rooms/{}/join", room.id), Some(&token), Value::Null).await.status,
        StatusCode::NOT_FOUND
    );

    let ban = app.post(&format!("/v1/rooms/{}/bans", room.id), Some(&room.owner), json!({"user_id": other})).await;
    assert_eq!(ban.status, StatusCode::CREATED);
    assert_eq!(
        control.next().await,
        json!({"remove_user": {"room_id": room.id, "user_id": other, "reason": "banned"}})
    );
    assert_eq!(app.get(&format!("/v1/rooms/{}", room.id), Some(&other_token)).await.status, StatusCode::NOT_FOUND);
    let readd = app
        .post(
            &format!("/v1/rooms/{}/members", room.id),
            Some(&room.owner),
            json!({"email": email_of(&app, &other).await}),
        )
        .await;
    assert_eq!(readd.code(), "user_banned");

    // Managers see the ban (with who made it); the banned user's old room-mates do not.
    let bans = app.get(&format!("/v1/rooms/{}/bans", room.id), Some(&room.owner)).await;
    assert_eq!(bans.status, StatusCode::OK);
    let listed = &bans.body["bans"];
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["user_id"], other.as_str());
    assert_eq!(listed[0]["email"], email_of(&app, &other).await.as_str());
    let owner_id = app.get("/v1/me", Some(&room.owner)).await.body["id"].clone();
    assert_eq!(listed[0]["banned_by"], owner_id);
    assert!(listed[0]["banned_at"].is_string());
    let (_, member_token) = add(&app, &room, "member").await;
    let as_member = app.get(&format!("/v1/rooms/{}/bans", room.id), Some(&member_token)).await;
    assert_eq!(as_member.status, StatusCode::FORBIDDEN);
    let unban = app.send("DELETE", &format!("/v1/rooms/{}/bans/{other}", room.id), Some(&room.owner), None).await;
    assert_eq!(unban.status, StatusCode::NO_CONTENT);
    let after = app.get(&format!("/v1/rooms/{}/bans", room.id), Some(&room.owner)).await;
    assert_eq!(after.body["bans"], json!([]));
}

async fn email_of(app: &TestApp, user: &str) -> String {
    let id = uuid::Uuid::parse_str(user).unwrap();
    sqlx::query_scalar("select email from users where id = $1").bind(id).fetch_one(&app.db).await.unwrap()
}

#[actix_web::test]
async fn membership_changes_are_audited_with_the_request_id() {
    let app = spawn_app().await;
    let room = room_with_owner(&app).await;
    let (email, _) = app.logged_in_user().await;
    let reply = app.post(&format!("/v1/rooms/{}/members", room.id), Some(&room.owner), json!({"email": email})).await;
    let request_id = reply.headers.get("x-request-id").unwrap().to_str().unwrap().to_owned();
    let (action, logged_request, room_id): (String, String, uuid::Uuid) =
        sqlx::query_as("select action, request_id, room_id from audit_log").fetch_one(&app.db).await.unwrap();
    assert_eq!(action, "member.add");
    assert_eq!(logged_request, request_id);
    assert_eq!(room_id.to_string(), room.id);
    let tamper = sqlx::query("update audit_log set action = 'nothing'").execute(&app.db).await;
    assert!(tamper.is_err(), "the audit log is append-only");
    assert!(sqlx::query("delete from audit_log").execute(&app.db).await.is_err());
}
