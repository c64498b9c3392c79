//! The `cameras` table (migration 8), read with what the ingest worker last wrote to
//! `camera_status`. The API never writes `camera_status`.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use crate::domain::page::Page;
use crate::domain::{CameraId, CameraState, RoomId, UserId};

/// The worker's report on a camera; every field is `None` while there is none.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct CameraStatus {
    pub state: Option<CameraState>,
    pub codec: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub frame_rate: Option<f32>,
    pub bitrate_kbps: Option<i32>,
    pub audio: Option<String>,
    pub last_error: Option<String>,
    pub reconnects: Option<i32>,
    pub status_updated_at: Option<DateTime<Utc>>,
}

/// A camera with its status. `credentials` is sealed; it never leaves the API.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Camera {
    pub id: CameraId,
    pub room_id: RoomId,
    pub name: String,
    pub rtsp_url: String,
    pub credentials: Option<Vec<u8>>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[sqlx(flatten)]
    pub status: CameraStatus,
}

macro_rules! camera_select {
    () => {
        "select c.id, c.room_id, c.name, c.rtsp_url, c.credentials, c.created_by, c.created_at, c.updated_at,
                s.state, s.codec, s.width, s.height, s.frame_rate, s.bitrate_kbps, s.audio, s.last_error,
                s.reconnects, s.updated_at as status_updated_at
           from cameras c left join camera_status s on s.camera_id = c.id "
    };
}

pub struct NewCamera<'a> {
    pub room_id: RoomId,
    pub name: &'a str,
    pub rtsp_url: &'a str,
    pub credentials: Option<&'a [u8]>,
    pub created_by: UserId,
}

/// Locks the room's row for the rest of the transaction and counts its cameras, so that two
/// concurrent additions cannot both pass the per-room limit.
pub async fn lock_and_count_cameras(tx: &mut PgConnection, room_id: RoomId) -> sqlx::Result<i64> {
    sqlx::query("select 1 from rooms where id = $1 for update").bind(room_id).execute(&mut *tx).await?;
    sqlx::query_scalar("select count(*) from cameras where room_id = $1").bind(room_id).fetch_one(&mut *tx).await
}

pub async fn insert_camera(db: impl PgExecutor<'_>, new: &NewCamera<'_>) -> sqlx::Result<CameraId> {
    let id = CameraId::random();
    sqlx::query(
        "insert into cameras (id, room_id, name, rtsp_url, credentials, created_by) values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(new.room_id)
    .bind(new.name)
    .bind(new.rtsp_url)
    .bind(new.credentials)
    .bind(new.created_by)
    .execute(db)
    .await?;
    Ok(id)
}

/// The camera `id` of `room_id`; `None` when there is none, or it belongs to another room.
pub async fn find_camera(db: impl PgExecutor<'_>, room_id: RoomId, id: CameraId) -> sqlx::Result<Option<Camera>> {
    sqlx::query_as(concat!(camera_select!(), "where c.room_id = $1 and c.id = $2"))
        .bind(room_id)
        .bind(id)
        .fetch_optional(db)
        .await
}

/// A room's cameras, oldest first (at most `MAX_CAMERAS_PER_ROOM`, so no paging).
pub async fn list_cameras_of_room(db: impl PgExecutor<'_>, room_id: RoomId) -> sqlx::Result<Vec<Camera>> {
    sqlx::query_as(concat!(camera_select!(), "where c.room_id = $1 order by c.created_at, c.id"))
        .bind(room_id)
        .fetch_all(db)
        .await
}

/// Every camera, newest first, one page; only `room_id`'s when given (admins).
pub async fn list_all_cameras(
    db: impl PgExecutor<'_>,
    room_id: Option<RoomId>,
    page: &Page,
) -> sqlx::Result<Vec<Camera>> {
    let (at, id) = page.after.map(|c| (Some(c.created_at), Some(c.id))).unwrap_or_default();
    sqlx::query_as(concat!(
        camera_select!(),
        "where ($1::uuid is null or c.room_id = $1)
           and ($2::timestamptz is null or (c.created_at, c.id) < ($2, $3))
         order by c.created_at desc, c.id desc limit $4"
    ))
    .bind(room_id)
    .bind(at)
    .bind(id)
    .bind(page.fetch_limit())
    .fetch_all(db)
    .await
}

/// Changes what is given; `None` keeps the current value. `credentials: Some(None)` removes them.
pub struct CameraChange<'a> {
    pub name: Option<&'a str>,
    pub rtsp_url: Option<&'a str>,
    pub credentials: Option<Option<&'a [u8]>>,
}

pub async fn update_camera(db: impl PgExecutor<'_>, id: CameraId, change: &CameraChange<'_>) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "update cameras
            set name = coalesce($2, name), rtsp_url = coalesce($3, rtsp_url),
                credentials = case when $4 then $5 else credentials end, updated_at = now()
          where id = $1",
    )
    .bind(id)
    .bind(change.name)
    .bind(change.rtsp_url)
    .bind(change.credentials.is_some())
    .bind(change.credentials.flatten())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_camera(db: impl PgExecutor<'_>, room_id: RoomId, id: CameraId) -> sqlx::Result<bool> {
    let done =
        sqlx::query("delete from cameras where room_id = $1 and id = $2").bind(room_id).bind(id).execute(db).await?;
    Ok(done.rows_affected() == 1)
}
