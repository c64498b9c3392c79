//! Rooms, the roles people hold in them, and the validated values a room is made of.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::UserId;
use crate::error::ApiError;

/// The id of a room: a random UUIDv4 (122 random bits), so ids cannot be guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(transparent)]
#[serde(transparent)]
pub struct RoomId(pub Uuid);

impl RoomId {
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// Parses an id from a path. Anything that is not a UUID names no room: 404, never 400 or 500.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        Uuid::parse_str(raw).map(Self).map_err(|_| ApiError::NotFound)
    }
}

impl std::fmt::Display for RoomId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a person may do in one room. Ordered: owner > moderator > member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum RoomRole {
    Member,
    Moderator,
    Owner,
}

impl RoomRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Moderator => "moderator",
            Self::Owner => "owner",
        }
    }
}

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

/// How many people may be in a room's call at once: 2–50.
pub struct MaxParticipants(i32);

impl MaxParticipants {
    pub const DEFAULT: i32 = 8;

    pub fn parse(raw: i64) -> Result<Self, ApiError> {
        match i32::try_from(raw) {
            Ok(n) if (2..=50).contains(&n) => Ok(Self(n)),
            _ => Err(ApiError::invalid("invalid_max_participants", "max_participants must be between 2 and 50")),
        }
    }

    pub fn get(&self) -> i32 {
        self.0
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Room {
    pub id: RoomId,
    pub name: String,
    pub owner_id: UserId,
    pub max_participants: i32,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_that_are_not_uuids_are_not_found() {
        for raw in ["", "1", "../etc", "' or 1=1", "00000000-0000-0000-0000-00000000000g"] {
            assert!(matches!(RoomId::parse(raw), Err(ApiError::NotFound)), "{raw}");
        }
    }

    #[test]
    fn names_and_capacity_are_bounded() {
        assert_eq!(RoomName::parse("  Stand-up ").unwrap().as_str(), "Stand-up");
        assert!(RoomName::parse("").is_err());
        assert!(RoomName::parse(&"x".repeat(101)).is_err());
        assert!(MaxParticipants::parse(1).is_err());
        assert!(MaxParticipants::parse(51).is_err());
        assert!(MaxParticipants::parse(i64::MAX).is_err());
        assert_eq!(MaxParticipants::parse(50).unwrap().get(), 50);
    }

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(RoomRole::Owner > RoomRole::Moderator && RoomRole::Moderator > RoomRole::Member);
    }
}
