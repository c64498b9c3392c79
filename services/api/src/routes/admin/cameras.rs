//! Every camera of every room, with its URL and the worker's report, so an operator can see
//! what the ingest workers connect to. Credentials are never shown, not even to admins.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::admin::Admin;
use crate::domain::page::{Cursor, Page, PageQuery};
use crate::domain::{CameraId, RoomId, UserId};
use crate::error::ApiError;
use crate::routes::ErrorResponse;
use crate::routes::cameras::CameraStatusView;
use crate::state::AppState;
use crate::store::cameras::{self, Camera};

#[derive(Deserialize, IntoParams)]
pub struct AdminCameraFilter {
    /// Only this room's cameras.
    #[param(value_type = Option<uuid::Uuid>)]
    pub room_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AdminCameraView {
    pub id: CameraId,
    pub room_id: RoomId,
    pub name: String,
    pub rtsp_url: String,
    pub has_credentials: bool,
    pub status: CameraStatusView,
    /// Absent when that user was deleted.
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Camera> for AdminCameraView {
    fn from(c: Camera) -> Self {
        Self {
            id: c.id,
            room_id: c.room_id,
            name: c.name,
            rtsp_url: c.rtsp_url,
            has_credentials: c.credentials.is_some(),
            status: c.status.into(),
            created_by: c.created_by,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AdminCameraList {
    pub cameras: Vec<AdminCameraView>,
    pub next_cursor: Option<String>,
}

/// Every camera, newest first; `?room_id=` narrows to one room.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(PageQuery, AdminCameraFilter), responses(
    (status = 200, body = AdminCameraList), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
))]
#[get("/v1/admin/cameras")]
pub async fn list_all_cameras(
    state: web::Data<AppState>,
    _admin: Admin,
    page: web::Query<PageQuery>,
    filter: web::Query<AdminCameraFilter>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(&page)?;
    let room = filter
        .room_id
        .as_deref()
        .map(|raw| RoomId::parse(raw).map_err(|_| ApiError::invalid("invalid_room_id", "room_id is not a room id")))
        .transpose()?;
    let rows = cameras::list_all_cameras(&state.db, room, &page).await?;
    let (rows, next_cursor) = page.finish(rows, |c| Cursor { created_at: c.created_at, id: c.id.uuid() });
    let cameras = rows.into_iter().map(AdminCameraView::from).collect();
    Ok(HttpResponse::Ok().json(AdminCameraList { cameras, next_cursor }))
}
