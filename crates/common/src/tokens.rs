//! Ed25519 signing keys, the JWKS that publishes them, and strict JWT verification.
//!
//! The API signs with the newest key of its key file; every service verifies with the public
//! keys alone (from the JWKS), so no service but the API needs the private key or the database.
//! Verification allows only EdDSA, selects the key by `kid` from a fixed map (never a lookup by
//! the `kid` text), requires `iss`, `aud`, `exp` and `sub`, and allows at most 30 s of leeway.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Clock-skew allowance when checking `exp` (docs/protocol.md, tokens): 30 s.
pub const LEEWAY_SECS: u64 = 30;

/// Why a key file or a token was refused. Token errors carry no detail for the caller on purpose.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the key file holds no PKCS#8 Ed25519 private key")]
    NoKeys,
    #[error("key {index} in the key file is not a PKCS#8 Ed25519 private key")]
    BadKey { index: usize },
    #[error("token rejected: {0}")]
    Rejected(String),
    #[error("signing failed: {0}")]
    Signing(String),
}

/// One public key as published in the JWKS (RFC 8037 OKP key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

/// `GET /.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// The API's private keys: all are published, the newest (last in the file) signs.
pub struct SigningKeys {
    keys: Vec<(String, EncodingKey, Jwk)>,
}

impl SigningKeys {
    /// Parses one or more PEM `PRIVATE KEY` blocks (PKCS#8 Ed25519, as `openssl genpkey
    /// -algorithm ed25519` writes). Rotate by appending a new key; drop the oldest once every
    /// token it signed has expired.
    pub fn from_pem(pem: &str) -> Result<Self, TokenError> {
        let mut keys = Vec::new();
        for (index, block) in pem_blocks(pem).enumerate() {
            let key = SigningKey::from_pkcs8_pem(block).map_err(|_| TokenError::BadKey { index })?;
            keys.push(Self::entry(&key)?);
        }
        if keys.is_empty() {
            return Err(TokenError::NoKeys);
        }
        Ok(Self { keys })
    }

    /// Wraps an in-memory key (tests, tools).
    pub fn from_signing_keys(keys: &[SigningKey]) -> Result<Self, TokenError> {
        let keys = keys.iter().map(Self::entry).collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(TokenError::NoKeys);
        }
        Ok(Self { keys })
    }

    fn entry(key: &SigningKey) -> Result<(String, EncodingKey, Jwk), TokenError> {
        let der = key.to_pkcs8_der().map_err(|e| TokenError::Signing(e.to_string()))?;
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
        let kid = thumbprint(&x);
        let jwk = Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x,
            kid: kid.clone(),
            alg: Some("EdDSA".into()),
            use_: Some("sig".into()),
        };
        Ok((kid, EncodingKey::from_ed_der(der.as_bytes()), jwk))
    }

    /// Signs `claims` with the newest key, naming it in `kid`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, TokenError> {
        let (kid, key, _) = self.keys.last().expect("at least one key, checked on construction");
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, claims, key).map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// The public half of every key, for the JWKS endpoint.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.keys.iter().map(|(_, _, jwk)| jwk.clone()).collect() }
    }
}

/// Verifies tokens against a fixed set of public keys for one issuer and one audience.
#[derive(Clone)]
pub struct Verifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl Verifier {
    /// Keys of other types than OKP/Ed25519 are ignored: they can never verify an EdDSA token.
    pub fn new(jwks: &JwkSet, issuer: &str, audience: &str) -> Self {
        let keys = jwks
            .keys
            .iter()
            .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
            .filter_map(|k| Some((k.kid.clone(), DecodingKey::from_ed_components(&k.x).ok()?)))
            .collect();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Self { keys, validation }
    }

    /// Returns the claims of a valid token, or a rejection.
    pub fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Rejected(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Rejected("algorithm not allowed".into()));
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or_else(|| TokenError::Rejected("unknown key id".into()))?;
        jsonwebtoken::decode::<T>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError::Rejected(e.to_string()))
    }
}

/// RFC 7638 JWK thumbprint of an Ed25519 public key: a stable, content-derived key id.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn pem_blocks(pem: &str) -> impl Iterator<Item = &str> {
    const END: &str = "-----END PRIVATE KEY-----";
    pem.split_inclusive(END).filter(|b| b.contains(END)).map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;

    #[derive(Serialize, Deserialize)]
    struct Claims {
        iss: String,
        aud: String,
        sub: String,
        exp: i64,
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn claims() -> Claims {
        Claims {
            iss: "confab".into(),
            aud: "confab-api".into(),
            sub: "u1".into(),
            exp: chrono::Utc::now().timestamp() + 60,
        }
    }

    #[test]
    fn every_key_in_the_file_is_published_and_the_last_one_signs() {
        let pem = format!(
            "{}\n{}",
            key(1).to_pkcs8_pem(LineEnding::LF).unwrap().as_str(),
            key(2).to_pkcs8_pem(LineEnding::LF).unwrap().as_str()
        );
        let keys = SigningKeys::from_pem(&pem).unwrap();
        let jwks = keys.jwks();
        assert_eq!(jwks.keys.len(), 2);
        let token = keys.sign(&claims()).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(jwks.keys[1].kid.as_str()));
        let verified: Claims = Verifier::new(&jwks, "confab", "confab-api").verify(&token).unwrap();
        assert_eq!(verified.sub, "u1");
    }

    #[test]
    fn a_key_file_without_keys_is_refused() {
        assert!(matches!(SigningKeys::from_pem("nothing here"), Err(TokenError::NoKeys)));
        let garbage = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(matches!(SigningKeys::from_pem(garbage), Err(TokenError::BadKey { index: 0 })));
    }

    #[test]
    fn tokens_from_a_key_outside_the_set_are_rejected() {
        let trusted = SigningKeys::from_signing_keys(&[key(1)]).unwrap();
        let rogue = SigningKeys::from_signing_keys(&[key(9)]).unwrap();
        let token = rogue.sign(&claims()).unwrap();
        let verifier = Verifier::new(&trusted.jwks(), "confab", "confab-api");
        assert!(verifier.verify::<Claims>(&token).is_err());
    }

    #[test]
    fn thumbprint_matches_rfc_8037_example() {
        // RFC 8037 appendix A.3.
        assert_eq!(
            thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
