//! Sign-up and login: validation, uniqueness, enumeration resistance, limits, the hashing pool.

use awc::http::StatusCode;
use confab_api::settings::Limit;
use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app, spawn_app_with, unique_email};

#[actix_web::test]
async fn signup_creates_a_user_with_a_normalized_email_and_no_secrets_in_the_reply() {
    let app = spawn_app().await;
    let reply = app
        .post(
            "/v1/auth/signup",
            None,
            json!({"email": "  Ann@Example.ORG ", "password": PASSWORD, "display_name": " Ann "}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let user = &reply.body["user"];
    assert_eq!(user["email"], "ann@example.org");
    assert_eq!(user["display_name"], "Ann");
    assert_eq!(user["role"], "user");
    assert!(!String::from_utf8_lossy(&reply.raw).contains("argon2"), "no hash in the reply");
    let stored: String = sqlx::query_scalar("select password_hash from users").fetch_one(&app.db).await.unwrap();
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
}

#[actix_web::test]
async fn signing_up_twice_with_the_same_email_in_any_case_is_a_conflict() {
    let app = spawn_app().await;
    assert_eq!(app.signup("bob@example.org", PASSWORD).await.status, StatusCode::CREATED);
    let again = app.signup("BOB@example.org ", PASSWORD).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "email_taken");
}

#[actix_web::test]
async fn signup_rejects_invalid_fields_with_a_code_naming_the_problem() {
    let app = spawn_app().await;
    let cases = [
        (json!({"email": "not-an-email", "password": PASSWORD, "display_name": "A"}), "invalid_email"),
        (json!({"email": unique_email(), "password": "short", "display_name": "A"}), "invalid_password"),
        (json!({"email": unique_email(), "password": "x".repeat(1025), "display_name": "A"}), "invalid_password"),
        (json!({"email": unique_email(), "password": PASSWORD, "display_name": "  "}), "invalid_display_name"),
        (
            json!({"email": unique_email(), "password": PASSWORD, "display_name": "x".repeat(101)}),
            "invalid_display_name",
        ),
        (json!({"email": unique_email(), "password": PASSWORD}), "invalid_field"),
        (json!({"email": 42, "password": PASSWORD, "display_name": "A"}), "invalid_field"),
    ];
    for (body, code) in cases {
        let reply = app.post("/v1/auth/signup", None, body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.code(), code, "{body} -> {}", reply.body);
    }
    let count: i64 = sqlx::query_scalar("select count(*) from users").fetch_one(&app.db).await.unwrap();
    assert_eq!(count, 0);
}

#[actix_web::test]
async fn passwords_may_be_any_unicode_and_up_to_1024_bytes() {
    let app = spawn_app().await;
    for password in ["pässwörd ünïcödé 🔑", &"ä".repeat(512)] {
        let email = unique_email();
        assert_eq!(app.signup(&email, password).await.status, StatusCode::CREATED);
        assert_eq!(app.login(&email, password).await.status, StatusCode::OK);
        let mut almost: String = password.chars().collect();
        almost.pop();
        almost.push('x');
        assert_eq!(app.login(&email, &almost).await.status, StatusCode::UNAUTHORIZED, "no truncation");
    }
}

#[actix_web::test]
async fn login_returns_a_token_pair_and_the_user() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signup(&email, PASSWORD).await;
    let reply = app.login(&email.to_uppercase(), PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 900);
    assert_eq!(reply.body["user"]["email"], email);
    assert_eq!(reply.body["refresh_token"].as_str().unwrap().len(), 43, "256 bits, base64url");
    let me = app.get("/v1/me", reply.body["access_token"].as_str()).await;
    assert_eq!(me.status, StatusCode::OK);
}

#[actix_web::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signup(&email, PASSWORD).await;
    let wrong_password = app.login(&email, "wrong password!").await;
    let unknown_user = app.login(&unique_email(), "wrong password!").await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.status, unknown_user.status);
    assert_eq!(wrong_password.raw, unknown_user.raw, "byte-identical bodies");
    assert_eq!(wrong_password.code(), "invalid_credentials");
}

#[actix_web::test]
async fn unknown_email_costs_about_as_much_time_as_a_wrong_password() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signup(&email, PASSWORD).await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..15 {
        let t = std::time::Instant::now();
        app.login(&email, "wrong password!").await;
        known.push(t.elapsed());
        let t = std::time::Instant::now();
        app.login(&unique_email(), "wrong password!").await;
        unknown.push(t.elapsed());
    }
    known.sort();
    unknown.sort();
    // A ratio of interleaved medians, never an absolute time. Both pay for one argon2
    // verification; without the dummy hash the unknown-user path would be ~20× faster.
    let ratio = unknown[7].as_secs_f64() / known[7].as_secs_f64();
    assert!(ratio > 0.3, "unknown-user logins are suspiciously fast: ratio {ratio:.2}");
}

#[actix_web::test]
async fn a_disabled_account_cannot_log_in() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signup(&email, PASSWORD).await;
    sqlx::query("update users set disabled_at = now() where email = $1").bind(&email).execute(&app.db).await.unwrap();
    let reply = app.login(&email, PASSWORD).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.code(), "account_disabled");
    let wrong = app.login(&email, "wrong password!").await;
    assert_eq!(wrong.code(), "invalid_credentials", "only the password holder learns the account is disabled");
}

#[actix_web::test]
async fn logins_from_one_ip_are_rate_limited_with_retry_after() {
    let app = spawn_app_with(|s| s.limits.login_per_ip = Limit::per_minute(3)).await;
    for _ in 0..3 {
        assert_eq!(app.login(&unique_email(), PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    }
    let limited = app.login(&unique_email(), PASSWORD).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "rate_limited");
    let retry_after: u64 = limited.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
}

#[actix_web::test]
async fn logins_to_one_account_are_rate_limited_whatever_the_ip() {
    let app = spawn_app_with(|s| s.limits.login_per_account = Limit::per_minute(2)).await;
    let email = unique_email();
    app.signup(&email, PASSWORD).await;
    app.login(&email, "wrong password!").await;
    app.login(&email, "wrong password!").await;
    assert_eq!(app.login(&email, PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.login(&unique_email(), PASSWORD).await.status, StatusCode::UNAUTHORIZED, "others unaffected");
}

#[actix_web::test]
async fn failed_logins_per_account_hit_a_hard_cap_that_also_stops_the_right_password() {
    let app = spawn_app_with(|s| {
        s.limits.login_failures_per_account = Limit::per_hour(3);
        s.limits.login_per_account = Limit::per_minute(100);
    })
    .await;
    let email = unique_email();
    app.signup(&email, PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(app.login(&email, "wrong password!").await.status, StatusCode::UNAUTHORIZED);
    }
    let capped = app.login(&email, PASSWORD).await;
    assert_eq!(capped.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = capped.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!(retry_after > 60 && retry_after <= 3600, "temporary, not permanent: {retry_after}");
}

#[actix_web::test]
async fn signups_from_one_ip_are_rate_limited() {
    let app = spawn_app_with(|s| s.limits.signup_per_ip = Limit::per_hour(2)).await;
    assert_eq!(app.signup(&unique_email(), PASSWORD).await.status, StatusCode::CREATED);
    assert_eq!(app.signup(&unique_email(), PASSWORD).await.status, StatusCode::CREATED);
    let limited = app.signup(&unique_email(), PASSWORD).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
}

#[actix_web::test]
async fn a_login_flood_beyond_the_hashing_queue_gets_503_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.hash_workers = 1;
        s.hash_queue = 1;
        s.limits.login_per_ip = Limit::per_minute(1000);
        s.limits.login_per_account = Limit::per_minute(1000);
    })
    .await;
    let replies = futures_util::future::join_all((0..12).map(|_| app.login("flood@example.org", PASSWORD))).await;
    let overloaded: Vec<_> = replies.iter().filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE).collect();
    assert!(!overloaded.is_empty(), "a queue of 1 cannot absorb 12 concurrent logins");
    assert!(overloaded.iter().all(|r| r.code() == "overloaded" && r.headers.contains_key("retry-after")));
    assert!(replies.iter().all(|r| r.status != StatusCode::INTERNAL_SERVER_ERROR));
    let me = app.get("/v1/me", None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "other requests are still served");
}

#[actix_web::test]
async fn admin_create_makes_a_new_admin_or_promotes_an_existing_account() {
    let app = spawn_app().await;
    let src =
        confab_common::config::Source::from_vars([("DATABASE_URL".to_owned(), app.settings.database_url.clone())])
            .unwrap();
    let message = confab_api::cli::create_admin(&src, "Root@Example.org", None, PASSWORD).await.unwrap();
    assert!(message.contains("created admin root@example.org"), "{message}");
    let login = app.login("root@example.org", PASSWORD).await;
    assert_eq!(login.body["user"]["role"], "admin");

    let email = unique_email();
    app.signup(&email, PASSWORD).await;
    let message = confab_api::cli::create_admin(&src, &email, None, "ignored password").await.unwrap();
    assert!(message.contains("now an admin"), "{message}");
    assert_eq!(app.login(&email, PASSWORD).await.body["user"]["role"], "admin");

    assert!(confab_api::cli::create_admin(&src, "x@example.org", None, "short").await.is_err());
}
