//! Peers: the connections in a room's call, named by the id their gateway gave them.

use crate::error::ApiError;

/// A peer id as the gateways spell them: 1 to 64 characters of the URL-safe base64 alphabet
/// (`A`–`Z`, `a`–`z`, `0`–`9`, `-`, `_`). The API description states the same rule
/// (`openapi::peer_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerId(String);

impl PeerId {
    pub const MAX_LEN: usize = 64;

    /// 400 `invalid_peer_id` for anything that cannot be a peer id.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let spelled = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.chars().all(spelled) {
            return Err(ApiError::invalid(
                "invalid_peer_id",
                "peer_id must be 1–64 characters of A–Z, a–z, 0–9, - and _",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ids_are_url_safe_base64_of_at_most_64_characters() {
        for good in ["p-7", "Zm9v_YmFy-", "a", &"x".repeat(64)] {
            assert_eq!(PeerId::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", " p1", "p1 ", "p/1", "p:1", "../x", "pé", "p\u{0}", &"x".repeat(65), "*"] {
            assert!(PeerId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
