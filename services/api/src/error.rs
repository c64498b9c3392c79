//! The API's one error type. Every failure a handler can meet maps to a status and a stable
//! `code`; 5xx bodies are opaque and their cause chain goes to the log, once, here.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};
use confab_common::http::{ErrorBody, ErrorDetail};
use confab_domain::DomainError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request field failed validation; `code` names the problem (`invalid_email`, ...).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// No valid access token.
    #[error("missing or invalid access token")]
    Unauthorized,
    /// Wrong email or password; identical for unknown accounts so none can be enumerated.
    #[error("email or password is incorrect")]
    InvalidCredentials,
    /// The refresh token is unknown, expired, revoked or already used.
    #[error("refresh token is invalid or expired")]
    InvalidRefreshToken,
    #[error("{message}")]
    Forbidden { code: &'static str, message: &'static str },
    #[error("not found")]
    NotFound,
    /// A user named in the request body (by email or id) has no account: 422, since the request
    /// is well formed and its path names a resource that exists (a 404 would say it does not).
    #[error("no such user")]
    UnknownUser,
    /// The peer a request names is not in the room's call (it left, or never was there).
    #[error("{0}")]
    UnknownPeer(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: &'static str },
    #[error("too many attempts, retry later")]
    RateLimited { retry_after: Duration },
    /// The password-hashing queue is full.
    #[error("server busy, retry later")]
    Overloaded,
    /// Postgres or Redis is unreachable; the API recovers by itself when it is back.
    #[error("service temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { code, message: message.into() }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Invalid { code, .. } | Self::Conflict { code, .. } | Self::Forbidden { code, .. } => code,
            Self::Unauthorized => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidRefreshToken => "invalid_refresh_token",
            Self::NotFound => "not_found",
            Self::UnknownUser => "user_not_found",
            Self::UnknownPeer(_) => "unknown_peer",
            Self::RateLimited { .. } => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::InvalidCredentials | Self::InvalidRefreshToken => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound | Self::UnknownPeer(_) => StatusCode::NOT_FOUND,
            Self::UnknownUser => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Overloaded | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(cause) => tracing::error!(error = ?cause, "internal error"),
            Self::Unavailable(cause) => tracing::warn!(error = %cause, "dependency unavailable"),
            _ => {}
        }
        let mut res = HttpResponse::build(self.status_code());
        match self {
            Self::RateLimited { retry_after } => {
                res.insert_header((RETRY_AFTER, retry_after.as_secs().max(1).to_string()));
            }
            Self::Overloaded | Self::Unavailable(_) => {
                res.insert_header((RETRY_AFTER, "1"));
            }
            Self::Unauthorized => {
                res.insert_header((WWW_AUTHENTICATE, "Bearer"));
            }
            _ => {}
        }
        res.json(ErrorBody { error: ErrorDetail { code: self.code().to_owned(), message: self.to_string() } })
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e.into()),
            other => Self::Internal(other.into()),
        }
    }
}

/// Ids reach the API in paths, where text that is no id names nothing: 404, as for an unknown
/// id. A role, status or presence entry that does not read was written by Confab itself: 500.
impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::InvalidId { .. } => Self::NotFound,
            other => Self::Internal(other.into()),
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        metrics::counter!("api_redis_errors_total").increment(1);
        Self::Unavailable(e.into())
    }
}

/// True when `e` is a unique-constraint violation (maps to 409, never 500).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

#[cfg(test)]
mod tests {
    use confab_domain::{CameraId, RoomId, UserId};

    use super::*;

    #[test]
    fn ids_that_are_not_uuids_are_not_found() {
        for raw in ["", "1", "../etc", "' or 1=1", "00000000-0000-0000-0000-00000000000g"] {
            assert!(matches!(RoomId::parse(raw).map_err(ApiError::from), Err(ApiError::NotFound)), "{raw}");
            assert!(matches!(UserId::parse(raw).map_err(ApiError::from), Err(ApiError::NotFound)), "{raw}");
            assert!(matches!(CameraId::parse(raw).map_err(ApiError::from), Err(ApiError::NotFound)), "{raw}");
        }
    }
}
