//! The `recordings` and `recording_files` tables.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use crate::domain::page::Page;
use crate::domain::{RecordingFileId, RecordingId, RecordingStatus, RoomId, RoomRole, UserId};
use crate::error::is_unique_violation;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Recording {
    pub id: RecordingId,
    pub room_id: RoomId,
    pub started_by: Option<UserId>,
    pub status: RecordingStatus,
    pub reason: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub packets: i64,
    pub packets_lost: i64,
    pub keyframe_requests: i64,
    pub av_drift_ms: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecordingFile {
    pub id: RecordingFileId,
    pub recording_id: RecordingId,
    pub peer_id: String,
    pub user_id: Option<UserId>,
    pub participant: String,
    /// Relative to the recordings directory.
    pub path: String,
    pub content_type: String,
    pub bytes: i64,
    pub duration_ms: Option<i64>,
    pub codecs: Vec<String>,
    pub sha256: Option<String>,
    /// Rebuilt from what a crashed recorder left on disk.
    pub recovered: bool,
    pub created_at: DateTime<Utc>,
}

macro_rules! recording_columns {
    () => {
        concat!(
            "r.id, r.room_id, r.started_by, r.status, r.reason, r.started_at, r.ended_at, r.created_at, ",
            "r.packets, r.packets_lost, r.keyframe_requests, r.av_drift_ms"
        )
    };
}

/// What decides a user's access to recording `r` (see [`RecordingWithAccess`]); `$user` is the
/// placeholder of the user's id.
macro_rules! access_columns {
    ($user:literal) => {
        concat!(
            "exists (select 1 from rooms where id = r.room_id) as room_exists, ",
            "(select m.role from room_members m where m.room_id = r.room_id and m.user_id = ",
            $user,
            ") as room_role, ",
            "(select a.role from recording_access a where a.recording_id = r.id and a.user_id = ",
            $user,
            ") as listed_role"
        )
    };
}

macro_rules! file_columns {
    () => {
        concat!(
            "id, recording_id, peer_id, user_id, participant, path, content_type, bytes, duration_ms, codecs, ",
            "sha256, recovered, created_at"
        )
    };
}

/// The room's running recording, or a new pending one; `true` when this call created it; `None`
/// when the room is gone. Safe under concurrent calls: the partial unique index admits one
/// running recording per room.
pub async fn start_recording(
    tx: &mut PgConnection,
    room_id: RoomId,
    started_by: UserId,
) -> Result<Option<(Recording, bool)>, sqlx::Error> {
    // Holds off a concurrent delete of the room until this transaction ends, so a recording is
    // never made for a room that is already gone (recordings have no foreign key to rooms).
    let room: Option<RoomId> = sqlx::query_scalar("select id from rooms where id = $1 for key share")
        .bind(room_id)
        .fetch_optional(&mut *tx)
        .await?;
    if room.is_none() {
        return Ok(None);
    }
    if let Some(running) = running_recording(&mut *tx, room_id).await? {
        return Ok(Some((running, false)));
    }
    sqlx::query("savepoint start_recording").execute(&mut *tx).await?;
    let inserted = sqlx::query_as(concat!(
        "insert into recordings as r (id, room_id, started_by) values ($1, $2, $3) returning ",
        recording_columns!()
    ))
    .bind(RecordingId::random())
    .bind(room_id)
    .bind(started_by)
    .fetch_one(&mut *tx)
    .await;
    match inserted {
        Ok(recording) => Ok(Some((recording, true))),
        // Another request started one between our check and insert: that one is the answer.
        Err(e) if is_unique_violation(&e) => {
            sqlx::query("rollback to savepoint start_recording").execute(&mut *tx).await?;
            let running = running_recording(&mut *tx, room_id).await?;
            running.map(|r| Some((r, false))).ok_or(e)
        }
        Err(e) => Err(e),
    }
}

/// The room's recording that is pending, starting or recording, if there is one.
pub async fn running_recording(db: impl PgExecutor<'_>, room_id: RoomId) -> Result<Option<Recording>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        recording_columns!(),
        " from recordings r where r.room_id = $1 and r.status in ('pending', 'starting', 'recording')"
    ))
    .bind(room_id)
    .fetch_optional(db)
    .await
}

/// How many recordings are in each unfinished status, and how many failed in the last 24 hours.
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub struct StatusCounts {
    pub pending: i64,
    pub starting: i64,
    pub recording: i64,
    pub finalizing: i64,
    pub failed_last_24h: i64,
}

pub async fn count_by_status(db: impl PgExecutor<'_>) -> Result<StatusCounts, sqlx::Error> {
    sqlx::query_as(
        "select count(*) filter (where status = 'pending') as pending,
                count(*) filter (where status = 'starting') as starting,
                count(*) filter (where status = 'recording') as recording,
                count(*) filter (where status = 'finalizing') as finalizing,
                count(*) filter (where status = 'failed'
                                 and coalesce(ended_at, updated_at) > now() - interval '24 hours') as failed_last_24h
           from recordings
          where status in ('pending', 'starting', 'recording', 'finalizing')
             or (status = 'failed' and coalesce(ended_at, updated_at) > now() - interval '24 hours')",
    )
    .fetch_one(db)
    .await
}

/// A recording with what decides `user`'s access to it (auth/recording_access.rs).
#[derive(Debug, sqlx::FromRow)]
pub struct RecordingWithAccess {
    #[sqlx(flatten)]
    pub recording: Recording,
    /// Whether the room it was made in still exists.
    pub room_exists: bool,
    /// The user's role in that room now (`None` when not a member or the room is gone).
    pub room_role: Option<RoomRole>,
    /// The user's role on the recording's own access list (the room's members while it was
    /// recorded).
    pub listed_role: Option<RoomRole>,
}

pub async fn find_recording_with_access(
    db: impl PgExecutor<'_>,
    id: RecordingId,
    user: UserId,
) -> Result<Option<RecordingWithAccess>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        recording_columns!(),
        ", ",
        access_columns!("$2"),
        " from recordings r where r.id = $1"
    ))
    .bind(id)
    .bind(user)
    .fetch_optional(db)
    .await
}

/// Asks a running recording to stop. A pending one that no recorder took yet ends at once as
/// `failed`; a starting or recording one goes to `finalizing` for its recorder to close. Any
/// other state is left as it is (stopping twice is a no-op). Returns the recording as it is now.
pub async fn request_stop(db: impl PgExecutor<'_>, id: RecordingId) -> Result<Option<Recording>, sqlx::Error> {
    sqlx::query_as(concat!(
        "update recordings r set
           status = case r.status when 'pending' then 'failed' else 'finalizing' end,
           reason = case r.status when 'pending' then 'stopped before a recorder took it' else r.reason end,
           ended_at = case r.status when 'pending' then now() else r.ended_at end,
           stop_requested_at = now(), updated_at = now()
         where r.id = $1 and r.status in ('pending', 'starting', 'recording')
         returning ",
        recording_columns!()
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// The recordings `user` may see (of the rooms they belong to, and those whose access list names
/// them), or those of one room, newest first, with what decides their access to each.
pub async fn list_for_member(
    db: impl PgExecutor<'_>,
    user: UserId,
    room: Option<RoomId>,
    page: &Page,
) -> Result<Vec<RecordingWithAccess>, sqlx::Error> {
    let (at, id) = page.after.map(|c| (Some(c.created_at), Some(c.id))).unwrap_or_default();
    sqlx::query_as(concat!(
        "select ",
        recording_columns!(),
        ", ",
        access_columns!("$1"),
        " from recordings r
         where r.id in (select a.recording_id from recording_access a where a.user_id = $1
                        union
                        select v.id from recordings v join room_members m on m.room_id = v.room_id and m.user_id = $1)
           and ($2::uuid is null or r.room_id = $2)
           and ($3::timestamptz is null or (r.created_at, r.id) < ($3, $4))
         order by r.created_at desc, r.id desc limit $5"
    ))
    .bind(user)
    .bind(room)
    .bind(at)
    .bind(id)
    .bind(page.fetch_limit())
    .fetch_all(db)
    .await
}

/// Every recording, newest first (admins).
pub async fn list_all(db: impl PgExecutor<'_>, page: &Page) -> Result<Vec<Recording>, sqlx::Error> {
    let (at, id) = page.after.map(|c| (Some(c.created_at), Some(c.id))).unwrap_or_default();
    sqlx::query_as(concat!(
        "select ",
        recording_columns!(),
        " from recordings r where $1::timestamptz is null or (r.created_at, r.id) < ($1, $2)
         order by r.created_at desc, r.id desc limit $3"
    ))
    .bind(at)
    .bind(id)
    .bind(page.fetch_limit())
    .fetch_all(db)
    .await
}

/// The files of each of `recordings`, oldest first.
pub async fn files_of(db: impl PgExecutor<'_>, recordings: &[RecordingId]) -> Result<Vec<RecordingFile>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        file_columns!(),
        " from recording_files where recording_id = any($1) order by created_at, id"
    ))
    .bind(recordings)
    .fetch_all(db)
    .await
}

pub async fn find_file(
    db: impl PgExecutor<'_>,
    recording_id: RecordingId,
    file_id: RecordingFileId,
) -> Result<Option<RecordingFile>, sqlx::Error> {
    sqlx::query_as(concat!("select ", file_columns!(), " from recording_files where id = $1 and recording_id = $2"))
        .bind(file_id)
        .bind(recording_id)
        .fetch_optional(db)
        .await
}

/// Deletes a recording that is not running; false when there is none to delete.
pub async fn delete_recording(db: impl PgExecutor<'_>, id: RecordingId) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("delete from recordings where id = $1 and status not in ('pending', 'starting', 'recording')")
            .bind(id)
            .execute(db)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a room's recordings that are not running; their ids, to remove their files.
pub async fn delete_finished_of_room(
    db: impl PgExecutor<'_>,
    room_id: RoomId,
) -> Result<Vec<RecordingId>, sqlx::Error> {
    sqlx::query_scalar(
        "delete from recordings where room_id = $1 and status not in ('pending', 'starting', 'recording') returning id",
    )
    .bind(room_id)
    .fetch_all(db)
    .await
}

/// Stops the room's running recording, if there is one, as a stop request would: its room is
/// going away. Whether there was one.
pub async fn stop_running_in_room(tx: &mut PgConnection, room_id: RoomId) -> Result<bool, sqlx::Error> {
    match running_recording(&mut *tx, room_id).await? {
        Some(running) => Ok(request_stop(&mut *tx, running.id).await?.is_some()),
        None => Ok(false),
    }
}
