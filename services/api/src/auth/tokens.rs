//! Access tokens and join tickets (short-lived EdDSA JWTs) and opaque random secrets
//! (refresh and invite tokens).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use confab_common::tokens::{LEEWAY_SECS, SigningKeys, TokenError, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::{Role, User, UserId};

/// The `aud` of access tokens; gateway tickets use another audience, so neither works as the other.
pub const ACCESS_AUDIENCE: &str = "confab-api";

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: UserId,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub role: Role,
    /// The user's `token_version` at issue time.
    pub ver: i32,
    /// The refresh-token family (the login) the token was issued in: when reuse detection
    /// revokes the family, its access tokens die with it.
    pub fam: Uuid,
}

/// How many verified tokens are remembered; the cache is emptied when it fills.
const VERIFIED_CACHE_ENTRIES: usize = 10_000;

/// Signs and checks access tokens.
pub struct AccessTokens {
    keys: SigningKeys,
    verifier: Verifier,
    issuer: String,
    ttl: Duration,
    /// Claims of tokens whose signature already checked out, keyed by the token's SHA-256. A
    /// signature check costs ~50 µs, a quarter of a simple request; a hit costs ~1 µs. Expiry is
    /// still checked on every hit.
    verified: Mutex<HashMap<[u8; 32], AccessClaims>>,
}

impl AccessTokens {
    pub fn new(keys: SigningKeys, issuer: &str, ttl: Duration) -> Self {
        let verifier = Verifier::new(&keys.jwks(), issuer, ACCESS_AUDIENCE);
        Self { keys, verifier, issuer: issuer.to_owned(), ttl, verified: Mutex::new(HashMap::new()) }
    }

    pub fn issue(&self, user: &User, family: Uuid) -> Result<String, TokenError> {
        let now = Utc::now().timestamp();
        self.keys.sign(&AccessClaims {
            iss: self.issuer.clone(),
            aud: ACCESS_AUDIENCE.to_owned(),
            sub: user.id,
            exp: now + self.ttl.as_secs() as i64,
            iat: now,
            jti: Uuid::new_v4().to_string(),
            role: user.role,
            ver: user.token_version,
            fam: family,
        })
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Utc::now().timestamp();
        if let Some(claims) = self.cache().get(&key).filter(|c| c.exp + LEEWAY_SECS as i64 >= now) {
            return Ok(claims.clone());
        }
        let claims: AccessClaims = self.verifier.verify(token)?;
        let mut cache = self.cache();
        if cache.len() >= VERIFIED_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, claims.clone());
        Ok(claims)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], AccessClaims>> {
        // A panic while holding the lock leaves only a cache behind: keep using it.
        self.verified.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn keys(&self) -> &SigningKeys {
        &self.keys
    }
}

/// A fresh opaque secret (refresh tokens, invite tokens): 256 random bits, base64url.
/// Only its hash is stored.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a secret from [`new_secret`].
pub fn hash_secret(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Role, User, UserId};

    fn user() -> User {
        User {
            id: UserId::random(),
            email: "a@example.org".into(),
            display_name: "A".into(),
            role: Role::User,
            disabled_at: None,
            token_version: 0,
            created_at: Utc::now(),
        }
    }

    fn tokens(ttl: Duration) -> AccessTokens {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        AccessTokens::new(SigningKeys::from_signing_keys(&[key]).unwrap(), "confab", ttl)
    }

    #[test]
    fn a_cached_token_still_expires() {
        let tokens = tokens(Duration::from_secs(60));
        let past = Utc::now().timestamp() - LEEWAY_SECS as i64 - 60;
        let user = user();
        let expired = AccessClaims {
            iss: "confab".into(),
            aud: ACCESS_AUDIENCE.into(),
            sub: user.id,
            exp: past,
            iat: past - 60,
            jti: "j".into(),
            role: Role::User,
            ver: 0,
            fam: Uuid::new_v4(),
        };
        let token = tokens.keys.sign(&expired).unwrap();
        // As if it had been verified and cached while it was still valid.
        tokens.cache().insert(Sha256::digest(token.as_bytes()).into(), expired);
        assert!(tokens.verify(&token).is_err(), "an expired cache entry is not served");
    }

    #[test]
    fn a_tampered_token_never_hits_the_cache_of_the_original() {
        let tokens = tokens(Duration::from_secs(60));
        let token = tokens.issue(&user(), Uuid::new_v4()).unwrap();
        assert!(tokens.verify(&token).is_ok());
        let mut tampered = token.clone();
        tampered.push('A');
        assert!(tokens.verify(&tampered).is_err());
    }

    #[test]
    fn the_cache_is_bounded() {
        let tokens = tokens(Duration::from_secs(60));
        for _ in 0..VERIFIED_CACHE_ENTRIES + 5 {
            tokens.verify(&tokens.issue(&user(), Uuid::new_v4()).unwrap()).unwrap();
        }
        assert!(tokens.cache().len() <= VERIFIED_CACHE_ENTRIES);
    }
}
