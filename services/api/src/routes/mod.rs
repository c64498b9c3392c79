//! HTTP handlers, one file per resource. Handlers parse, authorize, call the store and map the
//! result; they hold no business rules of their own beyond the flow of one request.

pub mod admin;
pub mod auth;
pub mod cameras;
pub mod health;
pub mod invites;
pub mod join;
pub mod jwks;
pub mod me;
pub mod members;
pub mod recordings;
pub mod rooms;
pub mod speakers;

use actix_web::HttpRequest;
use chrono::{DateTime, Utc};
use confab_common::http::RequestId;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Role, RoomId, User, UserId};
use crate::error::ApiError;
use crate::store::audit::{AuditEntry, insert_audit};

/// Appends to the audit log inside the caller's transaction, so the action and its record
/// commit together or not at all.
pub async fn audit(
    tx: &mut sqlx::PgConnection,
    req: &HttpRequest,
    actor: UserId,
    action: &str,
    room: Option<RoomId>,
    target_user: Option<UserId>,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    let request_id = RequestId::of(req);
    let details = if details.is_null() { serde_json::json!({}) } else { details };
    let entry = AuditEntry { actor, action, room, target_user, request_id: &request_id, details };
    insert_audit(tx, &entry).await?;
    Ok(())
}

/// The error body every endpoint uses.
#[derive(Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorDetailSchema,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetailSchema {
    /// Stable snake_case code, e.g. `invalid_email`.
    pub code: String,
    pub message: String,
}

/// A user as returned by the API.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self { id: u.id, email: u.email, display_name: u.display_name, role: u.role, created_at: u.created_at }
    }
}
