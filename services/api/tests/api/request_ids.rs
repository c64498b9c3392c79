//! Request ids across services: the API keeps a well-formed `X-Request-Id` from a proxy (else
//! makes one), answers with it, and hands it on where the request's work continues elsewhere: in
//! the recording job the recorders take and in the control commands the gateways carry out.

use awc::http::StatusCode;
use awc::http::header::HeaderValue;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

/// What nginx's `$request_id` looks like.
const NGINX_ID: &str = "5f0c2b9e8d7a41f3a6b2c1d0e9f8a7b6";

/// Sends `method path` as `token`'s user with `incoming` as its `X-Request-Id`, if any; returns
/// the status and the id the API answered with.
async fn send_with_id(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    incoming: Option<&str>,
) -> (StatusCode, String) {
    let mut req = app.client.request(method.parse().unwrap(), app.url(path)).bearer_auth(token);
    if let Some(id) = incoming {
        // From bytes: a proxy may pass on any bytes, not only visible ASCII.
        req = req.insert_header(("X-Request-Id", HeaderValue::from_bytes(id.as_bytes()).unwrap()));
    }
    let res = req.insert_header(("Content-Type", "application/json")).send_body("{}").await.unwrap();
    let answered = res.headers().get("x-request-id").expect("every answer names its request").to_str().unwrap();
    (res.status(), answered.to_owned())
}

/// The `request_id` of every job in the recording job stream, oldest first ("" when absent).
async fn job_request_ids(app: &TestApp) -> Vec<String> {
    let jobs = app.recording_jobs().await;
    jobs.into_iter().map(|job| job.get("request_id").cloned().unwrap_or_default()).collect()
}

async fn owner_and_room(app: &TestApp) -> (String, String) {
    let (_, login) = app.logged_in_user().await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    let room = app.create_room(&token, "Traced").await;
    (token, room)
}

fn is_generated(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[actix_web::test]
async fn a_proxys_request_id_is_answered_audited_and_handed_to_the_recorder() {
    let app = spawn_app().await;
    let (token, room) = owner_and_room(&app).await;
    let (status, answered) =
        send_with_id(&app, "POST", &format!("/v1/rooms/{room}/recordings"), &token, Some(NGINX_ID)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answered, NGINX_ID);
    assert_eq!(job_request_ids(&app).await, [NGINX_ID]);
    let audited: String = sqlx::query_scalar("select request_id from audit_log where action = 'recording.start'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(audited, NGINX_ID);
}

#[actix_web::test]
async fn without_a_proxy_the_apis_own_request_id_reaches_the_recorder() {
    let app = spawn_app().await;
    let (token, room) = owner_and_room(&app).await;
    let (status, answered) = send_with_id(&app, "POST", &format!("/v1/rooms/{room}/recordings"), &token, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(is_generated(&answered), "{answered}");
    assert_eq!(job_request_ids(&app).await, [answered]);
}

#[actix_web::test]
async fn a_malformed_request_id_is_replaced_never_echoed_or_handed_on() {
    let app = spawn_app().await;
    let (token, _) = owner_and_room(&app).await;
    let too_long = "a".repeat(65);
    for (n, malformed) in ["has spaces", too_long.as_str(), "a/b", "<script>", "id;drop", "ä"].into_iter().enumerate()
    {
        let room = app.create_room(&token, &format!("Room {n}")).await;
        let path = format!("/v1/rooms/{room}/recordings");
        let (status, answered) = send_with_id(&app, "POST", &path, &token, Some(malformed)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert!(is_generated(&answered), "{malformed:?} answered with {answered:?}");
        assert_eq!(job_request_ids(&app).await.last().unwrap(), &answered, "{malformed:?}");
    }
    let longest = "A-z.0_9".repeat(9) + "x";
    assert_eq!(longest.len(), 64);
    let (_, answered) = send_with_id(&app, "GET", "/v1/me", &token, Some(&longest)).await;
    assert_eq!(answered, longest, "64 characters of A-Z a-z 0-9 . _ - are kept");
}

#[actix_web::test]
async fn control_commands_carry_the_id_of_the_request_behind_them() {
    let app = spawn_app().await;
    let (token, room) = owner_and_room(&app).await;
    let (email, member) = app.logged_in_user().await;
    let member_id = member["user"]["id"].as_str().unwrap().to_owned();
    let added = app.post(&format!("/v1/rooms/{room}/members"), Some(&token), json!({"email": email})).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let mut control = app.control_listener().await;

    let ban = json!({"user_id": member_id}).to_string();
    let res = app
        .client
        .post(app.url(&format!("/v1/rooms/{room}/bans")))
        .bearer_auth(&token)
        .insert_header(("X-Request-Id", NGINX_ID))
        .insert_header(("Content-Type", "application/json"))
        .send_body(ban)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let (command, request_id) = control.next_with_request_id().await;
    assert_eq!(command["remove_user"]["reason"], "banned");
    assert_eq!(request_id, NGINX_ID);

    let (status, answered) = send_with_id(&app, "DELETE", &format!("/v1/rooms/{room}"), &token, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (command, request_id) = control.next_with_request_id().await;
    assert_eq!(command["close_room"]["room_id"], room);
    assert_eq!(request_id, answered);
    assert!(is_generated(&request_id));
}
