//! Rooms and the validated values a room is made of.

use chrono::{DateTime, Utc};

use super::{RoomId, UserId};
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
    fn names_and_capacity_are_bounded() {
        assert_eq!(RoomName::parse("  Stand-up ").unwrap().as_str(), "Stand-up");
        assert!(RoomName::parse("").is_err());
        assert!(RoomName::parse(&"x".repeat(101)).is_err());
        assert!(MaxParticipants::parse(1).is_err());
        assert!(MaxParticipants::parse(51).is_err());
        assert!(MaxParticipants::parse(i64::MAX).is_err());
        assert_eq!(MaxParticipants::parse(50).unwrap().get(), 50);
    }
}
