//! IP cameras of a room: their ids, names and the credentials the ingest worker logs in with.
//! Credentials exist in plaintext only here, between a request and [`CameraCredentials::seal`];
//! their `Debug` form hides them and no view type carries them.

use confab_common::secret_box::SecretBox;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// How many cameras one room may have.
pub const MAX_CAMERAS_PER_ROOM: i64 = 8;

/// A camera name: 1–100 characters, no control characters, trimmed.
pub struct CameraName(String);

impl CameraName {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        super::parse_name(raw, "invalid_name", "name must be 1–100 characters without control characters").map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the ingest worker logs in to a camera with; sealed as this JSON in `cameras.credentials`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for CameraCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CameraCredentials(..)")
    }
}

const MAX_USERNAME_CHARS: usize = 255;
const MAX_PASSWORD_CHARS: usize = 1024;

impl CameraCredentials {
    /// A user name (may be empty) of at most 255 characters and a password of 1–1024 characters,
    /// neither with control characters (they would end up in RTSP headers). Messages never
    /// repeat the values.
    pub fn parse(username: &str, password: &str) -> Result<Self, ApiError> {
        Self::check_username(username)?;
        if password.is_empty()
            || password.chars().count() > MAX_PASSWORD_CHARS
            || password.chars().any(char::is_control)
        {
            return Err(ApiError::invalid(
                "invalid_password",
                "password must be 1–1024 characters without control characters",
            ));
        }
        Ok(Self { username: username.to_owned(), password: password.to_owned() })
    }

    /// The user name rule alone, for requests that send one without a password.
    pub fn check_username(username: &str) -> Result<(), ApiError> {
        if username.chars().count() > MAX_USERNAME_CHARS || username.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "invalid_username",
                "username must be at most 255 characters without control characters",
            ));
        }
        Ok(())
    }

    pub fn seal(&self, key: &SecretBox) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("two strings serialize");
        key.seal(&json)
    }

    /// The credentials in `sealed`; `None` when they cannot be opened with `key` (another key,
    /// or damaged).
    pub fn open(sealed: &[u8], key: &SecretBox) -> Option<Self> {
        let json = key.open(sealed).ok()?;
        serde_json::from_slice(&json).ok()
    }
}

/// What the ingest worker last reported about a camera (`camera_status.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum CameraState {
    /// Not picked up by a worker yet, or not being pulled.
    Idle,
    Connecting,
    Connected,
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn names_are_bounded_and_printable() {
        assert_eq!(CameraName::parse("  Door ").unwrap().as_str(), "Door");
        assert!(CameraName::parse(" ").is_err());
        assert!(CameraName::parse(&"é".repeat(100)).is_ok());
        assert!(CameraName::parse(&"é".repeat(101)).is_err());
        assert!(CameraName::parse("a\u{7}b").is_err());
    }

    #[test]
    fn credentials_are_checked_without_echoing_them() {
        assert!(CameraCredentials::parse("", "pw").is_ok());
        for (user, password) in [("admin", ""), ("ad\rmin", "pw"), ("admin", "pw\r\nX-Injected: 1")] {
            let err = CameraCredentials::parse(user, password).unwrap_err().to_string();
            assert!(!err.contains("admin") && !err.contains("pw"), "{err}");
        }
        assert!(CameraCredentials::parse(&"u".repeat(256), "pw").is_err());
        assert!(CameraCredentials::parse("u", &"p".repeat(1025)).is_err());
        assert_eq!(format!("{:?}", CameraCredentials::parse("admin", "hunter2").unwrap()), "CameraCredentials(..)");
    }

    #[test]
    fn sealed_credentials_open_with_the_same_key_only() {
        let key = SecretBox::from_base64_key(KEY).unwrap();
        let credentials = CameraCredentials::parse("admin", "hunter2").unwrap();
        let sealed = credentials.seal(&key);
        assert_eq!(CameraCredentials::open(&sealed, &key), Some(credentials));
        let other = SecretBox::from_base64_key("3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhs=").unwrap();
        assert_eq!(CameraCredentials::open(&sealed, &other), None);
    }
}
