//! Sign-up, login, token refresh and logout.

use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ErrorResponse, UserView};
use crate::auth::current_user::CurrentUser;
use crate::auth::hashing::HashError;
use crate::auth::rate_limit::{Check, Decision};
use crate::auth::tokens::{hash_secret, new_secret};
use crate::domain::{DisplayName, Email, Password, Role, User};
use crate::error::{ApiError, is_unique_violation};
use crate::openapi;
use crate::state::AppState;
use crate::store::refresh_tokens::{self, Rotation};
use crate::store::users::{self, NewUser};

/// The rate-limit bucket of failed password checks per account (login and password change).
pub const LOGIN_FAILURES: &str = "login_failures";

#[derive(Deserialize, ToSchema)]
pub struct SignupRequest {
    #[schema(schema_with = openapi::email)]
    pub email: String,
    #[schema(schema_with = openapi::password)]
    pub password: String,
    #[schema(schema_with = openapi::name)]
    pub display_name: String,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// A new session: a short-lived access token and the refresh token that renews it.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    pub user: UserView,
}

#[derive(Serialize, ToSchema)]
pub struct SignupResponse {
    pub user: UserView,
}

/// Create an account.
#[utoipa::path(tag = "auth", request_body = SignupRequest, responses(
    (status = 201, body = SignupResponse),
    (status = 400, body = ErrorResponse), (status = 409, body = ErrorResponse),
    (status = 429, body = ErrorResponse), (status = 503, body = ErrorResponse),
))]
#[post("/v1/auth/signup")]
pub async fn signup(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<SignupRequest>,
) -> Result<HttpResponse, ApiError> {
    let hashing = state.hasher.reserve().map_err(hash_error)?;
    let ip = client_ip(&req);
    enforce(state.limiter.apply(&[Check::count("signup_ip", &ip, state.settings.limits.signup_per_ip)]).await?)?;
    let body = body.into_inner();
    let email = Email::parse(&body.email)?;
    let display_name = DisplayName::parse(&body.display_name)?;
    let password = Password::parse(body.password)?;
    let password_hash = hashing.hash(password.expose()).await.map_err(hash_error)?;
    let new_user = NewUser {
        email: email.as_str(),
        display_name: display_name.as_str(),
        password_hash: &password_hash,
        role: Role::User,
    };
    let user = users::insert_user(&state.db, &new_user).await.map_err(|e| {
        if is_unique_violation(&e) {
            ApiError::Conflict { code: "email_taken", message: "an account with this email already exists" }
        } else {
            e.into()
        }
    })?;
    tracing::info!(user.id = %user.id, "account created");
    Ok(HttpResponse::Created().json(SignupResponse { user: user.into() }))
}

/// Exchange email and password for a token pair.
#[utoipa::path(tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = TokenResponse),
    (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
    (status = 403, body = ErrorResponse), (status = 429, body = ErrorResponse),
    (status = 503, body = ErrorResponse),
))]
#[post("/v1/auth/login")]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let limits = &state.settings.limits;
    let email = Email::normalize(&body.email);
    if email.chars().count() > Email::MAX_CHARS || body.password.chars().count() > Password::MAX_CHARS {
        return Err(ApiError::InvalidCredentials);
    }
    let hashing = state.hasher.reserve().map_err(hash_error)?;
    let ip = client_ip(&req);
    enforce(
        state
            .limiter
            .apply(&[
                Check::count("login_ip", &ip, limits.login_per_ip),
                Check::count("login_account", &email, limits.login_per_account),
                Check::peek(LOGIN_FAILURES, &email, limits.login_failures_per_account),
            ])
            .await?,
    )?;

    let found = users::find_credentials_by_email(&state.db, &email).await?;
    let phc = found.as_ref().map(|(_, phc)| phc.as_str());
    let matched = hashing.verify(&body.password, phc).await.map_err(hash_error)?;
    let user = match found {
        Some((user, _)) if matched => user,
        _ => {
            state.limiter.apply(&[Check::count(LOGIN_FAILURES, &email, limits.login_failures_per_account)]).await?;
            return Err(ApiError::InvalidCredentials);
        }
    };
    if user.is_disabled() {
        return Err(ApiError::Forbidden { code: "account_disabled", message: "this account is disabled" });
    }
    let expires_at = Utc::now() + state.settings.refresh_token_ttl;
    let mut tx = state.db.begin().await?;
    let response = start_session(&state, &mut tx, user, Uuid::new_v4(), expires_at).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(response))
}

/// Rotate a refresh token: the presented token dies, a new pair is returned. Presenting an
/// already-rotated token revokes every token of its login.
#[utoipa::path(tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, body = TokenResponse),
    (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
    (status = 503, body = ErrorResponse),
))]
#[post("/v1/auth/refresh")]
pub async fn refresh(state: web::Data<AppState>, body: web::Json<RefreshRequest>) -> Result<HttpResponse, ApiError> {
    if body.refresh_token.len() > 128 {
        return Err(ApiError::InvalidRefreshToken);
    }
    let token_hash = hash_secret(&body.refresh_token);
    let mut tx = state.db.begin().await?;
    match refresh_tokens::rotate_refresh_token(&mut tx, &token_hash).await? {
        Rotation::Rotated { family_id, user_id, expires_at } => {
            let user = users::find_user_by_id(&mut *tx, user_id)
                .await?
                .filter(|u| !u.is_disabled())
                .ok_or(ApiError::InvalidRefreshToken)?;
            let response = start_session(&state, &mut tx, user, family_id, expires_at).await?;
            tx.commit().await?;
            Ok(HttpResponse::Ok().json(response))
        }
        Rotation::Reused { family_id, user_id, since_rotation } => {
            if since_rotation.to_std().unwrap_or_default() > state.settings.refresh_reuse_grace {
                let revoked = refresh_tokens::revoke_family(&mut *tx, family_id).await?;
                tx.commit().await?;
                tracing::warn!(user.id = %user_id, tokens_revoked = revoked, "refresh token reused; login revoked");
            }
            Err(ApiError::InvalidRefreshToken)
        }
        Rotation::Invalid => Err(ApiError::InvalidRefreshToken),
    }
}

/// End every session of the caller: all refresh tokens and access tokens stop working.
#[utoipa::path(tag = "auth", security(("bearer" = [])), responses(
    (status = 204), (status = 401, body = ErrorResponse),
))]
#[post("/v1/auth/logout")]
pub async fn logout(state: web::Data<AppState>, CurrentUser(user): CurrentUser) -> Result<HttpResponse, ApiError> {
    end_all_sessions(&state, &user).await?;
    tracing::info!(user.id = %user.id, "logged out everywhere");
    Ok(HttpResponse::NoContent().finish())
}

/// Revokes every refresh token and access token of `user`.
pub async fn end_all_sessions(state: &AppState, user: &User) -> Result<(), ApiError> {
    let mut tx = state.db.begin().await?;
    refresh_tokens::revoke_all_for_user(&mut *tx, user.id).await?;
    users::bump_token_version(&mut *tx, user.id).await?;
    tx.commit().await?;
    Ok(())
}

async fn start_session(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    user: User,
    family_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<TokenResponse, ApiError> {
    let access_token = state.access_tokens.issue(&user, family_id).map_err(|e| ApiError::Internal(e.into()))?;
    let refresh_token = new_secret();
    refresh_tokens::insert_refresh_token(&mut *tx, &hash_secret(&refresh_token), family_id, user.id, expires_at)
        .await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.access_tokens.ttl().as_secs(),
        refresh_token,
        user: user.into(),
    })
}

/// Turns a limiter decision into a 429.
pub fn enforce(decision: Decision) -> Result<(), ApiError> {
    match decision {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after } => Err(ApiError::RateLimited { retry_after }),
    }
}

pub fn hash_error(e: HashError) -> ApiError {
    match e {
        HashError::Overloaded => ApiError::Overloaded,
        HashError::Failed(reason) => ApiError::Internal(anyhow::anyhow!(reason)),
    }
}

/// The TCP peer address. Forwarded headers are not trusted: anyone could set them.
fn client_ip(req: &HttpRequest) -> String {
    req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default()
}
