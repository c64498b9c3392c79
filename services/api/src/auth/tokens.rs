//! Access tokens and join tickets (short-lived EdDSA JWTs) and opaque random secrets
//! (refresh and invite tokens).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use confab_common::tokens::{SigningKeys, TokenError, Verifier};
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
}

/// Signs and checks access tokens.
pub struct AccessTokens {
    keys: SigningKeys,
    verifier: Verifier,
    issuer: String,
    ttl: Duration,
}

impl AccessTokens {
    pub fn new(keys: SigningKeys, issuer: &str, ttl: Duration) -> Self {
        let verifier = Verifier::new(&keys.jwks(), issuer, ACCESS_AUDIENCE);
        Self { keys, verifier, issuer: issuer.to_owned(), ttl }
    }

    pub fn issue(&self, user: &User) -> Result<String, TokenError> {
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
        })
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.verifier.verify(token)
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
