//! The `Admin` extractor: a current user whose role, read from the database on this request,
//! is `admin`. 401 without a valid token, 403 for everyone else.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload};

use super::current_user::CurrentUser;
use crate::domain::{Role, User};
use crate::error::ApiError;

pub struct Admin(pub User);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let current = CurrentUser::from_request(req, payload);
        Box::pin(async move {
            let CurrentUser(user) = current.await?;
            if user.role != Role::Admin {
                return Err(ApiError::Forbidden { code: "forbidden", message: "administrators only" });
            }
            Ok(Admin(user))
        })
    }
}
