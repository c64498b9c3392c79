//! Webhook endpoints and their deliveries (docs/operations.md, "Webhooks"). The signing secret
//! is shown once, when the endpoint is created; every delivery and each of its attempts can be
//! read back, so an operator can see what a receiver got and why a delivery failed.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::admin::Admin;
use crate::domain::page::{Cursor, Page, PageQuery};
use crate::error::ApiError;
use crate::openapi;
use crate::routes::{ErrorResponse, audit};
use crate::state::AppState;
use crate::store::webhooks::{self, Attempt, Delivery, Endpoint, EndpointChange, NewEndpoint};
use crate::webhooks::EVENT_TYPES;
use crate::webhooks::signature::{self, SigningSecret};

const MAX_URL_BYTES: usize = 2048;
const MAX_DESCRIPTION_CHARS: usize = 200;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// `http` or `https` URL the events are POSTed to; no credentials in it.
    #[schema(schema_with = openapi::webhook_url)]
    pub url: String,
    /// Event types to send; absent or empty means every type.
    #[serde(default)]
    #[schema(schema_with = openapi::webhook_events)]
    pub events: Vec<String>,
    /// `whsec_` + base64 of 24–64 bytes; generated when absent.
    #[schema(schema_with = openapi::optional_webhook_secret)]
    pub secret: Option<String>,
    #[serde(default)]
    #[schema(schema_with = openapi::webhook_description)]
    pub description: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookUpdate {
    #[schema(schema_with = openapi::optional_webhook_url)]
    pub url: Option<String>,
    #[schema(schema_with = openapi::optional_webhook_events)]
    pub events: Option<Vec<String>>,
    /// A paused endpoint keeps its deliveries queued and gets them when resumed.
    pub active: Option<bool>,
    #[schema(schema_with = openapi::optional_webhook_description)]
    pub description: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryCountsView {
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub active: bool,
    pub description: String,
    /// Attempts in a row that failed; while it is above 0 the endpoint gets one delivery at a
    /// time, at `next_probe_at`.
    pub consecutive_failures: i32,
    pub next_probe_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deliveries: DeliveryCountsView,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The signing secret; shown only here.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

#[derive(Serialize, ToSchema)]
pub struct EventSummary {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub room_id: Option<Uuid>,
    pub room_seq: Option<i64>,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct AttemptView {
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status; absent when no response came.
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: Uuid,
    /// `pending`, `delivered` or `failed` (given up after the retry window).
    pub status: String,
    pub attempts: i32,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub event: EventSummary,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<AttemptView>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct DeliveryQuery {
    /// Only deliveries in this status.
    #[param(value_type = Option<DeliveryStatus>)]
    pub status: Option<String>,
}

/// Where a delivery stands.
#[derive(Clone, Copy, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    fn parse(raw: &str) -> Result<Self, ApiError> {
        match raw {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            _ => Err(ApiError::invalid("invalid_status", "status is one of pending, delivered, failed")),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

fn check_url(url: &str) -> Result<(), ApiError> {
    let bad = |message: &str| ApiError::invalid("invalid_url", message.to_owned());
    if url.len() > MAX_URL_BYTES {
        return Err(bad("url is longer than 2048 bytes"));
    }
    if !is_plain_http_url(url) {
        return Err(bad(
            "url must be http(s)://host[:port] then a path in printable ASCII, the host a DNS name or IPv4 address",
        ));
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| bad("url is not a valid URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("url must be an http or https URL with a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("url must not contain credentials; the signature authenticates Confab"));
    }
    Ok(())
}

/// The URL forms a receiver may have, exactly as the API description's pattern states them
/// (`openapi::webhook_url`): `http(s)://`, a DNS name whose last label starts with a letter or an
/// IPv4 address, an optional port (up to 65535), then anything printable in ASCII after a `/`,
/// `?` or `#`. Nothing else reaches the URL parser, whose leniency (`*` in host names, text it
/// rewrites) no schema could state.
fn is_plain_http_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) else { return false };
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let dns_name = host.split('.').all(label)
        && host.rsplit('.').next().is_some_and(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()));
    (dns_name || host.parse::<std::net::Ipv4Addr>().is_ok())
        && port.is_none_or(|p| {
            (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
        })
        && tail.bytes().all(|b| b.is_ascii_graphic())
}

fn check_events(events: &[String]) -> Result<Vec<String>, ApiError> {
    let mut wanted: Vec<String> = Vec::new();
    for event in events {
        if !EVENT_TYPES.contains(&event.as_str()) {
            let known = EVENT_TYPES.join(", ");
            return Err(ApiError::invalid("invalid_events", format!("unknown event type; known types: {known}")));
        }
        if !wanted.contains(event) {
            wanted.push(event.clone());
        }
    }
    Ok(wanted)
}

fn check_description(description: &str) -> Result<(), ApiError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS || description.chars().any(char::is_control) {
        return Err(ApiError::invalid("invalid_description", "description is at most 200 printable characters"));
    }
    Ok(())
}

async fn view(state: &AppState, endpoint: Endpoint) -> Result<WebhookView, ApiError> {
    let counts = webhooks::delivery_counts(&state.db, endpoint.id).await?;
    Ok(WebhookView {
        id: endpoint.id,
        url: endpoint.url,
        events: endpoint.events,
        active: endpoint.active,
        description: endpoint.description,
        consecutive_failures: endpoint.failures,
        next_probe_at: (endpoint.failures > 0).then_some(endpoint.retry_at).flatten(),
        created_at: endpoint.created_at,
        updated_at: endpoint.updated_at,
        deliveries: DeliveryCountsView { pending: counts.pending, delivered: counts.delivered, failed: counts.failed },
    })
}

async fn endpoint(state: &AppState, raw: &str) -> Result<Endpoint, ApiError> {
    let id = Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)?;
    webhooks::find_endpoint(&state.db, id).await?.ok_or(ApiError::NotFound)
}

/// Register a webhook endpoint. Events from now on are delivered to it.
#[utoipa::path(tag = "admin", security(("bearer" = [])), request_body = NewWebhook, responses(
    (status = 201, body = CreatedWebhook), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
))]
#[post("/v1/admin/webhooks")]
pub async fn create_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    Admin(admin): Admin,
    body: web::Json<NewWebhook>,
) -> Result<HttpResponse, ApiError> {
    check_url(&body.url)?;
    let events = check_events(&body.events)?;
    check_description(&body.description)?;
    let secret = match &body.secret {
        Some(secret) => {
            SigningSecret::parse(secret).map_err(|e| ApiError::invalid("invalid_secret", e.to_string()))?;
            secret.clone()
        }
        None => signature::generate(),
    };
    let mut tx = state.db.begin().await?;
    let new = NewEndpoint { url: &body.url, secret: &secret, events: &events, description: &body.description };
    let created = webhooks::insert_endpoint(&mut *tx, &new).await?;
    let details = serde_json::json!({"webhook_id": created.id, "events": events});
    audit(&mut tx, &req, admin.id, "webhook.create", None, None, details).await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(CreatedWebhook { webhook: view(&state, created).await?, secret }))
}

/// Every webhook endpoint, oldest first, with its delivery counts.
#[utoipa::path(tag = "admin", security(("bearer" = [])), responses(
    (status = 200, body = WebhookList), (status = 403, body = ErrorResponse),
))]
#[get("/v1/admin/webhooks")]
pub async fn list_webhooks(state: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let mut views = Vec::new();
    for endpoint in webhooks::list_endpoints(&state.db).await? {
        views.push(view(&state, endpoint).await?);
    }
    Ok(HttpResponse::Ok().json(WebhookList { webhooks: views }))
}

/// One webhook endpoint.
#[utoipa::path(tag = "admin", security(("bearer" = [])), responses(
    (status = 200, body = WebhookView), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
))]
#[get("/v1/admin/webhooks/{id}")]
pub async fn get_webhook(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = endpoint(&state, &path).await?;
    Ok(HttpResponse::Ok().json(view(&state, endpoint).await?))
}

/// Change an endpoint's URL, event filter or description, or pause / resume it.
#[utoipa::path(tag = "admin", security(("bearer" = [])), request_body = WebhookUpdate, responses(
    (status = 200, body = WebhookView), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
    (status = 404, body = ErrorResponse),
))]
#[patch("/v1/admin/webhooks/{id}")]
pub async fn update_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    Admin(admin): Admin,
    path: web::Path<String>,
    body: web::Json<WebhookUpdate>,
) -> Result<HttpResponse, ApiError> {
    let id = endpoint(&state, &path).await?.id;
    if let Some(url) = &body.url {
        check_url(url)?;
    }
    let events = body.events.as_deref().map(check_events).transpose()?;
    if let Some(description) = &body.description {
        check_description(description)?;
    }
    let change = EndpointChange {
        url: body.url.as_deref(),
        events: events.as_deref(),
        active: body.active,
        description: body.description.as_deref(),
    };
    let mut tx = state.db.begin().await?;
    let updated = webhooks::update_endpoint(&mut *tx, id, &change).await?.ok_or(ApiError::NotFound)?;
    let details = serde_json::json!({"webhook_id": id, "events": updated.events, "active": updated.active});
    audit(&mut tx, &req, admin.id, "webhook.update", None, None, details).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(view(&state, updated).await?))
}

/// Remove an endpoint with its queued deliveries and their history.
#[utoipa::path(tag = "admin", security(("bearer" = [])), responses(
    (status = 204), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
))]
#[delete("/v1/admin/webhooks/{id}")]
pub async fn delete_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    Admin(admin): Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = endpoint(&state, &path).await?.id;
    let mut tx = state.db.begin().await?;
    if !webhooks::delete_endpoint(&mut *tx, id).await? {
        return Err(ApiError::NotFound);
    }
    audit(&mut tx, &req, admin.id, "webhook.delete", None, None, serde_json::json!({"webhook_id": id})).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// An endpoint's deliveries, newest first, each with every attempt made.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(PageQuery, DeliveryQuery), responses(
    (status = 200, body = DeliveryList), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
    (status = 404, body = ErrorResponse),
))]
#[get("/v1/admin/webhooks/{id}/deliveries")]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    page: web::Query<PageQuery>,
    query: web::Query<DeliveryQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = endpoint(&state, &path).await?.id;
    let status = query.status.as_deref().map(DeliveryStatus::parse).transpose()?.map(DeliveryStatus::as_str);
    let page = Page::parse(&page)?;
    let rows = webhooks::list_deliveries(&state.db, id, status, &page).await?;
    let (rows, next_cursor) = page.finish(rows, |d| Cursor { created_at: d.created_at, id: d.id });
    let ids: Vec<Uuid> = rows.iter().map(|d| d.id).collect();
    let mut attempts: HashMap<Uuid, Vec<AttemptView>> = HashMap::new();
    for attempt in webhooks::attempts_of(&state.db, &ids).await? {
        attempts.entry(attempt.delivery_id).or_default().push(attempt_view(attempt));
    }
    let deliveries = rows
        .into_iter()
        .map(|d| {
            let log = attempts.remove(&d.id).unwrap_or_default();
            delivery_view(d, log)
        })
        .collect();
    Ok(HttpResponse::Ok().json(DeliveryList { deliveries, next_cursor }))
}

fn attempt_view(a: Attempt) -> AttemptView {
    AttemptView { at: a.at, status_code: a.status_code, error: a.error, duration_ms: a.duration_ms }
}

fn delivery_view(d: Delivery, attempt_log: Vec<AttemptView>) -> DeliveryView {
    DeliveryView {
        next_attempt_at: (d.status == "pending").then_some(d.next_attempt_at),
        id: d.id,
        status: d.status,
        attempts: d.attempts,
        last_error: d.last_error,
        delivered_at: d.delivered_at,
        created_at: d.created_at,
        event: EventSummary {
            id: d.event_id,
            event_type: d.event_type,
            room_id: d.room_id,
            room_seq: d.room_seq,
            created_at: d.event_created_at,
        },
        attempt_log,
    }
}
