//! The append-only `audit_log` table.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::domain::{RoomId, UserId};

/// One audited action, as written.
pub struct AuditEntry<'a> {
    pub actor: UserId,
    pub action: &'a str,
    pub room: Option<RoomId>,
    pub target_user: Option<UserId>,
    pub request_id: &'a str,
    pub details: serde_json::Value,
}

/// One audited action, as stored and as `GET /v1/admin/audit-log` returns it.
#[derive(Debug, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Option<UserId>,
    pub action: String,
    pub room_id: Option<RoomId>,
    pub target_user_id: Option<UserId>,
    pub request_id: String,
    pub details: serde_json::Value,
}

pub async fn insert_audit(db: impl PgExecutor<'_>, entry: &AuditEntry<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into audit_log (actor_id, action, room_id, target_user_id, request_id, details)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.room)
    .bind(entry.target_user)
    .bind(entry.request_id)
    .bind(&entry.details)
    .execute(db)
    .await
    .map(drop)
}

/// Newest first; `before` is the id of the last record of the previous page.
pub async fn list_audit(
    db: impl PgExecutor<'_>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditRecord>, sqlx::Error> {
    sqlx::query_as(
        "select id, at, actor_id, action, room_id, target_user_id, request_id, details from audit_log
         where $1::bigint is null or id < $1 order by id desc limit $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
}
