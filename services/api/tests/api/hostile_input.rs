//! Malformed, oversized and unexpected requests get a clear 4xx in the one JSON error shape.

use awc::http::StatusCode;

use crate::helpers::spawn_app;

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
async fn unknown_routes_and_methods_get_a_json_404() {
    let app = spawn_app().await;
    // (`GET /nope` is a page address: the web client's index.html answers it, see web.rs.)
    for (method, path) in [
        ("POST", "/nope"),
        ("GET", "/v1/nope"),
        ("GET", "/v1/"),
        ("DELETE", "/v1/me"),
        ("GET", "/v1/auth/login"),
        ("GET", "/v1/me/../../etc/passwd"),
    ] {
        let reply = app.send(method, path, None, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(reply.code(), "not_found");
    }
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
