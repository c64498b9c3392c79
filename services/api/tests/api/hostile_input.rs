//! Malformed, oversized and unexpected requests get a clear 4xx in the one JSON error shape.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use uuid::Uuid;

use crate::helpers::{spawn_app, spawn_app_with};

const JSON_ENDPOINTS: &[(&str, &str)] =
    &[("POST", "/v1/auth/signup"), ("POST", "/v1/auth/login"), ("POST", "/v1/auth/refresh")];

#[actix_web::test]
async fn malformed_json_is_a_400_naming_the_problem() {
    let app = spawn_app().await;
    for (method, path) in JSON_ENDPOINTS {
        for body in [&b"{"[..], b"not json", b"", b"[1,2", b"\xff\xfe\x00", b"{\"email\": }"] {
            let reply = app.send_raw(method, path, None, body.to_vec()).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path} {body:?}");
            assert!(matches!(reply.code(), "malformed_json" | "invalid_field"), "{path}: {}", reply.body);
        }
    }
}

#[actix_web::test]
async fn wrong_types_and_missing_fields_are_a_400_invalid_field() {
    let app = spawn_app().await;
    for (method, path) in JSON_ENDPOINTS {
        for body in ["{}", "[]", "null", "42", r#"{"email": [], "password": {}, "refresh_token": 1}"#] {
            let reply = app.send_raw(method, path, None, body).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path} {body}");
            assert_eq!(reply.code(), "invalid_field", "{path} {body}: {}", reply.body);
        }
    }
}

#[actix_web::test]
async fn bodies_over_64_kib_are_a_413() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user().await;
    let token = login["access_token"].as_str();
    let huge = format!(r#"{{"email": "{}", "password": "x", "display_name": "x"}}"#, "a".repeat(70 * 1024));
    for (method, path) in JSON_ENDPOINTS.iter().chain(&[("PATCH", "/v1/me")]) {
        let reply = app.send_raw(method, path, token, huge.clone()).await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(reply.code(), "payload_too_large");
    }
}

#[actix_web::test]
async fn unknown_routes_get_a_json_404() {
    let app = spawn_app().await;
    // (`GET /nope` is a page address: the web client's index.html answers it, see web.rs.)
    for (method, path) in [("POST", "/nope"), ("GET", "/v1/nope"), ("GET", "/v1/"), ("GET", "/v1/me/../../etc/passwd")]
    {
        let reply = app.send(method, path, None, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(reply.code(), "not_found");
    }
}

#[actix_web::test]
async fn a_method_a_route_does_not_answer_is_a_405_listing_the_ones_it_does() {
    let app = spawn_app().await;
    let mut allowed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (method, template) in app.documented_routes().await {
        allowed.entry(template).or_default().push(method.to_uppercase());
    }
    for (template, methods) in &allowed {
        let path = fill_params(template, &Uuid::new_v4().to_string());
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"].iter().filter(|m| !methods.iter().any(|a| a == *m)) {
            let reply = app.send(method, &path, None, None).await;
            assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {}", reply.body);
            assert_eq!(reply.code(), "method_not_allowed", "{method} {path}");
            let allow: BTreeSet<&str> =
                reply.headers.get("allow").expect("an Allow header").to_str().unwrap().split(", ").collect();
            assert_eq!(allow, methods.iter().map(String::as_str).collect(), "{method} {path}");
        }
    }
}

#[actix_web::test]
async fn nul_characters_are_a_400_on_every_route_never_a_500() {
    let app = spawn_app().await;
    let (_, admin) = app.admin_token().await;
    // Every field name a route reads, each carrying a NUL: the login email and the webhook URL
    // of issue 14 among them.
    let body = r#"{"email": "a\u0000@b.test", "password": "pass\u0000word", "display_name": "\u0000",
        "name": "Stand\u0000up", "url": "https://hooks.example.org/\u0000", "refresh_token": "\u0000",
        "rtsp_url": "rtsp://8.8.4.4/\u0000", "role": "member\u0000", "user_id": "\u0000"}"#;
    for (method, template) in app.documented_routes().await {
        let path = fill_params(&template, &Uuid::new_v4().to_string());
        let mut requests = vec![(format!("{path}?q=%00&limit=%00&cursor=%00&room_id=%00"), ""), (path.clone(), body)];
        if template.contains('{') {
            requests.push((fill_params(&template, "a%00b"), ""));
        }
        for (path, body) in requests {
            let reply = app.send_raw(&method.to_uppercase(), &path, Some(&admin), body).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{method} {path} {body}: {}", reply.body);
            assert_eq!(reply.code(), "invalid_text", "{method} {path} {body}");
        }
    }
}

#[actix_web::test]
async fn query_strings_the_route_cannot_read_are_a_400_in_the_error_shape() {
    let app = spawn_app().await;
    let (_, admin) = app.admin_token().await;
    for path in ["/v1/rooms?limit=99999999999999999999", "/v1/rooms?limit=ten", "/v1/admin/users?limit=1.5"] {
        let reply = app.get(path, Some(&admin)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(reply.headers.get("content-type").unwrap(), "application/json", "{path}");
        assert_eq!(reply.code(), "invalid_query", "{path}: {}", reply.body);
    }
}

/// `template` with each `{param}` segment replaced by `value`.
fn fill_params(template: &str, value: &str) -> String {
    template
        .split('/')
        .map(|segment| if segment.starts_with('{') { value } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

#[actix_web::test]
async fn authenticated_endpoints_refuse_anonymous_callers_with_401() {
    let app = spawn_app().await;
    for (method, path) in [("GET", "/v1/me"), ("PATCH", "/v1/me"), ("POST", "/v1/auth/logout")] {
        let reply = app.send_raw(method, path, None, "{}").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(reply.headers.get("www-authenticate").unwrap(), "Bearer");
    }
}

#[actix_web::test]
async fn hostile_strings_are_stored_and_returned_verbatim_not_interpreted() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user().await;
    let token = login["access_token"].as_str();
    let name = "Robert'); DROP TABLE users;-- <script>alert(1)</script> \u{202e}";
    let reply = app.send("PATCH", "/v1/me", token, Some(serde_json::json!({"display_name": name}))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["display_name"], name.trim());
    assert_eq!(app.get("/v1/me", token).await.body["display_name"], name.trim());
}

#[actix_web::test]
async fn a_body_that_stops_halfway_is_answered_408_and_its_connection_closed_within_the_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|s| s.limits.body_read_timeout = Duration::from_secs(1)).await;
    let mut socket = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    let head = "POST /v1/auth/login HTTP/1.1\r\nHost: confab.test\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\n\r\n{\"email\": \"ann@exa";
    socket.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection well before 5 s")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "closed after {:?}", started.elapsed());
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
}

#[actix_web::test]
async fn a_json_array_is_not_read_into_a_bodys_fields() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user().await;
    let token = login["access_token"].as_str().unwrap();
    let room = app.create_room(token, "Stand-up").await;
    for (method, path) in [("PATCH", format!("/v1/rooms/{room}")), ("POST", format!("/v1/rooms/{room}/invites"))] {
        let reply = app.send_raw(method, &path, Some(token), " [null, null]").await;
        assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, "invalid_field"), "{method} {path}");
    }
}
