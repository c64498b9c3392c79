//! The webhook tables (migration 7): endpoints, and the deliveries with their attempts as the
//! admin API shows them. Events themselves are written by `confab_emit_event` and triggers.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::domain::page::Page;

#[derive(Debug, sqlx::FromRow)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub active: bool,
    pub description: String,
    /// Attempts in a row that failed, and when the next probe may go while it fails.
    pub failures: i32,
    pub retry_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

macro_rules! endpoint_columns {
    () => {
        "id, url, events, active, description, failures, retry_at, created_at, updated_at"
    };
}

pub struct NewEndpoint<'a> {
    pub url: &'a str,
    pub secret: &'a str,
    pub events: &'a [String],
    pub description: &'a str,
}

pub async fn insert_endpoint(db: impl PgExecutor<'_>, new: &NewEndpoint<'_>) -> sqlx::Result<Endpoint> {
    sqlx::query_as(concat!(
        "insert into webhook_endpoints (id, url, secret, events, description) values ($1, $2, $3, $4, $5) returning ",
        endpoint_columns!()
    ))
    .bind(Uuid::new_v4())
    .bind(new.url)
    .bind(new.secret)
    .bind(new.events)
    .bind(new.description)
    .fetch_one(db)
    .await
}

pub async fn list_endpoints(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Endpoint>> {
    sqlx::query_as(concat!("select ", endpoint_columns!(), " from webhook_endpoints order by created_at, id"))
        .fetch_all(db)
        .await
}

pub async fn find_endpoint(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Endpoint>> {
    sqlx::query_as(concat!("select ", endpoint_columns!(), " from webhook_endpoints where id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Changes what is given; `None` keeps the current value.
pub struct EndpointChange<'a> {
    pub url: Option<&'a str>,
    pub events: Option<&'a [String]>,
    pub active: Option<bool>,
    pub description: Option<&'a str>,
}

pub async fn update_endpoint(
    db: impl PgExecutor<'_>,
    id: Uuid,
    change: &EndpointChange<'_>,
) -> sqlx::Result<Option<Endpoint>> {
    sqlx::query_as(concat!(
        "update webhook_endpoints
            set url = coalesce($2, url), events = coalesce($3, events), active = coalesce($4, active),
                description = coalesce($5, description), updated_at = now()
          where id = $1 returning ",
        endpoint_columns!()
    ))
    .bind(id)
    .bind(change.url)
    .bind(change.events)
    .bind(change.active)
    .bind(change.description)
    .fetch_optional(db)
    .await
}

pub async fn delete_endpoint(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query("delete from webhook_endpoints where id = $1").bind(id).execute(db).await?;
    Ok(deleted.rows_affected() == 1)
}

/// Deliveries of an endpoint per status, for the endpoint view.
#[derive(Debug, Default, sqlx::FromRow)]
pub struct DeliveryCounts {
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
}

pub async fn delivery_counts(db: impl PgExecutor<'_>, endpoint_id: Uuid) -> sqlx::Result<DeliveryCounts> {
    sqlx::query_as(
        "select count(*) filter (where status = 'pending') as pending,
                count(*) filter (where status = 'delivered') as delivered,
                count(*) filter (where status = 'failed') as failed
           from webhook_deliveries where endpoint_id = $1",
    )
    .bind(endpoint_id)
    .fetch_one(db)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub event_id: Uuid,
    pub event_type: String,
    pub room_id: Option<Uuid>,
    pub room_seq: Option<i64>,
    pub event_created_at: DateTime<Utc>,
}

/// An endpoint's deliveries, newest first, optionally of one status only.
pub async fn list_deliveries(
    db: impl PgExecutor<'_>,
    endpoint_id: Uuid,
    status: Option<&str>,
    page: &Page,
) -> sqlx::Result<Vec<Delivery>> {
    let (at, id) = page.after.map(|c| (Some(c.created_at), Some(c.id))).unwrap_or_default();
    sqlx::query_as(
        "select d.id, d.status, d.attempts, d.next_attempt_at, d.last_error, d.delivered_at, d.created_at,
                e.id as event_id, e.type as event_type, e.room_id, e.room_seq, e.created_at as event_created_at
           from webhook_deliveries d join webhook_events e on e.id = d.event_id
          where d.endpoint_id = $1 and ($2::text is null or d.status = $2)
            and ($3::timestamptz is null or (d.created_at, d.id) < ($3, $4))
          order by d.created_at desc, d.id desc
          limit $5",
    )
    .bind(endpoint_id)
    .bind(status)
    .bind(at)
    .bind(id)
    .bind(page.fetch_limit())
    .fetch_all(db)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct Attempt {
    pub delivery_id: Uuid,
    pub at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// Every attempt at the given deliveries, oldest first.
pub async fn attempts_of(db: impl PgExecutor<'_>, delivery_ids: &[Uuid]) -> sqlx::Result<Vec<Attempt>> {
    sqlx::query_as(
        "select delivery_id, at, status_code, error, duration_ms from webhook_attempts
          where delivery_id = any($1) order by id",
    )
    .bind(delivery_ids)
    .fetch_all(db)
    .await
}

/// The webhook figures of `/v1/admin/stats`.
#[derive(Debug, sqlx::FromRow)]
pub struct Backlog {
    pub pending: i64,
    pub failed_last_24h: i64,
    pub failing_endpoints: i64,
}

/// Deliveries waiting across all endpoints, those given up in the last 24 hours, and the
/// endpoints failing now.
pub async fn backlog(db: impl PgExecutor<'_>) -> sqlx::Result<Backlog> {
    sqlx::query_as(
        "select (select count(*) from webhook_deliveries where status = 'pending') as pending,
                (select count(*) from webhook_deliveries
                  where status = 'failed' and next_attempt_at > now() - interval '24 hours') as failed_last_24h,
                (select count(*) from webhook_endpoints where failures > 0) as failing_endpoints",
    )
    .fetch_one(db)
    .await
}
