//! Where a recording is in its life (docs/operations.md, "Failure behaviour": statuses and reasons).

use serde::{Deserialize, Serialize};

/// `pending → starting → recording → finalizing → ready | partial | failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum RecordingStatus {
    /// Queued; no recorder has taken it yet.
    Pending,
    /// A recorder took it and is joining the call.
    Starting,
    Recording,
    /// Stopped; the recorder is closing the files.
    Finalizing,
    Ready,
    /// Some media is missing (a recorder died, a disk filled); `reason` says why.
    Partial,
    Failed,
}

impl RecordingStatus {
    /// Still capturing: a room has at most one recording in these states.
    pub fn is_running(self) -> bool {
        matches!(self, Self::Pending | Self::Starting | Self::Recording)
    }

    /// Done: nothing will change it any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Ready | Self::Partial | Self::Failed)
    }
}
