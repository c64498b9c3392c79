//! Users as the API sees them, and the roles that decide what they may do.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::UserId;

/// Site-wide role. Room roles (owner, moderator, member) are separate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
}

/// A user row, without the password hash.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub disabled_at: Option<DateTime<Utc>>,
    /// Bumped on logout, password change and disable: access tokens carry it as `ver`, and one
    /// with an older value is refused at once.
    pub token_version: i32,
    pub created_at: DateTime<Utc>,
}

impl User {
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}
