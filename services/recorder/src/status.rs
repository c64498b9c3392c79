//! A recording's status in Postgres, as this recorder moves it along (SPEC §5):
//! `pending → starting → recording → finalizing → ready | partial | failed`. Every change is
//! conditional on the state it leaves, so a stop from the API or a recorder that took the job
//! over is never overwritten.

use sqlx::PgPool;
use uuid::Uuid;

use crate::call::Recorded;
use crate::webm_file::FinishedFile;

/// What a claimed job should do.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Record: the row is now `starting` under this recorder.
    Record,
    /// Stopped, finished or deleted meanwhile: nothing to do.
    Nothing,
}

/// Takes a pending recording, or one whose recorder died while it ran (it continues into new
/// files).
pub async fn claim(db: &PgPool, recording_id: Uuid, recorder_id: &str) -> sqlx::Result<Claim> {
    let claimed = sqlx::query(
        "update recordings set status = 'starting', recorder_id = $2, updated_at = now()
         where id = $1 and status in ('pending', 'starting', 'recording')",
    )
    .bind(recording_id)
    .bind(recorder_id)
    .execute(db)
    .await?;
    Ok(if claimed.rows_affected() == 1 { Claim::Record } else { Claim::Nothing })
}

/// The recorder is in the call: `recording`, with the time media capture began (kept from an
/// earlier recorder of the same recording).
pub async fn mark_recording(db: &PgPool, recording_id: Uuid, recorder_id: &str) -> sqlx::Result<bool> {
    let marked = sqlx::query(
        "update recordings set status = 'recording', started_at = coalesce(started_at, now()), updated_at = now()
         where id = $1 and recorder_id = $2 and status = 'starting'",
    )
    .bind(recording_id)
    .bind(recorder_id)
    .execute(db)
    .await?;
    Ok(marked.rows_affected() == 1)
}

/// Whether the API asked for the recording to stop (or it is gone).
pub async fn stop_requested(db: &PgPool, recording_id: Uuid) -> sqlx::Result<bool> {
    let status: Option<String> =
        sqlx::query_scalar("select status from recordings where id = $1").bind(recording_id).fetch_optional(db).await?;
    Ok(!matches!(status.as_deref(), Some("starting" | "recording")))
}

/// The final state, unless another recorder took the recording over meanwhile.
pub async fn finish(
    db: &PgPool,
    recording_id: Uuid,
    recorder_id: &str,
    status: &str,
    reason: Option<&str>,
) -> sqlx::Result<bool> {
    let finished = sqlx::query(
        "update recordings set status = $3, reason = $4, ended_at = now(), recorder_id = null, updated_at = now()
         where id = $1 and recorder_id = $2 and status in ('starting', 'recording', 'finalizing')",
    )
    .bind(recording_id)
    .bind(recorder_id)
    .bind(status)
    .bind(reason)
    .execute(db)
    .await?;
    Ok(finished.rows_affected() == 1)
}

/// Records a finished file of the recording; `path` is relative to the recordings directory. A
/// participant whose account is gone meanwhile is kept by name only.
pub async fn add_file(
    db: &PgPool,
    recording_id: Uuid,
    participant: &Recorded,
    path: &str,
    file: &FinishedFile,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into recording_files
           (id, recording_id, peer_id, user_id, participant, path, bytes, duration_ms, codecs, sha256)
         values ($1, $2, $3, (select id from users where id = $4), $5, $6, $7, $8, $9, $10)",
    )
    .bind(Uuid::new_v4())
    .bind(recording_id)
    .bind(&participant.peer_id)
    .bind(Uuid::parse_str(&participant.user_id).ok())
    .bind(&participant.display_name)
    .bind(path)
    .bind(file.bytes as i64)
    .bind(file.duration_ms as i64)
    .bind(file.codecs.iter().map(|c| c.to_string()).collect::<Vec<_>>())
    .bind(&file.sha256)
    .execute(db)
    .await?;
    Ok(())
}

/// How many files the recording has.
pub async fn file_count(db: &PgPool, recording_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from recording_files where recording_id = $1")
        .bind(recording_id)
        .fetch_one(db)
        .await
}
