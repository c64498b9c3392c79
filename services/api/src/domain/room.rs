//! Rooms and the validated values a room is made of.

use chrono::{DateTime, Utc};

use super::{MediaRouting, RoomId, RoomMode, UserId};
use crate::error::ApiError;

/// A room name: 1–100 characters, no control characters, trimmed.
pub struct RoomName(String);

impl RoomName {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        super::parse_name(raw, "invalid_name", "name must be 1–100 characters without control characters").map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How many people may be in a room's call at once: 2–1000 as a number; how many a room of a
/// given media and mode may have is [`RoomSettings`]' rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxParticipants(i32);

impl MaxParticipants {
    pub const DEFAULT: i32 = 8;
    /// The most any room may have (a lecture).
    pub const MAX: i32 = 1000;

    pub fn parse(raw: i64) -> Result<Self, ApiError> {
        match i32::try_from(raw) {
            Ok(n) if (2..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(ApiError::invalid("invalid_max_participants", "max_participants must be between 2 and 1000")),
        }
    }

    pub fn get(&self) -> i32 {
        self.0
    }
}

/// A request's `media`; 400 `invalid_media` for anything else.
pub fn parse_media(raw: &str) -> Result<MediaRouting, ApiError> {
    raw.parse().map_err(|_| ApiError::invalid("invalid_media", "media must be one of mesh, sfu, auto"))
}

/// A request's `mode`; 400 `invalid_mode` for anything else.
pub fn parse_mode(raw: &str) -> Result<RoomMode, ApiError> {
    raw.parse().map_err(|_| ApiError::invalid("invalid_mode", "mode must be one of meeting, lecture"))
}

/// The participant limit that applies to a room: a mesh sends every stream to every peer, so
/// it stops at 8 whatever the mode; a meeting (everyone publishes) at 50; a lecture (viewers cost
/// the publishers nothing) at 1000. The `rooms` table checks the same rule.
pub fn participant_limit(media: MediaRouting, mode: RoomMode) -> i32 {
    match (media, mode) {
        (MediaRouting::Mesh, _) => 8,
        (_, RoomMode::Meeting) => 50,
        (_, RoomMode::Lecture) => MaxParticipants::MAX,
    }
}

/// The limit that applies, in words, for the error that names it.
fn limit_reason(media: MediaRouting, mode: RoomMode) -> &'static str {
    match (media, mode) {
        (MediaRouting::Mesh, _) => "a mesh room allows at most 8",
        (_, RoomMode::Meeting) => "a meeting allows at most 50",
        (_, RoomMode::Lecture) => "a lecture allows at most 1000",
    }
}

/// A room's capacity, media and mode, which only hold together: `max_participants` never exceeds
/// [`participant_limit`] of the other two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomSettings {
    pub max_participants: MaxParticipants,
    pub media: MediaRouting,
    pub mode: RoomMode,
}

/// The settings a create or update request gives, each parsed; `None` where it gives none.
#[derive(Debug, Clone, Copy, Default)]
pub struct GivenSettings {
    pub max_participants: Option<MaxParticipants>,
    pub media: Option<MediaRouting>,
    pub mode: Option<RoomMode>,
}

impl GivenSettings {
    pub fn parse(max_participants: Option<i64>, media: Option<&str>, mode: Option<&str>) -> Result<Self, ApiError> {
        Ok(Self {
            max_participants: max_participants.map(MaxParticipants::parse).transpose()?,
            media: media.map(parse_media).transpose()?,
            mode: mode.map(parse_mode).transpose()?,
        })
    }
}

impl RoomSettings {
    /// A new room's settings; what is not given takes its default (8, `auto`, `meeting`). Over
    /// the limit is 400 `invalid_max_participants`.
    pub fn new(given: GivenSettings) -> Result<Self, ApiError> {
        let GivenSettings { max_participants: max, media, mode } = given;
        let settings = Self {
            max_participants: max.unwrap_or(MaxParticipants(MaxParticipants::DEFAULT)),
            media: media.unwrap_or_default(),
            mode: mode.unwrap_or_default(),
        };
        if let Some(reason) = settings.over_limit() {
            return Err(ApiError::invalid("invalid_max_participants", format!("max_participants: {reason}")));
        }
        Ok(settings)
    }

    /// These settings with what a change gives replaced; `max_participants` is re-checked
    /// whenever media or mode changes, and never lowered to make a change fit. A change whose
    /// own values break the rule (`media: mesh` with `max_participants: 20`) is a 400
    /// `invalid_max_participants`. One that breaks it only with the room's current values
    /// (`media: mesh` alone for a room of 20) is a 409 with the same code: the request is valid
    /// on its own, the room's state refuses it, and sending a smaller `max_participants` along
    /// makes it pass.
    pub fn change(self, given: GivenSettings) -> Result<Self, ApiError> {
        let GivenSettings { max_participants: max, media, mode } = given;
        if let Some(max) = max {
            // The values a change leaves out stand in as the ones that allow the most.
            let alone = Self {
                max_participants: max,
                media: media.unwrap_or(MediaRouting::Auto),
                mode: mode.unwrap_or(RoomMode::Lecture),
            };
            if let Some(reason) = alone.over_limit() {
                return Err(ApiError::invalid("invalid_max_participants", format!("max_participants: {reason}")));
            }
        }
        let changed = Self {
            max_participants: max.unwrap_or(self.max_participants),
            media: media.unwrap_or(self.media),
            mode: mode.unwrap_or(self.mode),
        };
        match changed.over_limit() {
            None => Ok(changed),
            Some(_) => Err(ApiError::Conflict {
                code: "invalid_max_participants",
                // A lecture's limit is the most any room may have, which parsing already held.
                message: match (changed.media, changed.mode) {
                    (MediaRouting::Mesh, _) => {
                        "the room's max_participants is too many: a mesh room allows at most 8; send a smaller one with the change"
                    }
                    _ => {
                        "the room's max_participants is too many: a meeting allows at most 50; send a smaller one with the change"
                    }
                },
            }),
        }
    }

    /// Why `max_participants` is too many for this media and mode, if it is.
    fn over_limit(&self) -> Option<&'static str> {
        (self.max_participants.get() > participant_limit(self.media, self.mode))
            .then(|| limit_reason(self.media, self.mode))
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Room {
    pub id: RoomId,
    pub name: String,
    pub owner_id: UserId,
    pub max_participants: i32,
    pub media: MediaRouting,
    pub mode: RoomMode,
    pub created_at: DateTime<Utc>,
}

impl Room {
    /// The room's settings as stored (the table holds them to the same rule).
    pub fn settings(&self) -> RoomSettings {
        RoomSettings { max_participants: MaxParticipants(self.max_participants), media: self.media, mode: self.mode }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max(n: i64) -> Option<MaxParticipants> {
        Some(MaxParticipants::parse(n).unwrap())
    }

    fn given(
        max_participants: Option<MaxParticipants>,
        media: Option<MediaRouting>,
        mode: Option<RoomMode>,
    ) -> GivenSettings {
        GivenSettings { max_participants, media, mode }
    }

    #[test]
    fn names_and_capacity_are_bounded() {
        assert_eq!(RoomName::parse("  Stand-up ").unwrap().as_str(), "Stand-up");
        assert!(RoomName::parse("").is_err());
        assert!(RoomName::parse(&"x".repeat(101)).is_err());
        assert!(MaxParticipants::parse(1).is_err());
        assert!(MaxParticipants::parse(1001).is_err());
        assert!(MaxParticipants::parse(i64::MAX).is_err());
        assert_eq!(MaxParticipants::parse(1000).unwrap().get(), 1000);
    }

    #[test]
    fn media_and_mode_read_only_their_own_lowercase_names() {
        assert_eq!(parse_media("mesh").unwrap(), MediaRouting::Mesh);
        assert_eq!(parse_media("sfu").unwrap(), MediaRouting::Sfu);
        assert_eq!(parse_media("auto").unwrap(), MediaRouting::Auto);
        assert_eq!(parse_mode("meeting").unwrap(), RoomMode::Meeting);
        assert_eq!(parse_mode("lecture").unwrap(), RoomMode::Lecture);
        for bad in ["", "Mesh", " sfu", "p2p", "lecture"] {
            assert!(matches!(parse_media(bad), Err(ApiError::Invalid { code: "invalid_media", .. })), "{bad}");
        }
        for bad in ["", "Meeting", "webinar", "auto"] {
            assert!(matches!(parse_mode(bad), Err(ApiError::Invalid { code: "invalid_mode", .. })), "{bad}");
        }
    }

    #[test]
    fn a_new_room_is_8_auto_meeting_and_its_limit_follows_media_then_mode() {
        let default = RoomSettings::new(given(None, None, None)).unwrap();
        assert_eq!(
            (default.max_participants.get(), default.media, default.mode),
            (8, MediaRouting::Auto, RoomMode::Meeting)
        );
        assert!(RoomSettings::new(given(max(50), None, None)).is_ok());
        assert!(RoomSettings::new(given(max(51), None, None)).is_err());
        assert!(RoomSettings::new(given(max(1000), Some(MediaRouting::Sfu), Some(RoomMode::Lecture))).is_ok());
        assert!(RoomSettings::new(given(max(8), Some(MediaRouting::Mesh), Some(RoomMode::Lecture))).is_ok());
        let Err(ApiError::Invalid { code, message }) =
            RoomSettings::new(given(max(9), Some(MediaRouting::Mesh), Some(RoomMode::Lecture)))
        else {
            panic!("a mesh lecture of 9")
        };
        assert_eq!(
            (code, message.as_str()),
            ("invalid_max_participants", "max_participants: a mesh room allows at most 8")
        );
    }

    #[test]
    fn a_change_that_does_not_fit_the_room_is_refused_never_fitted() {
        let lecture = RoomSettings::new(given(max(20), Some(MediaRouting::Auto), Some(RoomMode::Lecture))).unwrap();
        assert!(matches!(lecture.change(given(None, Some(MediaRouting::Mesh), None)), Err(ApiError::Conflict { .. })));
        assert!(
            matches!(lecture.change(given(None, None, Some(RoomMode::Meeting))), Ok(s) if s.max_participants.get() == 20)
        );
        assert!(
            matches!(lecture.change(given(max(8), Some(MediaRouting::Mesh), None)), Ok(s) if s.media == MediaRouting::Mesh)
        );
        assert!(matches!(
            lecture.change(given(max(20), Some(MediaRouting::Mesh), None)),
            Err(ApiError::Invalid { .. })
        ));
        assert!(matches!(lecture.change(given(max(60), None, Some(RoomMode::Meeting))), Err(ApiError::Invalid { .. })));
        let big = lecture.change(given(max(600), None, None)).unwrap();
        assert!(matches!(big.change(given(None, None, Some(RoomMode::Meeting))), Err(ApiError::Conflict { .. })));
        let mesh = RoomSettings::new(given(None, Some(MediaRouting::Mesh), None)).unwrap();
        assert!(
            matches!(mesh.change(given(max(9), None, None)), Err(ApiError::Conflict { .. })),
            "the stored media refuses"
        );
    }
}
