//! HTTP handlers, one file per resource. Handlers parse, authorize, call the store and map the
//! result; they hold no business rules of their own beyond the flow of one request.

pub mod auth;
pub mod health;
pub mod jwks;
pub mod me;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Role, User, UserId};

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
