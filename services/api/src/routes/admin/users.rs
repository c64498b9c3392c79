//! Administering accounts: search, read, change role, disable/enable, delete.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, web};
use confab_common::http::RequestId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::admin::Admin;
use crate::control::{Control, DisconnectReason};
use crate::domain::page::{Cursor, Page, PageQuery};
use crate::domain::{Role, User, UserId};
use crate::error::ApiError;
use crate::routes::{ErrorResponse, audit};
use crate::state::AppState;
use crate::store::{recordings, refresh_tokens, rooms, users};

#[derive(Deserialize, IntoParams)]
pub struct UserSearch {
    /// Part of an email or display name (at most 254 characters).
    #[param(max_length = 254)]
    pub q: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AdminUserView {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<User> for AdminUserView {
    fn from(u: User) -> Self {
        Self {
            disabled: u.is_disabled(),
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            role: u.role,
            created_at: u.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AdminUserList {
    pub users: Vec<AdminUserView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct AdminUserUpdate {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

async fn target_user(state: &AppState, raw: &str) -> Result<User, ApiError> {
    let id = UserId::parse(raw)?;
    users::find_user_by_id(&state.db, id).await?.ok_or(ApiError::NotFound)
}

fn not_self(admin: &User, target: &User) -> Result<(), ApiError> {
    if admin.id == target.id {
        return Err(ApiError::Conflict {
            code: "cannot_modify_self",
            message: "administrators cannot demote, disable or delete themselves",
        });
    }
    Ok(())
}

/// Search users by email or display name.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(PageQuery, UserSearch), responses(
    (status = 200, body = AdminUserList), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
))]
#[get("/v1/admin/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    _admin: Admin,
    page: web::Query<PageQuery>,
    query: web::Query<UserSearch>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(&page)?;
    if query.q.as_ref().is_some_and(|q| q.chars().count() > 254) {
        return Err(ApiError::invalid("invalid_query", "q is longer than 254 characters"));
    }
    let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let rows = users::search_users(&state.db, search, &page).await?;
    let (rows, next_cursor) = page.finish(rows, |u| Cursor { created_at: u.created_at, id: u.id.uuid() });
    Ok(HttpResponse::Ok().json(AdminUserList { users: rows.into_iter().map(Into::into).collect(), next_cursor }))
}

/// One user.
#[utoipa::path(tag = "admin", security(("bearer" = [])), responses(
    (status = 200, body = AdminUserView), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
))]
#[get("/v1/admin/users/{id}")]
pub async fn get_user(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(AdminUserView::from(target_user(&state, &path).await?)))
}

/// Change a user's role, or disable / enable the account. Disabling ends every session and open
/// connection of the user at once.
#[utoipa::path(tag = "admin", security(("bearer" = [])), request_body = AdminUserUpdate, responses(
    (status = 200, body = AdminUserView), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
    (status = 409, body = ErrorResponse),
))]
#[patch("/v1/admin/users/{id}")]
pub async fn update_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    Admin(admin): Admin,
    path: web::Path<String>,
    body: web::Json<AdminUserUpdate>,
) -> Result<HttpResponse, ApiError> {
    let target = target_user(&state, &path).await?;
    not_self(&admin, &target)?;
    let mut tx = state.db.begin().await?;
    if let Some(role) = body.role {
        users::set_role(&mut *tx, target.id, role).await?;
        let details = serde_json::json!({"from": target.role, "to": role});
        audit(&mut tx, &req, admin.id, "user.role", None, Some(target.id), details).await?;
    }
    if let Some(disabled) = body.disabled {
        users::set_disabled(&mut *tx, target.id, disabled).await?;
        if disabled {
            refresh_tokens::revoke_all_for_user(&mut *tx, target.id).await?;
        }
        let action = if disabled { "user.disable" } else { "user.enable" };
        audit(&mut tx, &req, admin.id, action, None, Some(target.id), serde_json::Value::Null).await?;
    }
    let updated = users::find_user_by_id(&mut *tx, target.id).await?.ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    if body.disabled == Some(true) {
        let command = Control::DisconnectUser { user_id: target.id, reason: DisconnectReason::Disabled };
        state.control.send(&command, &RequestId::of(&req)).await;
    }
    Ok(HttpResponse::Ok().json(AdminUserView::from(updated)))
}

/// Delete a user. Rooms they own are deleted with them (their calls end, a running recording is
/// stopped); the rooms' recordings are kept for the people who were in them.
#[utoipa::path(tag = "admin", security(("bearer" = [])), responses(
    (status = 204), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
    (status = 409, body = ErrorResponse),
))]
#[delete("/v1/admin/users/{id}")]
pub async fn delete_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    Admin(admin): Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let target = target_user(&state, &path).await?;
    not_self(&admin, &target)?;
    let mut tx = state.db.begin().await?;
    let owned = rooms::room_ids_owned_by(&mut *tx, target.id).await?;
    users::delete_user(&mut *tx, target.id).await?;
    for &room_id in &owned {
        recordings::stop_running_in_room(&mut tx, room_id).await?;
    }
    let details = serde_json::json!({"email": target.email, "rooms_deleted": owned});
    audit(&mut tx, &req, admin.id, "user.delete", None, Some(target.id), details).await?;
    tx.commit().await?;
    let request_id = RequestId::of(&req);
    let command = Control::DisconnectUser { user_id: target.id, reason: DisconnectReason::Deleted };
    state.control.send(&command, &request_id).await;
    for room_id in owned {
        state.control.send(&Control::CloseRoom { room_id }, &request_id).await;
    }
    Ok(HttpResponse::NoContent().finish())
}
