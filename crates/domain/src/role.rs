//! Roles: what a person may do in a room ([`RoomRole`], stored with each membership), and the role
//! a peer holds in a call ([`CallRole`], carried by join tickets and presence entries), which is a
//! person's room role or one of the services' seats. Both read and print as the lowercase strings
//! the wire formats have always used.

use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::DomainError;

/// What a person may do in one room. Ordered: owner > moderator > member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(type_name = "text", rename_all = "lowercase"))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RoomRole {
    Member,
    Moderator,
    Owner,
}

impl RoomRole {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Moderator => "moderator",
            Self::Owner => "owner",
        }
    }
}

display_as_str!(RoomRole);

impl FromStr for RoomRole {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "member" => Ok(Self::Member),
            "moderator" => Ok(Self::Moderator),
            "owner" => Ok(Self::Owner),
            _ => Err(DomainError::UnknownRole(raw.to_owned())),
        }
    }
}

/// The role a peer holds in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallRole {
    /// A member of the room, with their room role.
    Person(RoomRole),
    /// The recorder: hidden from participants, told as `recording_started` / `recording_stopped`.
    Recorder,
    /// An IP camera joined by the ingest service: seen like anyone, but not a participant.
    Camera,
    /// The media server's seat in a call it serves: hidden from participants like the recorder,
    /// told as `welcome.sfu` / `media_changed`.
    Sfu,
}

impl CallRole {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Person(role) => role.as_str(),
            Self::Recorder => "recorder",
            Self::Camera => "camera",
            Self::Sfu => "sfu",
        }
    }

    /// The services' seats: they take no place in the room, no per-user limit applies to them,
    /// they are not participants (no webhook events) and they are never resumed.
    pub const SERVICES: [Self; 3] = [Self::Recorder, Self::Camera, Self::Sfu];

    /// Whether the role is one of [`CallRole::SERVICES`].
    pub const fn is_service(self) -> bool {
        matches!(self, Self::Recorder | Self::Camera | Self::Sfu)
    }

    /// The recorder and the media server: seats no participant sees listed (in `welcome.peers`,
    /// `resync` or the API's participants), whose arrival and departure are told by messages of
    /// their own instead of `peer_joined` / `peer_left`.
    pub const fn is_hidden(self) -> bool {
        matches!(self, Self::Recorder | Self::Sfu)
    }

    /// Whether the role string of a ticket or presence entry is a service's; anything else,
    /// unknown strings included, is taken for a person, as the gateways' Lua scripts do.
    pub fn names_a_service(raw: &str) -> bool {
        raw.parse::<Self>().is_ok_and(Self::is_service)
    }

    /// Whether the role string of a ticket or presence entry is a hidden seat's.
    pub fn names_a_hidden_seat(raw: &str) -> bool {
        raw.parse::<Self>().is_ok_and(Self::is_hidden)
    }
}

display_as_str!(CallRole);

impl FromStr for CallRole {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "recorder" => Ok(Self::Recorder),
            "camera" => Ok(Self::Camera),
            "sfu" => Ok(Self::Sfu),
            person => person.parse().map(Self::Person),
        }
    }
}

impl From<RoomRole> for CallRole {
    fn from(role: RoomRole) -> Self {
        Self::Person(role)
    }
}

impl Serialize for CallRole {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CallRole {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [CallRole; 6] = [
        CallRole::Person(RoomRole::Member),
        CallRole::Person(RoomRole::Moderator),
        CallRole::Person(RoomRole::Owner),
        CallRole::Recorder,
        CallRole::Camera,
        CallRole::Sfu,
    ];

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(RoomRole::Owner > RoomRole::Moderator && RoomRole::Moderator > RoomRole::Member);
    }

    #[test]
    fn call_roles_read_and_print_as_the_strings_on_the_wire() {
        let strings: Vec<&str> = ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(strings, ["member", "moderator", "owner", "recorder", "camera", "sfu"]);
        for role in ALL {
            assert_eq!(role.to_string().parse::<CallRole>(), Ok(role));
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
            assert_eq!(serde_json::from_str::<CallRole>(&format!("\"{role}\"")).unwrap(), role);
        }
        assert_eq!(serde_json::to_string(&RoomRole::Moderator).unwrap(), "\"moderator\"");
    }

    #[test]
    fn services_are_not_room_roles() {
        assert_eq!("recorder".parse::<RoomRole>(), Err(DomainError::UnknownRole("recorder".into())));
        assert!(serde_json::from_str::<RoomRole>("\"camera\"").is_err());
        assert_eq!("Owner".parse::<CallRole>(), Err(DomainError::UnknownRole("Owner".into())));
    }

    #[test]
    fn only_recorders_cameras_and_the_media_server_are_services() {
        let services: Vec<CallRole> = ALL.into_iter().filter(|r| r.is_service()).collect();
        assert_eq!(services, CallRole::SERVICES);
        assert!(CallRole::names_a_service("camera") && CallRole::names_a_service("recorder"));
        assert!(CallRole::names_a_service("sfu"));
        assert!(!CallRole::names_a_service("member") && !CallRole::names_a_service(""));
    }

    #[test]
    fn the_recorder_and_the_media_server_are_the_hidden_seats() {
        let hidden: Vec<CallRole> = ALL.into_iter().filter(|r| r.is_hidden()).collect();
        assert_eq!(hidden, [CallRole::Recorder, CallRole::Sfu]);
        assert!(CallRole::names_a_hidden_seat("recorder") && CallRole::names_a_hidden_seat("sfu"));
        assert!(!CallRole::names_a_hidden_seat("camera") && !CallRole::names_a_hidden_seat("owner"));
    }
}
