//! What a join ticket says: everything a gateway needs to admit a peer without a database. The
//! API issues tickets for people, the recorder and the camera ingest their own; all build the
//! claims with [`TicketClaims::issue`]. Signing and verifying is `confab-tickets`' part.
//!
//! A participant's ticket also carries the room's media settings, so the gateway can tell when a
//! call needs the media server without a database; a ticket without them (issued before they
//! existed, or by a service for itself) means a mesh meeting.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{CallRole, MediaRouting, RoomMode};

/// The `aud` of join tickets; access tokens (`confab-api`) never pass as tickets.
pub const TICKET_AUDIENCE: &str = "confab-gateway";

/// A ticket lives at most this long (`exp - iat`).
pub const MAX_TICKET_TTL_SECS: i64 = 60;

/// The `room_role` of the recorder's own tickets, for code that still holds roles as text.
pub const RECORDER_ROLE: &str = CallRole::Recorder.as_str();

/// The `room_role` of a camera's tickets, for code that still holds roles as text.
pub const CAMERA_ROLE: &str = CallRole::Camera.as_str();

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
    /// A [`CallRole`]: `owner`, `moderator`, `member`, or `recorder` / `camera` for the services'
    /// own tickets.
    pub room_role: String,
    pub max_participants: u32,
    /// Recorder tickets only: the recording the recorder joins for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_id: Option<String>,
    /// Participants' tickets: how the room's call carries media; read it with
    /// [`TicketClaims::media`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaRouting>,
    /// Participants' tickets: who may publish in the room; read it with [`TicketClaims::mode`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RoomMode>,
}

/// Who a ticket lets into which room's call.
#[derive(Debug, Clone)]
pub struct TicketHolder {
    /// A user id, or a service's own name for itself (`camera-{id}`).
    pub user_id: String,
    pub display_name: String,
    pub room_id: String,
    pub role: CallRole,
    /// The room's capacity; services take no place, so theirs is 0.
    pub max_participants: u32,
    /// Recorder tickets only.
    pub recording_id: Option<String>,
}

impl TicketClaims {
    /// The claims of a fresh single-use ticket for `holder`, issued by `issuer` at `now` (Unix
    /// seconds) and valid for the longest time tickets may live.
    pub fn issue(issuer: &str, holder: TicketHolder, now: i64) -> Self {
        Self {
            iss: issuer.to_owned(),
            aud: TICKET_AUDIENCE.to_owned(),
            sub: holder.user_id,
            exp: now + MAX_TICKET_TTL_SECS,
            iat: now,
            jti: Uuid::new_v4().simple().to_string(),
            room_id: holder.room_id,
            display_name: holder.display_name,
            room_role: holder.role.as_str().to_owned(),
            max_participants: holder.max_participants,
            recording_id: holder.recording_id,
            media: None,
            mode: None,
        }
    }

    /// The same claims carrying the room's media settings, as a participant's ticket does.
    pub fn with_room_settings(self, media: MediaRouting, mode: RoomMode) -> Self {
        Self { media: Some(media), mode: Some(mode), ..self }
    }

    /// How the room's call carries media; mesh when the ticket does not say.
    pub fn media(&self) -> MediaRouting {
        self.media.unwrap_or(MediaRouting::Mesh)
    }

    /// Who may publish in the room; everyone (a meeting) when the ticket does not say.
    pub fn mode(&self) -> RoomMode {
        self.mode.unwrap_or(RoomMode::Meeting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RoomRole;

    fn holder(role: CallRole) -> TicketHolder {
        TicketHolder {
            user_id: "u1".into(),
            display_name: "Ann".into(),
            room_id: "r1".into(),
            role,
            max_participants: 8,
            recording_id: None,
        }
    }

    #[test]
    fn issued_claims_are_for_the_gateway_and_live_the_longest_a_ticket_may() {
        let claims = TicketClaims::issue("confab", holder(RoomRole::Moderator.into()), 1_000);
        assert_eq!((claims.aud.as_str(), claims.iat, claims.exp), (TICKET_AUDIENCE, 1_000, 1_060));
        assert_eq!((claims.sub.as_str(), claims.room_role.as_str()), ("u1", "moderator"));
        assert_eq!(claims.room_role.parse(), Ok(CallRole::Person(RoomRole::Moderator)));
        let json = serde_json::to_value(&claims).unwrap();
        assert!(json.get("recording_id").is_none(), "absent, not null: {json}");
    }

    #[test]
    fn room_settings_travel_in_the_ticket_and_their_absence_means_a_mesh_meeting() {
        let plain = TicketClaims::issue("confab", holder(RoomRole::Member.into()), 0);
        let json = serde_json::to_value(&plain).unwrap();
        assert!(json.get("media").is_none() && json.get("mode").is_none(), "absent, not null: {json}");
        assert_eq!((plain.media(), plain.mode()), (MediaRouting::Mesh, RoomMode::Meeting));

        let lecture = plain.with_room_settings(MediaRouting::Sfu, RoomMode::Lecture);
        let json = serde_json::to_value(&lecture).unwrap();
        assert_eq!((json["media"].as_str(), json["mode"].as_str()), (Some("sfu"), Some("lecture")));
        let read: TicketClaims = serde_json::from_value(json).unwrap();
        assert_eq!((read.media(), read.mode()), (MediaRouting::Sfu, RoomMode::Lecture));

        let mut unknown = serde_json::to_value(&read).unwrap();
        unknown["media"] = "carrier-pigeon".into();
        assert!(serde_json::from_value::<TicketClaims>(unknown).is_err(), "a value no API issues is refused");
    }

    #[test]
    fn every_ticket_has_its_own_id() {
        let a = TicketClaims::issue("confab", holder(CallRole::Camera), 0);
        let b = TicketClaims::issue("confab", holder(CallRole::Camera), 0);
        assert_ne!(a.jti, b.jti);
        assert_eq!(a.jti.len(), 32);
    }
}
