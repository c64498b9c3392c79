//! The caller's own account.

use actix_web::{HttpResponse, get, patch, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::{LOGIN_FAILURES, enforce, hash_error};
use super::{ErrorResponse, UserView};
use crate::auth::current_user::CurrentUser;
use crate::auth::rate_limit::Check;
use crate::domain::{DisplayName, Password};
use crate::error::ApiError;
use crate::openapi;
use crate::state::AppState;
use crate::store::{refresh_tokens, users};

/// Fields to change; `current_password` is required to change the password.
#[derive(Deserialize, ToSchema)]
pub struct UpdateMeRequest {
    #[schema(schema_with = openapi::optional_name)]
    pub display_name: Option<String>,
    #[schema(schema_with = openapi::optional_password)]
    pub password: Option<String>,
    pub current_password: Option<String>,
}

/// The caller's account.
#[utoipa::path(tag = "me", security(("bearer" = [])), responses(
    (status = 200, body = UserView), (status = 401, body = ErrorResponse),
))]
#[get("/v1/me")]
pub async fn get_me(CurrentUser(user): CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(UserView::from(user))
}

/// Change the display name and/or the password. A password change ends every session,
/// this one included: log in again with the new password.
#[utoipa::path(tag = "me", security(("bearer" = [])), request_body = UpdateMeRequest, responses(
    (status = 200, body = UserView), (status = 400, body = ErrorResponse),
    (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
    (status = 429, body = ErrorResponse),
))]
#[patch("/v1/me")]
pub async fn update_me(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    body: web::Json<UpdateMeRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let display_name = body.display_name.as_deref().map(DisplayName::parse).transpose()?;
    let new_password = body.password.map(Password::parse).transpose()?;
    let new_hash = match new_password {
        None => None,
        Some(new_password) => {
            // Like a wrong one: the caller has not proved they know the password.
            let current = body.current_password.ok_or(ApiError::Forbidden {
                code: "current_password_required",
                message: "current_password is required to change the password",
            })?;
            let failures = state.settings.limits.login_failures_per_account;
            enforce(state.limiter.apply(&[Check::peek(LOGIN_FAILURES, &user.email, failures)]).await?)?;
            let phc = users::find_password_hash(&state.db, user.id).await?;
            if !state.hasher.verify(&current, phc.as_deref()).await.map_err(hash_error)? {
                state.limiter.apply(&[Check::count(LOGIN_FAILURES, &user.email, failures)]).await?;
                return Err(ApiError::Forbidden {
                    code: "wrong_current_password",
                    message: "current_password is incorrect",
                });
            }
            Some(state.hasher.hash(new_password.expose()).await.map_err(hash_error)?)
        }
    };

    let mut tx = state.db.begin().await?;
    let mut updated = user;
    if let Some(name) = display_name {
        updated = users::update_display_name(&mut *tx, updated.id, name.as_str()).await?;
    }
    if let Some(hash) = new_hash {
        users::update_password(&mut *tx, updated.id, &hash).await?;
        refresh_tokens::revoke_all_for_user(&mut *tx, updated.id).await?;
        tracing::info!(user.id = %updated.id, "password changed; all sessions ended");
    }
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(UserView::from(updated)))
}
