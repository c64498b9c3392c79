//! The caller's own account: read it, rename, change the password.

use awc::http::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app};

#[actix_web::test]
async fn me_returns_the_callers_account() {
    let app = spawn_app().await;
    let (email, login) = app.logged_in_user().await;
    let me = app.get("/v1/me", login["access_token"].as_str()).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], email);
    assert_eq!(me.body["id"], login["user"]["id"]);
}

#[actix_web::test]
async fn patch_me_renames_without_needing_the_password() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user().await;
    let token = login["access_token"].as_str();
    let reply = app.send("PATCH", "/v1/me", token, Some(json!({"display_name": "  Zoë  "}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["display_name"], "Zoë");
    assert_eq!(app.get("/v1/me", token).await.body["display_name"], "Zoë");
    let bad = app.send("PATCH", "/v1/me", token, Some(json!({"display_name": ""}))).await;
    assert_eq!(bad.code(), "invalid_display_name");
}

#[actix_web::test]
async fn changing_the_password_needs_the_current_one() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user().await;
    let token = login["access_token"].as_str();
    let missing = app.send("PATCH", "/v1/me", token, Some(json!({"password": "new password 1"}))).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert_eq!(missing.code(), "current_password_required");
    let wrong = app
        .send("PATCH", "/v1/me", token, Some(json!({"password": "new password 1", "current_password": "nope nope"})))
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(wrong.code(), "wrong_current_password");
    let weak =
        app.send("PATCH", "/v1/me", token, Some(json!({"password": "short", "current_password": PASSWORD}))).await;
    assert_eq!(weak.code(), "invalid_password");
    assert_eq!(app.get("/v1/me", token).await.status, StatusCode::OK, "nothing changed yet");
}

#[actix_web::test]
async fn a_password_change_ends_every_session_and_the_new_password_works() {
    let app = spawn_app().await;
    let (email, login) = app.logged_in_user().await;
    let token = login["access_token"].as_str();
    let reply = app
        .send("PATCH", "/v1/me", token, Some(json!({"password": "brand new password", "current_password": PASSWORD})))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(app.get("/v1/me", token).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(login["refresh_token"].as_str().unwrap()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login(&email, PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login(&email, "brand new password").await.status, StatusCode::OK);
}
