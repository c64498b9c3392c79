//! HTTP plumbing shared by the three services: the one JSON error shape, request ids, request
//! metrics and access logs, and the `/healthz` and `/metrics` endpoints.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;

/// Seconds-based histogram buckets for request latency, from 1 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// The SFU's forwarding latency (a datagram's receipt to its copies handed to the kernel), from
/// 50 µs to 50 ms: its aim is a p99 under 2 ms.
const FORWARDING_BUCKETS: &[f64] = &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05];
/// Bitrates (`*_bits_per_second`: the SFU's bandwidth estimates), from 100 kbit/s to 20 Mbit/s.
const BITRATE_BUCKETS: &[f64] = &[1e5, 2.5e5, 5e5, 1e6, 1.5e6, 2.5e6, 5e6, 1e7, 2e7];

/// The body of every error response: `{"error":{"code":"snake_case","message":"..."}}`.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// An error response in the shared shape.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .json(ErrorBody { error: ErrorDetail { code: code.to_owned(), message: message.into() } })
}

/// The fallback for unknown routes: a JSON 404 instead of an empty body.
pub async fn not_found() -> HttpResponse {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such resource")
}

/// `GET /healthz`: the process is alive and serving.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// The answer of `GET /readyz` given the outcome of each dependency check.
pub fn readiness(checks: &[(&str, Result<(), String>)]) -> HttpResponse {
    let ready = checks.iter().all(|(_, r)| r.is_ok());
    let detail: serde_json::Map<String, serde_json::Value> = checks
        .iter()
        .map(|(name, r)| ((*name).to_owned(), r.as_ref().map_or("unreachable", |_| "ok").into()))
        .collect();
    for (name, result) in checks {
        if let Err(reason) = result {
            tracing::warn!(dependency = name, reason = %reason, "dependency not ready");
        }
    }
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    HttpResponse::build(status).json(serde_json::json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": detail,
    }))
}

/// Installs the process-wide Prometheus recorder and returns the handle `/metrics` renders.
/// Safe to call more than once (tests start several apps in one process).
pub fn install_metrics() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("sfu_forwarding_latency_seconds".to_owned()),
                        FORWARDING_BUCKETS,
                    )
                })
                .and_then(|builder| {
                    builder.set_buckets_for_metric(Matcher::Suffix("_bits_per_second".to_owned()), BITRATE_BUCKETS)
                })
                .expect("static bucket lists are not empty")
                .install_recorder()
                .expect("the metrics recorder is installed once per process")
        })
        .clone()
}

/// `GET /metrics` in the Prometheus text format.
pub async fn metrics(handle: web::Data<PrometheusHandle>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(handle.render())
}

/// The id of one request: in the access log (`request.id`), the `X-Request-Id` response header,
/// the audit log, and the messages the API sends other services on behalf of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The header a proxy (nginx: `proxy_set_header X-Request-Id $request_id;`) sets, and the API
/// answers with.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

impl RequestId {
    /// The longest incoming id kept.
    pub const MAX_LEN: usize = 64;

    /// An id from outside (a proxy's header, a job entry): 1 to 64 of `A-Z a-z 0-9 . _ -`, so it
    /// is safe to log, store and echo. Anything else is refused and never logged.
    pub fn parse(raw: &str) -> Option<Self> {
        let well_formed = (1..=Self::MAX_LEN).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        well_formed.then(|| Self(raw.to_owned()))
    }

    /// A fresh id: 32 hex digits, like nginx's `$request_id`.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The id [`observe`] gave `req` (empty for a request it did not see).
    pub fn of(req: &actix_web::HttpRequest) -> String {
        req.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default()
    }

    /// The incoming `X-Request-Id` when well-formed, else a fresh one.
    fn for_request(req: &ServiceRequest) -> Self {
        req.headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(Self::parse)
            .unwrap_or_else(Self::generate)
    }
}

/// The service whose request metrics [`observe`] records: every metric name starts with its
/// service (`api_http_requests_total`, `gateway_http_…`, `recorder_http_…`, `ingest_http_…`,
/// `sfu_http_…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Api,
    Gateway,
    Recorder,
    Ingest,
    Sfu,
}

/// Counts one request and records its latency. The names are literals so that they can be
/// found in the code (the docs-in-sync test reads them).
fn record_request(service: Service, labels: &[(&'static str, String); 3], seconds: f64) {
    match service {
        Service::Api => {
            metrics::counter!("api_http_requests_total", labels).increment(1);
            metrics::histogram!("api_http_request_duration_seconds", labels).record(seconds);
        }
        Service::Gateway => {
            metrics::counter!("gateway_http_requests_total", labels).increment(1);
            metrics::histogram!("gateway_http_request_duration_seconds", labels).record(seconds);
        }
        Service::Recorder => {
            metrics::counter!("recorder_http_requests_total", labels).increment(1);
            metrics::histogram!("recorder_http_request_duration_seconds", labels).record(seconds);
        }
        Service::Ingest => {
            metrics::counter!("ingest_http_requests_total", labels).increment(1);
            metrics::histogram!("ingest_http_request_duration_seconds", labels).record(seconds);
        }
        Service::Sfu => {
            metrics::counter!("sfu_http_requests_total", labels).increment(1);
            metrics::histogram!("sfu_http_request_duration_seconds", labels).record(seconds);
        }
    }
}

/// Middleware (`from_fn(|req, next| http::observe(Service::Api, req, next))`): gives each
/// request an id (a well-formed incoming `X-Request-Id`, else a new one), counts requests and
/// records latency by route pattern and status, and writes one access-log line per request. The
/// route is the matched pattern (`/v1/rooms/{id}`), never the raw path or query, so labels stay
/// bounded and secrets in query strings stay out of logs.
pub async fn observe(
    service: Service,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let RequestId(request_id) = RequestId::for_request(&req);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let mut res = next.call(req).await?;
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(actix_web::http::header::HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    let labels = [("method", method.clone()), ("route", route.clone()), ("status", status.to_string())];
    record_request(service, &labels, elapsed.as_secs_f64());
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    // 503 is deliberate load shedding or a dependency outage, counted in metrics; not an error.
    if status >= 500 && status != 503 {
        tracing::error!(http.method = %method, http.route = %route, http.status = status, duration_ms, request.id = %request_id, "request");
    } else {
        tracing::info!(http.method = %method, http.route = %route, http.status = status, duration_ms, request.id = %request_id, "request");
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::RequestId;

    #[test]
    fn well_formed_request_ids_are_kept() {
        for id in ["0123456789abcdef0123456789abcdef", "a", "req-1.2_3", &"x".repeat(64)] {
            assert_eq!(RequestId::parse(id), Some(RequestId(id.to_owned())), "{id}");
        }
    }

    #[test]
    fn malformed_request_ids_are_refused() {
        for id in ["", &"x".repeat(65), "a b", "a\nb", "a/b", "<script>", "é", "id\u{0}"] {
            assert_eq!(RequestId::parse(id), None, "{id:?}");
        }
    }

    #[test]
    fn generated_request_ids_look_like_nginx_ones() {
        let RequestId(id) = RequestId::generate();
        assert_eq!(id.len(), 32);
        assert!(RequestId::parse(&id).is_some());
    }
}
