//! The ops server that the recorder and the camera ingest run: health, readiness against a real
//! Postgres and Redis, metrics, and JSON 404s.

use std::time::Duration;

use awc::http::StatusCode;
use confab_common::http::Service;
use confab_common::ops::OpsServer;

fn redis_url() -> String {
    std::env::var("REDIS_URL").expect("REDIS_URL must be set: run the tests with deploy/local/test")
}

fn database_url() -> String {
    std::env::var("DATABASE_URL").expect("DATABASE_URL must be set: run the tests with deploy/local/test")
}

async fn start(redis_url: &str) -> String {
    start_with(&database_url(), redis_url).await
}

async fn start_with(database_url: &str, redis_url: &str) -> String {
    let postgres = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy(database_url)
        .unwrap();
    let server = OpsServer::build(Service::Recorder, "127.0.0.1:0", Some(postgres), redis_url).unwrap();
    let base = format!("http://127.0.0.1:{}", server.port());
    actix_web::rt::spawn(server.run_until_stopped());
    base
}

async fn get(url: String) -> (StatusCode, String) {
    let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let mut res = client.get(url).send().await.unwrap();
    let body = res.body().await.unwrap();
    (res.status(), String::from_utf8_lossy(&body).into_owned())
}

#[actix_web::test]
async fn healthy_and_ready_when_postgres_and_redis_are_up() {
    let base = start(&redis_url()).await;
    assert_eq!(get(format!("{base}/healthz")).await.0, StatusCode::OK);
    let (status, body) = get(format!("{base}/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""redis":"ok""#) && body.contains(r#""postgres":"ok""#), "{body}");
}

#[actix_web::test]
async fn alive_but_not_ready_when_postgres_is_unreachable() {
    let base = start_with("postgres://postgres@127.0.0.1:1/confab", &redis_url()).await;
    assert_eq!(get(format!("{base}/healthz")).await.0, StatusCode::OK);
    let (status, body) = get(format!("{base}/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains(r#""postgres":"unreachable""#) && body.contains(r#""redis":"ok""#), "{body}");
}

#[actix_web::test]
async fn alive_but_not_ready_when_redis_is_unreachable() {
    let base = start("redis://127.0.0.1:1/").await;
    assert_eq!(get(format!("{base}/healthz")).await.0, StatusCode::OK);
    let (status, body) = get(format!("{base}/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains(r#""redis":"unreachable""#), "{body}");
}

#[actix_web::test]
async fn metrics_are_prometheus_text_and_unknown_routes_are_json_404s() {
    let base = start(&redis_url()).await;
    let (status, body) = get(format!("{base}/v1/nothing-here")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains(r#""code":"not_found""#), "{body}");
    get(format!("{base}/healthz")).await;
    let (status, text) = get(format!("{base}/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains(r#"route="/healthz""#), "{text}");
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
}
