//! What the recorder keeps in Postgres: a recording's status as this recorder moves it along
//! (docs/operations.md, "Failure behaviour": `pending → starting → recording → finalizing →
//! ready | partial | failed`), its claims, statistics and file rows. Every status change is
//! conditional on the state it leaves, so a stop from the API or a recorder that took the job
//! over is never overwritten.

use std::time::Duration;

use confab_domain::{RecordingFileId, RecordingId, RecordingStatus, RoomId, UserId};
use sqlx::PgPool;

use crate::archive::Who;
use crate::capture::CaptureStats;
use crate::recording_file::FinishedFile;

/// What a claimed job should do.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Record: the row is now `starting` under this recorder. `taken_over` when another recorder
    /// had it and went silent: the recording then has a gap, and what that recorder left on disk
    /// needs recovering.
    Record { taken_over: bool },
    /// Stopped while its recorder was dead: recover what it left and finish.
    Finalize,
    /// Running under a live recorder, stopped or finished: nothing to do.
    Nothing,
    /// The row is not there or not claimable yet as far as this claim could see: the API queues
    /// the job just before it commits the row, so the job can come first. Ask again shortly.
    NotYet,
    /// Held by the recorder whose heartbeat key is gone, which still keeps the row fresh: it
    /// lives but cannot reach Redis. Leave the job; it comes back if that recorder goes quiet.
    HolderStillWrites,
}

/// How long the row of a recording whose recorder's heartbeat key is gone must have gone
/// untouched before another recorder takes it: a live recorder touches it every 500 ms.
pub const HOLDER_QUIET_FOR: Duration = Duration::from_secs(2);

/// Takes a pending recording, or one whose recorder has not been heard of for `stale_after` (it
/// continues into new files), or one held by `abandoned_by` (a recorder whose heartbeat key has
/// expired) that has not touched it for [`HOLDER_QUIET_FOR`], or one that names this recorder but
/// that this process does not work on (an earlier process with the same instance id died). A live
/// recorder keeps its recordings fresh with [`heartbeat`].
pub async fn claim(
    db: &PgPool,
    recording_id: RecordingId,
    recorder_id: &str,
    stale_after: Duration,
    abandoned_by: Option<&str>,
) -> sqlx::Result<Claim> {
    let before: Option<RecordingStatus> = sqlx::query_scalar(
        "with old as (select id, status from recordings where id = $1 for update)
         update recordings r
            set status = case when old.status = 'finalizing' then 'finalizing' else 'starting' end,
                recorder_id = $2, updated_at = now()
           from old
          where r.id = old.id
            and (old.status = 'pending'
                 or (old.status in ('starting', 'recording', 'finalizing')
                     and (r.updated_at < now() - make_interval(secs => $3)
                          or r.recorder_id = $2
                          or (r.recorder_id = $4 and r.updated_at < now() - make_interval(secs => $5)))))
         returning old.status",
    )
    .bind(recording_id)
    .bind(recorder_id)
    .bind(stale_after.as_secs_f64())
    .bind(abandoned_by)
    .bind(HOLDER_QUIET_FOR.as_secs_f64())
    .fetch_optional(db)
    .await?;
    let Some(before) = before else {
        // A commit between this statement's snapshot and now shows as a row that is still pending.
        let now: Option<(RecordingStatus, Option<String>)> =
            sqlx::query_as("select status, recorder_id from recordings where id = $1")
                .bind(recording_id)
                .fetch_optional(db)
                .await?;
        return Ok(match now {
            None => Claim::NotYet,
            Some((RecordingStatus::Pending, _)) => Claim::NotYet,
            Some((status, holder))
                if (status.is_capturing() || status == RecordingStatus::Finalizing)
                    && holder.is_some()
                    && holder.as_deref() == abandoned_by =>
            {
                Claim::HolderStillWrites
            }
            Some(_) => Claim::Nothing,
        });
    };
    Ok(match before {
        RecordingStatus::Pending => Claim::Record { taken_over: false },
        RecordingStatus::Finalizing => Claim::Finalize,
        _ => Claim::Record { taken_over: true },
    })
}

/// Tells that this recorder still works on the recording; the status it is in now, or `None`
/// when another recorder took it over (or it was deleted).
pub async fn heartbeat(
    db: &PgPool,
    recording_id: RecordingId,
    recorder_id: &str,
) -> sqlx::Result<Option<RecordingStatus>> {
    sqlx::query_scalar("update recordings set updated_at = now() where id = $1 and recorder_id = $2 returning status")
        .bind(recording_id)
        .bind(recorder_id)
        .fetch_optional(db)
        .await
}

/// Running recordings nobody has been heard of for `stale_after` (e.g. their job was lost with
/// Redis's data), and those that name `recorder_id` (given by a process that has just started
/// under that id): (recording id, room id).
pub async fn orphaned(
    db: &PgPool,
    recorder_id: Option<&str>,
    stale_after: Duration,
) -> sqlx::Result<Vec<(RecordingId, RoomId)>> {
    sqlx::query_as(
        "select id, room_id from recordings
          where status in ('pending', 'starting', 'recording', 'finalizing')
            and (updated_at < now() - make_interval(secs => $2) or recorder_id = $1)",
    )
    .bind(recorder_id)
    .bind(stale_after.as_secs_f64())
    .fetch_all(db)
    .await
}

/// The recorder is in the call: `recording`, with the time media capture began (kept from an
/// earlier recorder of the same recording).
pub async fn mark_recording(db: &PgPool, recording_id: RecordingId, recorder_id: &str) -> sqlx::Result<bool> {
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

/// The final state, unless another recorder took the recording over meanwhile.
pub async fn finish(
    db: &PgPool,
    recording_id: RecordingId,
    recorder_id: &str,
    status: RecordingStatus,
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

/// Puts a recording this recorder has just claimed (`starting`) back to `pending`, unless it was
/// requested more than `waited_for` ago; whether it did.
pub async fn release(
    db: &PgPool,
    recording_id: RecordingId,
    recorder_id: &str,
    waited_for: Duration,
) -> sqlx::Result<bool> {
    let released = sqlx::query(
        "update recordings set status = 'pending', recorder_id = null, updated_at = now()
          where id = $1 and recorder_id = $2 and status = 'starting'
            and created_at > now() - make_interval(secs => $3)",
    )
    .bind(recording_id)
    .bind(recorder_id)
    .bind(waited_for.as_secs_f64())
    .execute(db)
    .await?;
    Ok(released.rows_affected() == 1)
}

/// Lets go of a recording this recorder is shutting down under, once its files are kept: the row
/// names no recorder and reads as not heard of for a day, so the next recorder to see its job
/// claims it at once (as a take-over: the call goes on while nobody records it).
pub async fn hand_over(db: &PgPool, recording_id: RecordingId, recorder_id: &str) -> sqlx::Result<bool> {
    let released = sqlx::query(
        "update recordings set recorder_id = null, updated_at = now() - interval '1 day'
          where id = $1 and recorder_id = $2 and status in ('starting', 'recording')",
    )
    .bind(recording_id)
    .bind(recorder_id)
    .execute(db)
    .await?;
    Ok(released.rows_affected() == 1)
}

/// Records a finished file of the recording; `path` is relative to the recordings directory. A
/// participant whose account is gone meanwhile is kept by name only (a camera, whose user id is
/// no account, always is).
pub async fn add_file(
    db: &PgPool,
    recording_id: RecordingId,
    who: &Who,
    path: &str,
    file: &FinishedFile,
    recovered: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into recording_files
           (id, recording_id, peer_id, user_id, participant, path, bytes, duration_ms, codecs, sha256, recovered,
            content_type)
         values ($1, $2, $3, (select id from users where id = $4), $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(RecordingFileId::random())
    .bind(recording_id)
    .bind(&who.peer_id)
    .bind(UserId::parse(&who.user_id).ok())
    .bind(&who.display_name)
    .bind(path)
    .bind(file.bytes as i64)
    .bind(file.duration_ms as i64)
    .bind(file.codecs.iter().map(|c| c.to_string()).collect::<Vec<_>>())
    .bind(&file.sha256)
    .bind(recovered)
    .bind(file.content_type)
    .execute(db)
    .await?;
    Ok(())
}

/// Adds a participant's counters to the recording's.
pub async fn add_stats(db: &PgPool, recording_id: RecordingId, stats: &CaptureStats) -> sqlx::Result<()> {
    sqlx::query(
        "update recordings set packets = packets + $2, packets_lost = packets_lost + $3,
                keyframe_requests = keyframe_requests + $4, av_drift_ms = greatest(av_drift_ms, $5)
          where id = $1",
    )
    .bind(recording_id)
    .bind(stats.packets as i64)
    .bind(stats.packets_lost as i64)
    .bind(stats.keyframe_requests as i64)
    .bind(stats.av_drift_ms as i64)
    .execute(db)
    .await?;
    Ok(())
}

/// The paths of the recording's registered files.
pub async fn file_paths(db: &PgPool, recording_id: RecordingId) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("select path from recording_files where recording_id = $1")
        .bind(recording_id)
        .fetch_all(db)
        .await
}

/// How many files the recording has.
pub async fn file_count(db: &PgPool, recording_id: RecordingId) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from recording_files where recording_id = $1")
        .bind(recording_id)
        .fetch_one(db)
        .await
}
