//! How a room's call carries media ([`MediaRouting`]) and who may send it ([`RoomMode`]), as the
//! owner sets them. Read and printed as the lowercase strings the API and tickets use.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Whether a call's media goes peer to peer or through the media server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(type_name = "text", rename_all = "lowercase"))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MediaRouting {
    /// Every browser sends to every other: for deployments without a media server.
    Mesh,
    /// Every browser sends once, to the media server.
    Sfu,
    /// Peer to peer for two, through the media server from the third.
    #[default]
    Auto,
}

/// Who may send media in a room's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(type_name = "text", rename_all = "lowercase"))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RoomMode {
    /// Everyone.
    #[default]
    Meeting,
    /// The owner and moderators, and whoever a moderator lets speak; everyone else watches.
    Lecture,
}

impl MediaRouting {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Mesh => "mesh",
            Self::Sfu => "sfu",
            Self::Auto => "auto",
        }
    }
}

impl RoomMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Meeting => "meeting",
            Self::Lecture => "lecture",
        }
    }
}

display_as_str!(MediaRouting, RoomMode);

impl FromStr for MediaRouting {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "mesh" => Ok(Self::Mesh),
            "sfu" => Ok(Self::Sfu),
            "auto" => Ok(Self::Auto),
            _ => Err(DomainError::UnknownSetting("media")),
        }
    }
}

impl FromStr for RoomMode {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "meeting" => Ok(Self::Meeting),
            "lecture" => Ok(Self::Lecture),
            _ => Err(DomainError::UnknownSetting("mode")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_and_print_as_their_wire_names() {
        for routing in [MediaRouting::Mesh, MediaRouting::Sfu, MediaRouting::Auto] {
            assert_eq!(routing.as_str().parse::<MediaRouting>(), Ok(routing));
            assert_eq!(serde_json::to_string(&routing).unwrap(), format!("\"{routing}\""));
        }
        for mode in [RoomMode::Meeting, RoomMode::Lecture] {
            assert_eq!(mode.as_str().parse::<RoomMode>(), Ok(mode));
            assert_eq!(serde_json::to_string(&mode).unwrap(), format!("\"{mode}\""));
        }
        assert_eq!("Mesh".parse::<MediaRouting>(), Err(DomainError::UnknownSetting("media")));
        assert_eq!("".parse::<RoomMode>(), Err(DomainError::UnknownSetting("mode")));
        assert_eq!((MediaRouting::default(), RoomMode::default()), (MediaRouting::Auto, RoomMode::Meeting));
    }
}
