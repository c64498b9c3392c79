//! What a ticket says: everything the gateway needs to admit a peer without a database.

use serde::{Deserialize, Serialize};

/// The `aud` of join tickets; access tokens (`confab-api`) never pass as tickets.
pub const TICKET_AUDIENCE: &str = "confab-gateway";

/// The `room_role` of the recorder's own tickets; gateways hide such peers from participants.
pub const RECORDER_ROLE: &str = "recorder";

/// The `room_role` of a camera's tickets (signed by the ingest service): a visible, send-only
/// peer that takes no place in the room and is not a participant.
pub const CAMERA_ROLE: &str = "camera";

/// A ticket lives at most this long (`exp - iat`).
pub const MAX_TICKET_TTL_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    /// Unique per ticket; recorded in Redis on first use.
    pub jti: String,
    pub room_id: String,
    pub display_name: String,
    /// `owner`, `moderator`, `member` (or `recorder` / `camera` for the services' own tickets).
    pub room_role: String,
    pub max_participants: u32,
    /// Recorder tickets only: the recording the recorder joins for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_id: Option<String>,
}
