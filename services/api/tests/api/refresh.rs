//! Refresh-token rotation, reuse detection, races, and the ways sessions end.

use std::time::Duration;

use awc::http::StatusCode;

use crate::helpers::{PASSWORD, spawn_app, spawn_app_with};

fn token(body: &serde_json::Value, field: &str) -> String {
    body[field].as_str().unwrap_or_else(|| panic!("no {field} in {body}")).to_owned()
}

#[actix_web::test]
async fn refresh_rotates_the_token_and_returns_a_working_pair() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user().await;
    let r1 = token(&login, "refresh_token");
    let next = app.refresh(&r1).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.body);
    let r2 = token(&next.body, "refresh_token");
    assert_ne!(r1, r2);
    assert_eq!(app.get("/v1/me", Some(&token(&next.body, "access_token"))).await.status, StatusCode::OK);
    assert_eq!(app.refresh(&r2).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn reusing_a_rotated_token_revokes_the_whole_family() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user().await;
    let r1 = token(&login, "refresh_token");
    let r2 = token(&app.refresh(&r1).await.body, "refresh_token");
    let replay = app.refresh(&r1).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert_eq!(replay.code(), "invalid_refresh_token");
    assert_eq!(app.refresh(&r2).await.status, StatusCode::UNAUTHORIZED, "the thief's or victim's r2 dies too");
}

#[actix_web::test]
async fn access_tokens_of_a_login_that_reuse_revoked_stop_working_at_once() {
    let app = spawn_app().await;
    let (email, login) = app.logged_in_user().await;
    let other_login = app.login(&email, PASSWORD).await.body;
    let r1 = token(&login, "refresh_token");
    let next = app.refresh(&r1).await.body;
    let (first_access, minted_after) = (token(&login, "access_token"), token(&next, "access_token"));
    assert_eq!(app.get("/v1/me", Some(&minted_after)).await.status, StatusCode::OK);
    assert_eq!(app.refresh(&r1).await.status, StatusCode::UNAUTHORIZED, "the replay revokes the login");
    for access in [&first_access, &minted_after] {
        let reply = app.get("/v1/me", Some(access)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "an access token of the revoked login: {}", reply.body);
    }
    let untouched = token(&other_login, "access_token");
    assert_eq!(app.get("/v1/me", Some(&untouched)).await.status, StatusCode::OK, "another login lives on");
}

#[actix_web::test]
async fn reuse_in_one_family_leaves_other_logins_alone() {
    let app = spawn_app().await;
    let (email, login) = app.logged_in_user().await;
    let other = app.login(&email, PASSWORD).await.body;
    let r1 = token(&login, "refresh_token");
    app.refresh(&r1).await;
    app.refresh(&r1).await;
    assert_eq!(app.refresh(&token(&other, "refresh_token")).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn two_concurrent_refreshes_of_one_token_let_exactly_one_win() {
    let app = spawn_app_with(|s| s.refresh_reuse_grace = Duration::from_secs(5)).await;
    let (_, login) = app.logged_in_user().await;
    let r1 = token(&login, "refresh_token");
    for _ in 0..3 {
        let (a, b) = futures_util::future::join(app.refresh(&r1), app.refresh(&r1)).await;
        let wins = [&a, &b].iter().filter(|r| r.status == StatusCode::OK).count();
        assert!(wins <= 1, "both refreshes of one token succeeded");
    }
    let login = app.logged_in_user().await.1;
    let r1 = token(&login, "refresh_token");
    let (a, b) = futures_util::future::join(app.refresh(&r1), app.refresh(&r1)).await;
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::UNAUTHORIZED]);
    let winner = if a.status == StatusCode::OK { a } else { b };
    assert_eq!(
        app.refresh(&token(&winner.body, "refresh_token")).await.status,
        StatusCode::OK,
        "a race inside the grace window does not revoke the winner's session"
    );
}

#[actix_web::test]
async fn logout_ends_every_session_of_the_user() {
    let app = spawn_app().await;
    let (email, first) = app.logged_in_user().await;
    let second = app.login(&email, PASSWORD).await.body;
    let access = token(&first, "access_token");
    let reply = app.post("/v1/auth/logout", Some(&access), serde_json::Value::Null).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/v1/me", Some(&access)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/v1/me", Some(&token(&second, "access_token"))).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&token(&first, "refresh_token")).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&token(&second, "refresh_token")).await.status, StatusCode::UNAUTHORIZED);
    let again = app.login(&email, PASSWORD).await;
    assert_eq!(app.get("/v1/me", Some(&token(&again.body, "access_token"))).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn logout_needs_an_access_token() {
    let app = spawn_app().await;
    let reply = app.post("/v1/auth/logout", None, serde_json::Value::Null).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "unauthorized");
}

#[actix_web::test]
async fn a_disabled_user_cannot_refresh_or_use_access_tokens() {
    let app = spawn_app().await;
    let (email, login) = app.logged_in_user().await;
    sqlx::query("update users set disabled_at = now() where email = $1").bind(&email).execute(&app.db).await.unwrap();
    assert_eq!(app.refresh(&token(&login, "refresh_token")).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/v1/me", Some(&token(&login, "access_token"))).await.status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn expired_unknown_and_malformed_refresh_tokens_are_refused_alike() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user().await;
    sqlx::query("update refresh_tokens set expires_at = now() - interval '1 second'").execute(&app.db).await.unwrap();
    let expired = app.refresh(&token(&login, "refresh_token")).await;
    let unknown = app.refresh("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    let huge = app.refresh(&"A".repeat(10_000)).await;
    let empty = app.refresh("").await;
    for reply in [&expired, &unknown, &huge, &empty] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.raw, expired.raw);
    }
}

#[actix_web::test]
async fn refresh_tokens_are_stored_only_as_hashes() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user().await;
    let raw = token(&login, "refresh_token");
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("select token_hash from refresh_tokens").fetch_all(&app.db).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].len(), 32);
    assert_ne!(stored[0], raw.as_bytes());
}
