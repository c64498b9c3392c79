//! IP cameras of a room (docs/operations.md, "Cameras"). Owners, moderators and admins add,
//! change and remove them; every member sees which cameras there are and how they are doing.
//! The ingest worker picks changes up from the table on its next poll.
//!
//! Credentials go in as `username`/`password`, are sealed with `CONFAB_CAMERA_KEY` before they
//! touch the database and never come out again: no view has a field for them, and audit entries
//! and logs name only the camera and its host.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use confab_common::camera_url::{self, CameraUrl};
use confab_common::secret_box::SecretBox;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::{ErrorResponse, audit};
use crate::auth::current_user::CurrentUser;
use crate::auth::room_access::RoomAccess;
use crate::domain::{CameraCredentials, CameraId, CameraName, CameraState, MAX_CAMERAS_PER_ROOM, RoomId};
use crate::error::ApiError;
use crate::openapi;
use crate::state::AppState;
use crate::store::cameras::{self, Camera, CameraChange, CameraStatus, NewCamera};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCameraRequest {
    /// 1–100 characters.
    #[schema(schema_with = openapi::name)]
    pub name: String,
    /// `rtsp://` or `rtsps://` (default ports 554 and 322), at most 2048 bytes, without a user
    /// name or password. Its host must be public unless the operator allows it.
    #[schema(schema_with = openapi::camera_url)]
    pub rtsp_url: String,
    /// Needs `password`.
    #[schema(schema_with = openapi::camera_username)]
    pub username: Option<String>,
    /// Needs `CONFAB_CAMERA_KEY` on the server.
    #[schema(schema_with = openapi::camera_password)]
    pub password: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CameraUpdate {
    #[schema(schema_with = openapi::optional_name)]
    pub name: Option<String>,
    #[schema(schema_with = openapi::optional_camera_url)]
    pub rtsp_url: Option<String>,
    /// A new user name; keeps the stored password when `password` is absent (409 when there is
    /// none).
    #[schema(schema_with = openapi::camera_username)]
    pub username: Option<String>,
    /// A new password; `null` or `""` removes the camera's credentials.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = openapi::camera_password)]
    pub password: Option<Option<String>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

#[derive(Serialize, ToSchema)]
pub struct Resolution {
    pub width: i32,
    pub height: i32,
}

/// What the ingest worker last reported.
#[derive(Serialize, ToSchema)]
pub struct CameraStatusView {
    /// `idle` until a worker reports on the camera.
    pub state: CameraState,
    pub codec: Option<String>,
    pub resolution: Option<Resolution>,
    pub frame_rate: Option<f32>,
    pub bitrate_kbps: Option<i32>,
    /// What happens to the camera's audio, e.g. `pcmu` or `aac (not forwarded)`.
    pub audio: Option<String>,
    pub last_error: Option<String>,
    pub reconnects: i32,
    /// When the worker last reported; absent before its first report.
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<CameraStatus> for CameraStatusView {
    fn from(s: CameraStatus) -> Self {
        Self {
            state: s.state.unwrap_or(CameraState::Idle),
            codec: s.codec,
            resolution: s.width.zip(s.height).map(|(width, height)| Resolution { width, height }),
            frame_rate: s.frame_rate,
            bitrate_kbps: s.bitrate_kbps,
            audio: s.audio,
            last_error: s.last_error,
            reconnects: s.reconnects.unwrap_or(0),
            updated_at: s.status_updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CameraStatusSummary {
    pub state: CameraState,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct CameraView {
    pub id: CameraId,
    pub room_id: RoomId,
    pub name: String,
    pub status: CameraStatusSummary,
    /// Owners, moderators and admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtsp_url: Option<String>,
    /// Whether a user name and password are stored (owners, moderators and admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_credentials: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CameraView {
    pub fn new(camera: Camera, manager: bool) -> Self {
        Self {
            id: camera.id,
            room_id: camera.room_id,
            name: camera.name,
            status: CameraStatusSummary {
                state: camera.status.state.unwrap_or(CameraState::Idle),
                updated_at: camera.status.status_updated_at,
            },
            has_credentials: manager.then_some(camera.credentials.is_some()),
            rtsp_url: manager.then_some(camera.rtsp_url),
            created_at: camera.created_at,
            updated_at: camera.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CameraList {
    pub cameras: Vec<CameraView>,
}

fn parse_url(raw: &str) -> Result<CameraUrl, ApiError> {
    CameraUrl::parse(raw).map_err(|e| ApiError::invalid(e.code(), e.to_string()))
}

/// Resolves the URL's host: every address it resolves to must be allowed by the policy.
async fn check_host(state: &AppState, url: &CameraUrl) -> Result<(), ApiError> {
    camera_url::resolve(url, &state.camera_policy).await.map_err(|e| ApiError::invalid(e.code(), e.to_string()))?;
    Ok(())
}

fn key(state: &AppState) -> Result<&SecretBox, ApiError> {
    state.settings.cameras.key.as_ref().ok_or(ApiError::Conflict {
        code: "camera_credentials_disabled",
        message: "this server stores no camera credentials (CONFAB_CAMERA_KEY is not set); \
                  use a camera without a password or ask the operator",
    })
}

fn password_required() -> ApiError {
    ApiError::invalid("password_required", "a username needs a password")
}

fn unreadable() -> ApiError {
    ApiError::Conflict {
        code: "camera_credentials_unreadable",
        message: "the stored credentials cannot be opened with the current key; send username and password again",
    }
}

/// The sealed credentials of a new camera; `None` without a password.
fn new_credentials(
    state: &AppState,
    username: Option<&str>,
    password: Option<&str>,
) -> Result<Option<Vec<u8>>, ApiError> {
    match password.filter(|p| !p.is_empty()) {
        None if username.is_some_and(|u| !u.is_empty()) => Err(password_required()),
        None => Ok(None),
        Some(password) => {
            let key = key(state)?;
            Ok(Some(CameraCredentials::parse(username.unwrap_or(""), password)?.seal(key)))
        }
    }
}

/// What a PATCH does to the stored credentials: `None` leaves them, `Some(None)` removes them.
fn changed_credentials(
    state: &AppState,
    stored: Option<&[u8]>,
    update: &CameraUpdate,
) -> Result<Option<Option<Vec<u8>>>, ApiError> {
    let stored_credentials = |key: &SecretBox| match stored {
        Some(sealed) => CameraCredentials::open(sealed, key).map(Some).ok_or_else(unreadable),
        None => Ok(None),
    };
    // A user name is checked even where it is not kept (the password is being removed).
    update.username.as_deref().map(CameraCredentials::check_username).transpose()?;
    match (&update.username, &update.password) {
        (None, None) => Ok(None),
        (_, Some(None)) => Ok(Some(None)),
        (_, Some(Some(password))) if password.is_empty() => Ok(Some(None)),
        (Some(username), Some(Some(password))) => {
            let key = key(state)?;
            Ok(Some(Some(CameraCredentials::parse(username, password)?.seal(key))))
        }
        (None, Some(Some(password))) => {
            let key = key(state)?;
            let username = stored_credentials(key)?.map(|c| c.username).unwrap_or_default();
            Ok(Some(Some(CameraCredentials::parse(&username, password)?.seal(key))))
        }
        (Some(username), None) => {
            let key = key(state)?;
            let password = stored_credentials(key)?
                .ok_or(ApiError::Conflict {
                    code: "password_required",
                    message: "this camera has no stored password to go with a user name; send a password too",
                })?
                .password;
            Ok(Some(Some(CameraCredentials::parse(username, &password)?.seal(key))))
        }
    }
}

async fn camera_of(state: &AppState, access: &RoomAccess, raw_id: &str) -> Result<Camera, ApiError> {
    let id = CameraId::parse(raw_id)?;
    cameras::find_camera(&state.db, access.room.id, id).await?.ok_or(ApiError::NotFound)
}

/// Add a camera to a room (owner, moderators, admins). The worker starts pulling it on its next
/// poll.
#[utoipa::path(tag = "cameras", security(("bearer" = [])), request_body = NewCameraRequest, responses(
    (status = 201, body = CameraView), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
    (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
))]
#[post("/v1/rooms/{id}/cameras")]
pub async fn create_camera(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    body: web::Json<NewCameraRequest>,
) -> Result<HttpResponse, ApiError> {
    let access = RoomAccess::load(&state, &user, &path).await?;
    access.require_manager()?;
    let name = CameraName::parse(&body.name)?;
    let url = parse_url(&body.rtsp_url)?;
    let credentials = new_credentials(&state, body.username.as_deref(), body.password.as_deref())?;
    check_host(&state, &url).await?;
    let room_id = access.room.id;
    let mut tx = state.db.begin().await?;
    if cameras::lock_and_count_cameras(&mut tx, room_id).await? >= MAX_CAMERAS_PER_ROOM {
        return Err(ApiError::Conflict {
            code: "too_many_cameras",
            message: "this room has as many cameras as it may have (8); remove one first",
        });
    }
    let new = NewCamera {
        room_id,
        name: name.as_str(),
        rtsp_url: url.as_str(),
        credentials: credentials.as_deref(),
        created_by: user.id,
    };
    let id = cameras::insert_camera(&mut *tx, &new).await?;
    let details = serde_json::json!({
        "camera_id": id, "name": name.as_str(), "host": url.host_for_display(),
        "has_credentials": credentials.is_some(),
    });
    audit(&mut tx, &req, user.id, "camera.create", Some(room_id), None, details).await?;
    tx.commit().await?;
    tracing::info!(room.id = %room_id, camera.id = %id, user.id = %user.id, "camera added");
    let camera = cameras::find_camera(&state.db, room_id, id).await?.ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Created().json(CameraView::new(camera, true)))
}

/// A room's cameras (members and admins). The URL and whether credentials are stored are shown
/// to owners, moderators and admins only.
#[utoipa::path(tag = "cameras", security(("bearer" = [])), responses(
    (status = 200, body = CameraList), (status = 404, body = ErrorResponse),
))]
#[get("/v1/rooms/{id}/cameras")]
pub async fn list_cameras(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let access = RoomAccess::load(&state, &user, &path).await?;
    let manager = access.require_manager().is_ok();
    let cameras = cameras::list_cameras_of_room(&state.db, access.room.id).await?;
    let cameras = cameras.into_iter().map(|c| CameraView::new(c, manager)).collect();
    Ok(HttpResponse::Ok().json(CameraList { cameras }))
}

/// One camera of a room (members and admins).
#[utoipa::path(tag = "cameras", security(("bearer" = [])), responses(
    (status = 200, body = CameraView), (status = 404, body = ErrorResponse),
))]
#[get("/v1/rooms/{id}/cameras/{camera_id}")]
pub async fn get_camera(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, camera) = path.into_inner();
    let access = RoomAccess::load(&state, &user, &room).await?;
    let camera = camera_of(&state, &access, &camera).await?;
    Ok(HttpResponse::Ok().json(CameraView::new(camera, access.require_manager().is_ok())))
}

/// Rename a camera, point it elsewhere or change its credentials (owner, moderators, admins).
#[utoipa::path(tag = "cameras", security(("bearer" = [])), request_body = CameraUpdate, responses(
    (status = 200, body = CameraView), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
    (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
))]
#[patch("/v1/rooms/{id}/cameras/{camera_id}")]
pub async fn update_camera(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<(String, String)>,
    body: web::Json<CameraUpdate>,
) -> Result<HttpResponse, ApiError> {
    let (room, camera) = path.into_inner();
    let access = RoomAccess::load(&state, &user, &room).await?;
    access.require_manager()?;
    let camera = camera_of(&state, &access, &camera).await?;
    let name = body.name.as_deref().map(CameraName::parse).transpose()?;
    let url = body.rtsp_url.as_deref().map(parse_url).transpose()?;
    let credentials = changed_credentials(&state, camera.credentials.as_deref(), &body)?;
    if let Some(url) = &url {
        check_host(&state, url).await?;
    }
    let change = CameraChange {
        name: name.as_ref().map(CameraName::as_str),
        rtsp_url: url.as_ref().map(CameraUrl::as_str),
        credentials: credentials.as_ref().map(Option::as_deref),
    };
    let room_id = access.room.id;
    let mut tx = state.db.begin().await?;
    if !cameras::update_camera(&mut *tx, camera.id, &change).await? {
        return Err(ApiError::NotFound);
    }
    let changed: Vec<&str> =
        [("name", name.is_some()), ("rtsp_url", url.is_some()), ("credentials", credentials.is_some())]
            .into_iter()
            .filter_map(|(field, changed)| changed.then_some(field))
            .collect();
    let mut details = serde_json::json!({"camera_id": camera.id, "changed": changed});
    if let Some(url) = &url {
        details["host"] = url.host_for_display().into();
    }
    if let Some(credentials) = &credentials {
        details["has_credentials"] = credentials.is_some().into();
    }
    audit(&mut tx, &req, user.id, "camera.update", Some(room_id), None, details).await?;
    tx.commit().await?;
    let camera = cameras::find_camera(&state.db, room_id, camera.id).await?.ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(CameraView::new(camera, true)))
}

/// Remove a camera (owner, moderators, admins); the worker stops pulling it on its next poll.
#[utoipa::path(tag = "cameras", security(("bearer" = [])), responses(
    (status = 204), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
))]
#[delete("/v1/rooms/{id}/cameras/{camera_id}")]
pub async fn delete_camera(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, camera) = path.into_inner();
    let access = RoomAccess::load(&state, &user, &room).await?;
    access.require_manager()?;
    let camera = camera_of(&state, &access, &camera).await?;
    let room_id = access.room.id;
    let mut tx = state.db.begin().await?;
    if !cameras::delete_camera(&mut *tx, room_id, camera.id).await? {
        return Err(ApiError::NotFound);
    }
    let details = serde_json::json!({"camera_id": camera.id, "name": camera.name});
    audit(&mut tx, &req, user.id, "camera.delete", Some(room_id), None, details).await?;
    tx.commit().await?;
    tracing::info!(room.id = %room_id, camera.id = %camera.id, user.id = %user.id, "camera removed");
    Ok(HttpResponse::NoContent().finish())
}

/// What the ingest worker last reported about a camera (members and admins).
#[utoipa::path(tag = "cameras", security(("bearer" = [])), responses(
    (status = 200, body = CameraStatusView), (status = 404, body = ErrorResponse),
))]
#[get("/v1/rooms/{id}/cameras/{camera_id}/status")]
pub async fn camera_status(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, camera) = path.into_inner();
    let access = RoomAccess::load(&state, &user, &room).await?;
    let camera = camera_of(&state, &access, &camera).await?;
    Ok(HttpResponse::Ok().json(CameraStatusView::from(camera.status)))
}
