//! Liveness, readiness and metrics endpoints of the API.

use actix_web::{HttpResponse, get, web};
use confab_common::http;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::state::AppState;

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
    let db = confab_common::postgres::ping(&state.db).await;
    let redis = confab_common::redis::ping(&state.redis).await;
    http::readiness(&[("postgres", db), ("redis", redis)])
}

/// Prometheus metrics.
#[utoipa::path(tag = "ops", responses((status = 200, content_type = "text/plain")))]
#[get("/metrics")]
pub async fn metrics(handle: web::Data<PrometheusHandle>) -> HttpResponse {
    http::metrics(handle).await
}
