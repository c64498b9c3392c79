//! Removing rooms and recordings' files, with no HTTP in it: the routes of a room's owner and of
//! the admin API authorize the caller, call [`remove_room`] and map its [`RemoveRoomError`] to an
//! answer. The rows go in one transaction with the audit entry; the gateways are told and the
//! files removed only once it has committed.

use confab_storage::{Key, Storage};

use crate::control::Control;
use crate::domain::{RecordingId, RoomId, UserId};
use crate::state::AppState;
use crate::store::audit::{AuditEntry, insert_audit};
use crate::store::{recordings, rooms};

/// Why a room was not removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveRoomError {
    #[error("no such room")]
    NotFound,
    /// Its recordings were to go with it, but one is still running.
    #[error("the room's recording is running")]
    RecordingRunning,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// One removal of a room: by whom, audited as what, for which request.
pub struct RoomRemoval<'a> {
    pub room_id: RoomId,
    pub actor: UserId,
    /// The audit log's action: `room.delete` (the room's own delete) or `admin.room.delete`.
    pub action: &'a str,
    /// Delete the room's finished recordings and their files too, rather than keep them.
    pub delete_recordings: bool,
    /// The request it came from, for the audit log and the gateways' logs.
    pub request_id: &'a str,
}

/// Deletes a room, and its recordings if asked (else stops a running one, which is kept), audits
/// it, tells every gateway to end its call, and removes the deleted recordings' files.
pub async fn remove_room(state: &AppState, removal: RoomRemoval<'_>) -> Result<(), RemoveRoomError> {
    let RoomRemoval { room_id, actor, action, delete_recordings, request_id } = removal;
    let mut tx = state.db.begin().await?;
    // First, so that a recording being started in the room meanwhile is committed before we look.
    if !rooms::delete_room(&mut *tx, room_id).await? {
        return Err(RemoveRoomError::NotFound);
    }
    let deleted = if delete_recordings {
        if recordings::running_recording(&mut *tx, room_id).await?.is_some() {
            return Err(RemoveRoomError::RecordingRunning);
        }
        recordings::delete_finished_of_room(&mut *tx, room_id).await?
    } else {
        recordings::stop_running_in_room(&mut tx, room_id).await?;
        Vec::new()
    };
    let details = serde_json::json!({"delete_recordings": delete_recordings, "recordings_deleted": deleted});
    let entry = AuditEntry { actor, action, room: Some(room_id), target_user: None, request_id, details };
    insert_audit(&mut *tx, &entry).await?;
    tx.commit().await?;
    state.control.send(&Control::CloseRoom { room_id }, request_id).await;
    for recording_id in deleted {
        remove_recording_files(&state.storage, recording_id).await;
    }
    Ok(())
}

/// Removes a recording's files from storage; what cannot be removed is logged, the rows are gone
/// anyway.
pub async fn remove_recording_files(storage: &Storage, recording_id: RecordingId) {
    let prefix = Key::parse(recording_id.to_string()).expect("a uuid is a plain key");
    if let Err(e) = storage.delete_all_under(&prefix).await {
        tracing::warn!(recording.id = %recording_id, error = %e, "could not remove recording files");
    }
}
