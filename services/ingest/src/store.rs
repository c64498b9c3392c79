//! The Postgres side: the cameras to pull (`cameras`, owned by the API) and what this worker
//! reports about them (`camera_status`, written only here). A worker takes a status row over
//! with its first `connecting` write; after that only the worker named in the row writes it, so a
//! worker that lost its lease without noticing cannot overwrite the one that took the camera.

use sqlx::PgPool;

use crate::status::CameraStatus;

pub use confab_domain::{CameraId, RoomId};

/// A camera as the API registered it.
#[derive(Clone)]
pub struct Camera {
    pub id: CameraId,
    pub room_id: RoomId,
    pub name: String,
    /// Never contains credentials.
    pub rtsp_url: String,
    /// Sealed `{"username","password"}`, opened with the camera key.
    pub credentials: Option<Vec<u8>>,
}

impl std::fmt::Debug for Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Camera")
            .field("id", &self.id)
            .field("room_id", &self.room_id)
            .field("name", &self.name)
            .field("credentials", &self.credentials.as_ref().map(|_| "sealed"))
            .finish_non_exhaustive()
    }
}

type CameraRow = (CameraId, RoomId, String, String, Option<Vec<u8>>);

fn camera((id, room_id, name, rtsp_url, credentials): CameraRow) -> Camera {
    Camera { id, room_id, name, rtsp_url, credentials }
}

/// The cameras of these rooms.
pub async fn find_cameras_in_rooms(db: &PgPool, rooms: &[RoomId]) -> sqlx::Result<Vec<Camera>> {
    if rooms.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<CameraRow> = sqlx::query_as(
        "select id, room_id, name, rtsp_url, credentials from cameras where room_id = any($1) order by created_at, id",
    )
    .bind(rooms)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(camera).collect())
}

/// The camera as it is now (its URL or credentials may have changed since the last connect).
pub async fn find_camera_by_id(db: &PgPool, id: CameraId) -> sqlx::Result<Option<Camera>> {
    let row: Option<CameraRow> =
        sqlx::query_as("select id, room_id, name, rtsp_url, credentials from cameras where id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?;
    Ok(row.map(camera))
}

/// Writes the camera's status under `worker_id`; `false` when the row belongs to another worker
/// (or the camera is gone). A `connecting` status takes the row over from whoever had it.
pub async fn upsert_camera_status(
    db: &PgPool,
    id: CameraId,
    worker_id: &str,
    status: &CameraStatus,
) -> sqlx::Result<bool> {
    let written = sqlx::query(
        "insert into camera_status
           (camera_id, state, codec, width, height, frame_rate, bitrate_kbps, audio, last_error, reconnects,
            worker_id, updated_at)
         select $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now()
          where exists (select 1 from cameras where id = $1)
         on conflict (camera_id) do update
            set state = excluded.state, codec = excluded.codec, width = excluded.width, height = excluded.height,
                frame_rate = excluded.frame_rate, bitrate_kbps = excluded.bitrate_kbps, audio = excluded.audio,
                last_error = excluded.last_error, reconnects = excluded.reconnects,
                worker_id = excluded.worker_id, updated_at = now()
          where camera_status.worker_id is not distinct from excluded.worker_id
             or camera_status.worker_id is null
             or excluded.state = 'connecting'",
    )
    .bind(id)
    .bind(status.state.as_str())
    .bind(&status.codec)
    .bind(status.width)
    .bind(status.height)
    .bind(status.frame_rate)
    .bind(status.bitrate_kbps)
    .bind(&status.audio)
    .bind(&status.last_error)
    .bind(status.reconnects)
    .bind(worker_id)
    .execute(db)
    .await;
    match written {
        Ok(done) => Ok(done.rows_affected() == 1),
        // The camera was deleted between the check and the insert.
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Nobody pulls the camera any more: `idle`, keeping the last error and counters for operators,
/// unless another worker has the row now.
pub async fn mark_camera_idle(db: &PgPool, id: CameraId, worker_id: &str) -> sqlx::Result<bool> {
    let marked = sqlx::query(
        "update camera_status set state = 'idle', worker_id = null, frame_rate = null, bitrate_kbps = null,
                updated_at = now()
          where camera_id = $1 and worker_id = $2",
    )
    .bind(id)
    .bind(worker_id)
    .execute(db)
    .await?;
    Ok(marked.rows_affected() == 1)
}
