//! The API's public keys, fetched from its JWKS endpoint and cached. A ticket naming a key id
//! the cache does not know triggers one refetch (the API rotated keys), at most once per
//! `min_refetch` after a successful fetch, so a flood of forged key ids cannot turn into a flood
//! of fetches. A failed fetch is different: the keys are still missing or stale, so the next
//! attempt comes after a short backoff (100 ms doubling to 5 s), not after `min_refetch`; a
//! service that starts before the API can verify tickets as soon as the API answers.

use std::time::{Duration, Instant};

use confab_common::tokens::{JwkSet, Verifier};
use confab_domain::ticket::TICKET_AUDIENCE;
use tokio::sync::RwLock;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 64 * 1024;

/// Wait after the first failed fetch; doubles with each failure in a row up to `MAX_RETRY_WAIT`.
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(100);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);

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
    /// The last successful fetch.
    fetched_at: Option<Instant>,
    /// Failed fetches since the last success, and when the next attempt is allowed.
    failures: u32,
    retry_at: Option<Instant>,
}

impl Cached {
    fn may_fetch_for(&self, kid: &str, min_refetch: Duration, now: Instant) -> bool {
        let known = self.kids.iter().any(|k| k == kid);
        let backed_off = self.retry_at.is_none_or(|at| now >= at);
        let refetch_due = self.fetched_at.is_none_or(|at| now.duration_since(at) >= min_refetch);
        !known && backed_off && refetch_due
    }
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
        if cached.may_fetch_for(kid, self.min_refetch, Instant::now())
            && let Err(e) = self.refresh(&mut cached).await
            && cached.verifier.is_none()
        {
            return Err(e);
        }
        cached.verifier.clone().ok_or_else(|| "the API's signing keys have not been fetched yet".to_owned())
    }

    /// Whether keys have been fetched, i.e. tickets can be verified.
    pub async fn has_keys(&self) -> bool {
        self.state.read().await.verifier.is_some()
    }

    /// Fetches the keys until it succeeds once, waiting as after any failed fetch; for start-up,
    /// so readiness does not wait for the first ticket.
    pub async fn fetch_until_ready(&self) {
        loop {
            let wait = {
                let mut cached = self.state.write().await;
                if cached.verifier.is_some() {
                    return;
                }
                let now = Instant::now();
                match cached.retry_at.filter(|at| *at > now) {
                    Some(at) => at - now,
                    None => {
                        if self.refresh(&mut cached).await.is_ok() {
                            return;
                        }
                        continue;
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn refresh(&self, cached: &mut Cached) -> Result<(), String> {
        match self.fetch().await {
            Ok(jwks) => {
                cached.kids = jwks.keys.iter().map(|k| k.kid.clone()).collect();
                cached.verifier = Some(Verifier::new(&jwks, &self.issuer, TICKET_AUDIENCE));
                cached.fetched_at = Some(Instant::now());
                cached.failures = 0;
                cached.retry_at = None;
                Ok(())
            }
            Err(e) => {
                let wait = FIRST_RETRY_WAIT.saturating_mul(1 << cached.failures.min(6)).min(MAX_RETRY_WAIT);
                cached.failures += 1;
                cached.retry_at = Some(Instant::now() + wait);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "could not fetch the API's signing keys");
                Err(e)
            }
        }
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
