//! The audit log, site statistics, and the recordings list.

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::admin::Admin;
use crate::domain::page::{Cursor, DEFAULT_LIMIT, MAX_LIMIT, Page, PageQuery};
use crate::error::ApiError;
use crate::routes::ErrorResponse;
use crate::routes::recordings::{RecordingList, views};
use crate::state::AppState;
use crate::store::audit::{self, AuditRecord};
use crate::store::{recordings, rooms, users, webhooks};

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    pub entries: Vec<AuditRecord>,
    pub next_cursor: Option<String>,
}

/// What an operator checks first: live figures from Postgres and from Redis presence.
#[derive(Serialize, ToSchema)]
pub struct Stats {
    /// Accounts.
    pub users: i64,
    /// Rooms that exist.
    pub rooms: i64,
    /// Rooms with a call going on now.
    pub live_calls: u64,
    /// People in calls now, over every room (recorders are not counted).
    pub participants: u64,
    /// Gateway instances whose heartbeat is current (renewed within the last 10 s).
    pub gateways_alive: u64,
    /// Recorder instances whose heartbeat is current (renewed within the last 10 s while they
    /// take jobs).
    pub recorders_alive: u64,
    pub recordings: RecordingCounts,
    pub webhooks: WebhookCounts,
    // Further sections go here, each an object of its own like `recordings`, so existing fields
    // never change meaning.
}

/// Webhook deliveries waiting or given up, and receivers failing now.
#[derive(Serialize, ToSchema)]
pub struct WebhookCounts {
    /// Deliveries not yet accepted by their receiver (including those of paused endpoints).
    pub pending: i64,
    /// Deliveries given up (still failing at the end of the retry window) in the last 24 hours.
    pub failed_last_24h: i64,
    /// Endpoints whose last attempt failed: they get one probe at a time until they answer.
    pub failing_endpoints: i64,
}

/// Recordings that are not finished, by status, and recent failures.
#[derive(Serialize, ToSchema)]
pub struct RecordingCounts {
    /// Queued; no recorder has taken them yet.
    pub pending: i64,
    /// A recorder is joining the call.
    pub starting: i64,
    pub recording: i64,
    /// Stopped; the recorder is closing the files.
    pub finalizing: i64,
    /// Ended `failed` in the last 24 hours.
    pub failed_last_24h: i64,
}

/// `?limit=&cursor=` of the audit log, whose entries are numbered: the cursor is the number of
/// the last entry seen.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditPage {
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<i64>,
}

/// The audit log, newest first.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(AuditPage), responses(
    (status = 200, body = AuditList), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
))]
#[get("/v1/admin/audit-log")]
pub async fn audit_log(
    state: web::Data<AppState>,
    _admin: Admin,
    query: web::Query<AuditPage>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid("invalid_limit", format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let mut rows = audit::list_audit(&state.db, query.cursor, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|r| r.id.to_string()) } else { None };
    Ok(HttpResponse::Ok().json(AuditList { entries: rows, next_cursor }))
}

/// Users, rooms, live calls and participants, instances alive, recordings in progress and the
/// webhook backlog. 503
/// when Postgres or Redis cannot be read.
#[utoipa::path(tag = "admin", security(("bearer" = [])), responses(
    (status = 200, body = Stats), (status = 403, body = ErrorResponse), (status = 503, body = ErrorResponse),
))]
#[get("/v1/admin/stats")]
pub async fn stats(state: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let (users, rooms, recordings, webhooks) = tokio::try_join!(
        users::count_users(&state.db),
        rooms::count_rooms(&state.db),
        recordings::count_by_status(&state.db),
        webhooks::backlog(&state.db),
    )?;
    let (live_calls, participants, gateways_alive, recorders_alive) = tokio::try_join!(
        state.control.live_calls(),
        state.control.live_participants(),
        state.control.gateways_alive(),
        state.recording_jobs.recorders_alive(),
    )?;
    let recordings::StatusCounts { pending, starting, recording, finalizing, failed_last_24h } = recordings;
    Ok(HttpResponse::Ok().json(Stats {
        users,
        rooms,
        live_calls,
        participants,
        gateways_alive,
        recorders_alive,
        recordings: RecordingCounts { pending, starting, recording, finalizing, failed_last_24h },
        webhooks: WebhookCounts {
            pending: webhooks.pending,
            failed_last_24h: webhooks.failed_last_24h,
            failing_endpoints: webhooks.failing_endpoints,
        },
    }))
}

/// Every recording, newest first.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = RecordingList), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
))]
#[get("/v1/admin/recordings")]
pub async fn list_recordings(
    state: web::Data<AppState>,
    _admin: Admin,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(&page)?;
    let rows = recordings::list_all(&state.db, &page).await?;
    let (rows, next_cursor) = page.finish(rows, |r| Cursor { created_at: r.created_at, id: r.id.uuid() });
    let rows = rows.into_iter().map(|recording| (recording, true)).collect();
    Ok(HttpResponse::Ok().json(RecordingList { recordings: views(&state, rows).await?, next_cursor }))
}
