//! Email addresses, passwords and display names, parsed from untrusted input.

use crate::error::ApiError;

/// A normalized email: trimmed and lower-cased, so `Ann@X.org ` and `ann@x.org` are one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub const MAX_CHARS: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let email = raw.trim().to_lowercase();
        let bad = |why: &str| ApiError::invalid("invalid_email", format!("email {why}"));
        if email.chars().count() > Self::MAX_CHARS {
            return Err(bad("is longer than 254 characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(bad("must look like name@example.org"));
        };
        let well_formed = !local.is_empty()
            && local.chars().count() <= 64
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if !well_formed {
            return Err(bad("must look like name@example.org"));
        }
        Ok(Self(email))
    }

    /// Normalizes without validating: for login, where a malformed address simply matches no one.
    pub fn normalize(raw: &str) -> String {
        raw.trim().to_lowercase()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password of 8–1024 characters. Any Unicode, no composition rules, never truncated.
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 1024;

    pub fn parse(raw: String) -> Result<Self, ApiError> {
        let count = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&count) {
            return Err(ApiError::invalid(
                "invalid_password",
                format!("password must be {}–{} characters long", Self::MIN_CHARS, Self::MAX_CHARS),
            ));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A display name: 1–100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        super::parse_name(
            raw,
            "invalid_display_name",
            "display_name must be 1–100 characters without control characters",
        )
        .map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(Email::parse("  Ann@Example.ORG ").unwrap().as_str(), "ann@example.org");
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for bad in ["", "ann", "ann@", "@x.org", "ann@x", "a n@x.org", "ann@x.org.", "a@b@c.org", "a\u{0}@x.org"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Email::parse(&format!("{}@x.org", "a".repeat(65))).is_err());
        assert!(Email::parse(&format!("a@{}.org", "x".repeat(250))).is_err());
    }

    #[test]
    fn passwords_are_bounded_in_characters_as_the_api_description_says() {
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
        assert!(Password::parse("ééééé".into()).is_err(), "5 characters, however many bytes");
        assert!(Password::parse("é".repeat(1024)).is_ok());
        assert!(Password::parse("x".repeat(1025)).is_err());
    }

    #[test]
    fn passwords_never_show_in_debug_output() {
        let p = Password::parse("hunter2hunter2".into()).unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Ann  ").unwrap().as_str(), "Ann");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(101)).is_err());
        assert!(DisplayName::parse("a\nb").is_err());
    }
}
