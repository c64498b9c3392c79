//! The API's public keys, fetched from its JWKS endpoint and cached. A ticket naming a key id
//! the cache does not know triggers one refetch (the API rotated keys), at most once per
//! `min_refetch` so a flood of forged key ids cannot turn into a flood of fetches.

use std::time::{Duration, Instant};

use confab_common::tokens::{JwkSet, Verifier};
use tokio::sync::RwLock;

use crate::claims::TICKET_AUDIENCE;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 64 * 1024;

pub struct JwksCache {
    url: String,
    issuer: String,
    min_refetch: Duration,
    state: RwLock<Cached>,
}

#[derive(Default)]
struct Cached {
    kids: Vec<String>,
    verifier: Option<Verifier>,
    fetched_at: Option<Instant>,
}

impl JwksCache {
    pub fn new(url: &str, issuer: &str, min_refetch: Duration) -> Self {
        Self { url: url.to_owned(), issuer: issuer.to_owned(), min_refetch, state: RwLock::new(Cached::default()) }
    }

    /// A verifier that knows `kid` if the API publishes it, refetching the JWKS when allowed.
    pub async fn verifier_for(&self, kid: &str) -> Result<Verifier, String> {
        {
            let cached = self.state.read().await;
            if let Some(verifier) = cached.verifier.as_ref().filter(|_| cached.kids.iter().any(|k| k == kid)) {
                return Ok(verifier.clone());
            }
        }
        let mut cached = self.state.write().await;
        let may_fetch = cached.fetched_at.is_none_or(|at| at.elapsed() >= self.min_refetch);
        if may_fetch && !cached.kids.iter().any(|k| k == kid) {
            cached.fetched_at = Some(Instant::now());
            let jwks = self.fetch().await?;
            cached.kids = jwks.keys.iter().map(|k| k.kid.clone()).collect();
            cached.verifier = Some(Verifier::new(&jwks, &self.issuer, TICKET_AUDIENCE));
        }
        cached.verifier.clone().ok_or_else(|| "no JWKS fetched yet".to_owned())
    }

    async fn fetch(&self) -> Result<JwkSet, String> {
        let client = awc::Client::builder().timeout(Duration::from_secs(5)).finish();
        let mut res = client.get(&self.url).send().await.map_err(|e| format!("JWKS fetch failed: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("JWKS fetch answered {}", res.status()));
        }
        let body = res.body().limit(MAX_JWKS_BYTES).await.map_err(|e| format!("JWKS body: {e}"))?;
        let jwks: JwkSet = serde_json::from_slice(&body).map_err(|e| format!("JWKS is not a JWK Set: {e}"))?;
        tracing::info!(keys = jwks.keys.len(), "fetched the API's signing keys");
        Ok(jwks)
    }
}
