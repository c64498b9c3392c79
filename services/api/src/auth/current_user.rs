//! The `CurrentUser` extractor: a valid bearer access token whose user still exists, is not
//! disabled, and has not invalidated it (logout, password change), and whose login (refresh
//! family) reuse detection has not revoked. The user row and the family's state are read on
//! every request, in one query, so a role change, a disable or a revoked login takes effect at
//! once.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::domain::User;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::users;

pub struct CurrentUser(pub User);

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req).map(str::to_owned);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("AppState missing")))?;
            let claims = state
                .access_tokens
                .verify(&token.ok_or(ApiError::Unauthorized)?)
                .map_err(|_| ApiError::Unauthorized)?;
            let (user, family_revoked) =
                users::find_token_user(&state.db, claims.sub, claims.fam).await?.ok_or(ApiError::Unauthorized)?;
            if user.is_disabled() || user.token_version != claims.ver || family_revoked {
                return Err(ApiError::Unauthorized);
            }
            Ok(CurrentUser(user))
        })
    }
}

fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
