//! Where a recording is in its life (docs/operations.md, "Failure behaviour": statuses and
//! reasons). The API creates and stops recordings, the recorders move them along; both name the
//! states with this one type, stored as the same strings (`recordings.status`).

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// `pending → starting → recording → finalizing → ready | partial | failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(type_name = "text", rename_all = "lowercase"))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    pub const ALL: [Self; 7] =
        [Self::Pending, Self::Starting, Self::Recording, Self::Finalizing, Self::Ready, Self::Partial, Self::Failed];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Starting => "starting",
            Self::Recording => "recording",
            Self::Finalizing => "finalizing",
            Self::Ready => "ready",
            Self::Partial => "partial",
            Self::Failed => "failed",
        }
    }

    /// A recorder holds it and captures (or is about to).
    pub fn is_capturing(self) -> bool {
        matches!(self, Self::Starting | Self::Recording)
    }
}

display_as_str!(RecordingStatus);

impl FromStr for RecordingStatus {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == raw)
            .ok_or_else(|| DomainError::UnknownRecordingStatus(raw.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_and_print_as_the_strings_stored_and_sent() {
        for status in RecordingStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
            assert_eq!(serde_json::to_string(&status).unwrap(), format!("\"{status}\""));
        }
        assert_eq!("Ready".parse::<RecordingStatus>(), Err(DomainError::UnknownRecordingStatus("Ready".into())));
    }
}
