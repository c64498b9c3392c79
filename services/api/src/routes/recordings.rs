//! Recordings: start and stop (owners, moderators, admins), list, inspect, delete, and download
//! the files, which are served only through this authorized handler. A recording is visible to
//! its room's members, to the members of the room while it was recorded (its access list, which
//! outlives the room), and to admins; everyone else gets 404 (auth/recording_access.rs).

use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use confab_common::http::RequestId;
use confab_storage::Key;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ErrorResponse, audit};
use crate::auth::current_user::CurrentUser;
use crate::auth::recording_access::RecordingAccess;
use crate::auth::room_access::RoomAccess;
use crate::domain::page::{Cursor, Page, PageQuery};
use crate::domain::{RecordingFileId, RecordingId, RecordingStatus, RoomId, UserId};
use crate::download::{self, Download};
use crate::error::ApiError;
use crate::removal::remove_recording_files;
use crate::state::AppState;
use crate::store::recordings::{self, Recording, RecordingFile};

#[derive(Serialize, ToSchema)]
pub struct RecordingView {
    // Described as a plain UUID, as it always was: no `RecordingId` schema (a doc comment here
    // would become its description).
    #[schema(value_type = uuid::Uuid)]
    pub id: RecordingId,
    pub room_id: RoomId,
    pub started_by: Option<UserId>,
    pub status: RecordingStatus,
    /// Why it is `failed` or `partial`.
    pub reason: Option<String>,
    /// When media started to arrive.
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// One per participant and per camera (and per new track when a stream restarted or its
    /// picture size changed).
    pub files: Vec<FileView>,
    pub stats: RecordingStats,
    /// Whether the caller may stop and delete it (docs/architecture.md, "Recordings outlive their
    /// room").
    pub can_manage: bool,
}

#[derive(Serialize, ToSchema)]
pub struct FileView {
    // Described as a plain UUID, as it always was (no `RecordingFileId` schema).
    #[schema(value_type = uuid::Uuid)]
    pub id: RecordingFileId,
    /// The participant's display name when recorded; for a camera, the camera's name.
    pub participant: String,
    pub peer_id: String,
    /// None for a camera (and for a participant whose account is gone).
    pub user_id: Option<UserId>,
    /// `video/webm` for a participant (VP8/VP9, Opus), `video/x-matroska` for a camera (H.264,
    /// G.711), which WebM cannot carry.
    pub content_type: String,
    pub duration_ms: Option<i64>,
    pub bytes: i64,
    pub codecs: Vec<String>,
    pub sha256: Option<String>,
    /// Rebuilt by a recorder from what a crashed recorder left on disk: it plays, but its last
    /// seconds may be missing.
    pub recovered: bool,
}

#[derive(Serialize, ToSchema)]
pub struct RecordingStats {
    pub files: usize,
    pub bytes: i64,
    /// The longest file's duration.
    pub duration_ms: Option<i64>,
    /// RTP packets the recorder received, over all participants.
    pub packets: i64,
    /// Packets that never arrived (gaps in sequence numbers given up on).
    pub packets_lost: i64,
    /// Keyframe requests (PLI) the recorder sent.
    pub keyframe_requests: i64,
    /// The largest correction RTCP sender reports made to a track's timing: how far audio and
    /// video would have drifted apart without them.
    pub av_drift_ms: i64,
}

#[derive(Serialize, ToSchema)]
pub struct RecordingList {
    pub recordings: Vec<RecordingView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct RecordingFilter {
    /// Only this room's recordings.
    #[param(value_type = Option<uuid::Uuid>)]
    pub room_id: Option<String>,
}

impl From<RecordingFile> for FileView {
    fn from(f: RecordingFile) -> Self {
        Self {
            id: f.id,
            participant: f.participant,
            peer_id: f.peer_id,
            user_id: f.user_id,
            content_type: f.content_type,
            duration_ms: f.duration_ms,
            bytes: f.bytes,
            codecs: f.codecs,
            sha256: f.sha256,
            recovered: f.recovered,
        }
    }
}

fn view(recording: Recording, can_manage: bool, files: Vec<RecordingFile>) -> RecordingView {
    let stats = RecordingStats {
        files: files.len(),
        bytes: files.iter().map(|f| f.bytes).sum(),
        duration_ms: files.iter().filter_map(|f| f.duration_ms).max(),
        packets: recording.packets,
        packets_lost: recording.packets_lost,
        keyframe_requests: recording.keyframe_requests,
        av_drift_ms: recording.av_drift_ms,
    };
    RecordingView {
        id: recording.id,
        room_id: recording.room_id,
        started_by: recording.started_by,
        status: recording.status,
        reason: recording.reason,
        started_at: recording.started_at,
        ended_at: recording.ended_at,
        created_at: recording.created_at,
        files: files.into_iter().map(FileView::from).collect(),
        stats,
        can_manage,
    }
}

/// Recordings with their files, in the given order, each with whether the caller may manage it.
pub async fn views(state: &AppState, recordings: Vec<(Recording, bool)>) -> Result<Vec<RecordingView>, ApiError> {
    let ids: Vec<RecordingId> = recordings.iter().map(|(r, _)| r.id).collect();
    let mut files = recordings::files_of(&state.db, &ids).await?;
    Ok(recordings
        .into_iter()
        .map(|(recording, can_manage)| {
            let (mine, rest) = files.drain(..).partition(|f| f.recording_id == recording.id);
            files = rest;
            view(recording, can_manage, mine)
        })
        .collect())
}

/// Start recording the room's call (owner, moderators, admins). While a recording is running,
/// starting again returns it: one click from two moderators makes one recording.
#[utoipa::path(tag = "recordings", security(("bearer" = [])), responses(
    (status = 202, body = RecordingView), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
    (status = 503, body = ErrorResponse),
))]
#[post("/v1/rooms/{id}/recordings")]
pub async fn start_recording(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let access = RoomAccess::load(&state, &user, &path).await?;
    access.require_manager()?;
    let mut tx = state.db.begin().await?;
    let (recording, created) =
        recordings::start_recording(&mut tx, access.room.id, user.id).await?.ok_or(ApiError::NotFound)?;
    if created {
        audit(
            &mut tx,
            &req,
            user.id,
            "recording.start",
            Some(access.room.id),
            None,
            serde_json::json!({
                "recording_id": recording.id
            }),
        )
        .await?;
        // Queued before the commit: a job that cannot be queued leaves no row behind.
        state.recording_jobs.queue(recording.id, access.room.id, &RequestId::of(&req)).await?;
        tracing::info!(recording.id = %recording.id, room.id = %access.room.id, "recording queued");
    }
    tx.commit().await?;
    if created {
        metrics::counter!("api_recordings_requested_total", "action" => "start").increment(1);
    }
    Ok(HttpResponse::Accepted().json(view(recording, true, Vec::new())))
}

/// Stop a running recording (owner, moderators, admins); stopping a stopped one changes nothing.
#[utoipa::path(tag = "recordings", security(("bearer" = [])), responses(
    (status = 200, body = RecordingView), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
))]
#[post("/v1/recordings/{id}/stop")]
pub async fn stop_recording(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let access = RecordingAccess::load(&state, &user, &path).await?;
    access.require_manager()?;
    let recording = access.recording;
    let mut tx = state.db.begin().await?;
    let stopped = recordings::request_stop(&mut *tx, recording.id).await?;
    if stopped.is_some() {
        let details = serde_json::json!({"recording_id": recording.id});
        audit(&mut tx, &req, user.id, "recording.stop", Some(recording.room_id), None, details).await?;
    }
    tx.commit().await?;
    if stopped.is_some() {
        metrics::counter!("api_recordings_requested_total", "action" => "stop").increment(1);
    }
    let current = stopped.unwrap_or(recording);
    let mut viewed = views(&state, vec![(current, true)]).await?;
    Ok(HttpResponse::Ok().json(viewed.remove(0)))
}

/// The recordings I may see, newest first: those of the rooms I belong to, and those of rooms I
/// belonged to while they were recorded, deleted rooms included; `?room_id=` narrows to one room.
#[utoipa::path(tag = "recordings", security(("bearer" = [])), params(PageQuery, RecordingFilter), responses(
    (status = 200, body = RecordingList), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
))]
#[get("/v1/recordings")]
pub async fn list_recordings(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    page: web::Query<PageQuery>,
    filter: web::Query<RecordingFilter>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(&page)?;
    let room = match filter.room_id.as_deref() {
        None => None,
        Some(raw) => {
            Some(RoomId::parse(raw).map_err(|_| ApiError::invalid("invalid_room_id", "room_id is not a room id"))?)
        }
    };
    let rows = recordings::list_for_member(&state.db, user.id, room, &page).await?;
    let (rows, next_cursor) =
        page.finish(rows, |r| Cursor { created_at: r.recording.created_at, id: r.recording.id.uuid() });
    let rows = rows
        .into_iter()
        .filter_map(|found| RecordingAccess::of(&user, found))
        .map(|access| (access.recording, access.may_manage))
        .collect();
    Ok(HttpResponse::Ok().json(RecordingList { recordings: views(&state, rows).await?, next_cursor }))
}

/// One recording with its files.
#[utoipa::path(tag = "recordings", security(("bearer" = [])), responses(
    (status = 200, body = RecordingView), (status = 404, body = ErrorResponse),
))]
#[get("/v1/recordings/{id}")]
pub async fn get_recording(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let access = RecordingAccess::load(&state, &user, &path).await?;
    let mut viewed = views(&state, vec![(access.recording, access.may_manage)]).await?;
    Ok(HttpResponse::Ok().json(viewed.remove(0)))
}

/// Delete a recording and its files (the room's owner and moderators, or theirs at recording
/// time once the room is deleted; admins). A running recording must be stopped first (409).
#[utoipa::path(tag = "recordings", security(("bearer" = [])), responses(
    (status = 204), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
    (status = 409, body = ErrorResponse),
))]
#[delete("/v1/recordings/{id}")]
pub async fn delete_recording(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let access = RecordingAccess::load(&state, &user, &path).await?;
    access.require_manager()?;
    let recording = access.recording;
    let mut tx = state.db.begin().await?;
    if !recordings::delete_recording(&mut *tx, recording.id).await? {
        return Err(ApiError::Conflict { code: "recording_running", message: "stop the recording before deleting it" });
    }
    let details = serde_json::json!({"recording_id": recording.id});
    audit(&mut tx, &req, user.id, "recording.delete", Some(recording.room_id), None, details).await?;
    tx.commit().await?;
    remove_recording_files(&state.storage, recording.id).await;
    Ok(HttpResponse::NoContent().finish())
}

/// Download one file, served with its own media type (`video/webm` for participants,
/// `video/x-matroska` for cameras): `Range` and `If-None-Match`/`If-Range` work against its
/// `ETag`; always an attachment, never rendered by the browser.
#[utoipa::path(tag = "recordings", security(("bearer" = [])), responses(
    (status = 200, content(("video/webm"), ("video/x-matroska"))),
    (status = 206, content(("video/webm"), ("video/x-matroska"))),
    (status = 404, body = ErrorResponse), (status = 416),
))]
#[get("/v1/recordings/{id}/files/{file_id}")]
pub async fn download_file(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (recording_id, file_id) = path.into_inner();
    let recording = RecordingAccess::load(&state, &user, &recording_id).await?.recording;
    let file_id = RecordingFileId::parse(&file_id).map_err(|_| ApiError::NotFound)?;
    let file = recordings::find_file(&state.db, recording.id, file_id).await?.ok_or(ApiError::NotFound)?;
    let Ok(key) = Key::parse(file.path.as_str()) else {
        tracing::error!(file.id = %file.id, "refusing a recording file path outside the recordings");
        return Err(ApiError::NotFound);
    };
    let extension = if file.content_type == MATROSKA { "mkv" } else { "webm" };
    let disposition = ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![DispositionParam::Filename(format!(
            "{}-{}.{extension}",
            safe_name(&file.participant),
            file.id
        ))],
    };
    let content_type = file.content_type.parse().unwrap_or(mime_webm());
    download::respond(&req, &state.storage, Download { key, content_type, disposition }).await
}

/// A camera's file (the recorder writes every other file as WebM).
const MATROSKA: &str = "video/x-matroska";

fn mime_webm() -> actix_web::mime::Mime {
    "video/webm".parse().expect("a valid media type")
}

/// A participant's name as a file name: letters, digits, `-` and `_`, at most 40 characters.
fn safe_name(name: &str) -> String {
    let cleaned: String =
        name.chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).take(40).collect();
    if cleaned.is_empty() { "participant".into() } else { cleaned }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_are_tame() {
        assert_eq!(safe_name("Ann Lee"), "Ann_Lee");
        assert_eq!(safe_name("../../evil\r\n"), "______evil__");
        assert_eq!(safe_name(""), "participant");
    }
}
