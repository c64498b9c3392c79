//! Health, readiness, metrics, the JWKS and the OpenAPI document.

use awc::http::StatusCode;

use crate::helpers::{spawn_app, spawn_app_with};

#[actix_web::test]
async fn the_openapi_document_is_3_1_and_the_router_serves_every_route_in_it() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut expected = Vec::new();
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path.replace('{', "x").replace('}', "");
            app.send_raw(&method.to_uppercase(), &concrete, None, "{}").await;
            expected.push(format!(r#"method="{}",route="{path}""#, method.to_uppercase()));
        }
    }
    // The metrics label a request with the route pattern that matched it ("unmatched" if none).
    let metrics = String::from_utf8(app.get("/metrics", None).await.raw).unwrap();
    for label in expected {
        assert!(metrics.contains(&label), "documented but not routed: {label}");
    }
}

#[actix_web::test]
async fn health_and_readiness_report_ok_with_postgres_and_redis_up() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["checks"]["postgres"], "ok");
    assert_eq!(ready.body["checks"]["redis"], "ok");
}

#[actix_web::test]
async fn readiness_is_503_and_requests_fail_cleanly_when_dependencies_are_down() {
    let app = spawn_app_with(|s| {
        s.redis_url = "redis://127.0.0.1:1/".into();
        s.database_url = "postgres://postgres@127.0.0.1:1/none".into();
    })
    .await;
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK, "alive even when not ready");
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["checks"]["redis"], "unreachable");
    assert_eq!(ready.body["checks"]["postgres"], "unreachable");
    let login = app.login("a@example.org", "whatever password").await;
    assert_eq!(login.status, StatusCode::SERVICE_UNAVAILABLE, "{}", login.body);
    assert_eq!(login.code(), "unavailable");
    assert!(login.headers.contains_key("retry-after"));
}

#[actix_web::test]
async fn metrics_count_requests_by_route_pattern_and_status() {
    let app = spawn_app().await;
    app.get("/healthz", None).await;
    app.get("/v1/me", None).await;
    let metrics = app.get("/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = String::from_utf8(metrics.raw).unwrap();
    assert!(text.contains(r#"api_http_requests_total{method="GET",route="/v1/me",status="401"}"#), "{text}");
    let latency = r#"api_http_request_duration_seconds_bucket{method="GET",route="/v1/me",status="401",le="0.005"}"#;
    assert!(text.contains(latency), "latency histogram by method, route and status: {text}");
}

#[actix_web::test]
async fn jwks_publishes_only_public_ed25519_keys() {
    let app = spawn_app().await;
    let jwks = app.get("/.well-known/jwks.json", None).await;
    let key = &jwks.body["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert!(key.get("d").is_none(), "never the private part");
    assert_eq!(jwks.body["keys"].as_array().unwrap().len(), 1);
}
