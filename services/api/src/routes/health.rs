//! Liveness, readiness and metrics endpoints of the API.

use actix_web::{HttpResponse, get, web};
use confab_common::http;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::startup::AppState;

/// The process is alive.
#[utoipa::path(tag = "ops", responses((status = 200)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    http::healthz().await
}

/// Postgres and Redis are reachable (200), or not (503).
#[utoipa::path(tag = "ops", responses((status = 200), (status = 503)))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = tokio::time::timeout(confab_common::redis::COMMAND_TIMEOUT, sqlx::query("select 1").execute(&state.db))
        .await
        .map_err(|_| "timed out".to_owned())
        .and_then(|r| r.map(drop).map_err(|e| e.to_string()));
    let redis = confab_common::redis::ping(&state.redis).await;
    http::readiness(&[("postgres", db), ("redis", redis)])
}

/// Prometheus metrics.
#[utoipa::path(tag = "ops", responses((status = 200, content_type = "text/plain")))]
#[get("/metrics")]
pub async fn metrics(handle: web::Data<PrometheusHandle>) -> HttpResponse {
    http::metrics(handle).await
}
