//! The ICE servers handed to each peer in `welcome`: STUN URLs as configured, and TURN with
//! ephemeral credentials in the form coturn's `use-auth-secret` (TURN REST API) expects —
//! username `expiry:user_id`, credential base64(HMAC-SHA1(secret, username)) — so no long-lived
//! TURN password ever reaches a browser.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use confab_protocol::signal::IceServer;
use ring::hmac;

#[derive(Debug, Clone, Default)]
pub struct IceConfig {
    pub stun_urls: Vec<String>,
    pub turn_urls: Vec<String>,
    pub turn_secret: Option<String>,
    pub turn_ttl_secs: i64,
}

impl IceConfig {
    /// The servers for `user_id` at unix time `now`.
    pub fn servers_for(&self, user_id: &str, now: i64) -> Vec<IceServer> {
        let mut servers = Vec::new();
        if !self.stun_urls.is_empty() {
            servers.push(IceServer { urls: self.stun_urls.clone(), ..Default::default() });
        }
        if let (false, Some(secret)) = (self.turn_urls.is_empty(), &self.turn_secret) {
            let username = format!("{}:{user_id}", now + self.turn_ttl_secs);
            let credential = turn_credential(secret, &username);
            servers.push(IceServer { urls: self.turn_urls.clone(), username, credential });
        }
        servers
    }
}

/// HMAC-SHA1 because coturn's `use-auth-secret` defines it so (RFC 5389 long-term credentials).
fn turn_credential(secret: &str, username: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    STANDARD.encode(hmac::sign(&key, username.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_credentials_follow_coturn_use_auth_secret() {
        let config = IceConfig {
            stun_urls: vec!["stun:stun.example.org:3478".into()],
            turn_urls: vec!["turn:turn.example.org:3478?transport=udp".into()],
            turn_secret: Some("turn-secret".into()),
            turn_ttl_secs: 3600,
        };
        let servers = config.servers_for("6f1c", 1_794_996_400);
        assert_eq!(servers[0].urls, ["stun:stun.example.org:3478"]);
        assert_eq!(servers[1].username, "1795000000:6f1c");
        // base64(HMAC-SHA1("turn-secret", "1795000000:6f1c")), computed independently.
        assert_eq!(servers[1].credential, "UElGM9FHv/CXTr/11pFAcFsRcgc=");
    }

    #[test]
    fn no_turn_without_a_secret() {
        let config = IceConfig { turn_urls: vec!["turn:t".into()], ..Default::default() };
        assert!(config.servers_for("u", 0).is_empty());
    }
}
