//! Ticket verification: signature and claims against the cached JWKS, a lifetime cap, and a
//! single-use check of `jti` in Redis.

use chrono::Utc;
use confab_common::tokens::LEEWAY_SECS;
use confab_domain::keys;
use confab_domain::ticket::{MAX_TICKET_TTL_SECS, TicketClaims};
use redis::aio::ConnectionManager;

use crate::jwks::JwksCache;

#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// Forged, expired, wrong audience or issuer, too long-lived, or malformed. The reason is for
    /// the log only; callers answer every rejection the same way.
    #[error("ticket rejected: {0}")]
    Rejected(String),
    #[error("ticket already used")]
    Reused,
    /// Redis or the JWKS endpoint is unreachable: the ticket cannot be checked, so it is refused.
    #[error("cannot verify tickets right now: {0}")]
    Unavailable(String),
}

pub struct TicketVerifier {
    jwks: JwksCache,
    redis: ConnectionManager,
    prefix: String,
}

impl TicketVerifier {
    /// `prefix` is the deployment's Redis key prefix; used tickets are kept under
    /// [`keys::used_ticket`] until they would have expired anyway.
    pub fn new(jwks: JwksCache, redis: ConnectionManager, prefix: &str) -> Self {
        Self { jwks, redis, prefix: prefix.to_owned() }
    }

    /// The cached keys, for readiness and warming up at start-up.
    pub fn keys(&self) -> &JwksCache {
        &self.jwks
    }

    /// The claims of a valid ticket presented for the first time.
    pub async fn verify(&self, ticket: &str) -> Result<TicketClaims, TicketError> {
        let header = jsonwebtoken::decode_header(ticket).map_err(|e| TicketError::Rejected(e.to_string()))?;
        let kid = header.kid.ok_or_else(|| TicketError::Rejected("no key id".into()))?;
        let verifier = self.jwks.verifier_for(&kid).await.map_err(TicketError::Unavailable)?;
        let claims: TicketClaims = verifier.verify(ticket).map_err(|e| TicketError::Rejected(e.to_string()))?;
        if claims.exp - claims.iat > MAX_TICKET_TTL_SECS {
            return Err(TicketError::Rejected("lifetime over 60 s".into()));
        }
        if claims.jti.is_empty() || claims.jti.len() > 64 {
            return Err(TicketError::Rejected("bad jti".into()));
        }
        self.mark_used(&claims).await?;
        Ok(claims)
    }

    async fn mark_used(&self, claims: &TicketClaims) -> Result<(), TicketError> {
        let ttl = (claims.exp - Utc::now().timestamp() + LEEWAY_SECS as i64).max(1);
        let first: Option<String> = redis::cmd("SET")
            .arg(keys::used_ticket(&self.prefix, &claims.jti))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .query_async(&mut self.redis.clone())
            .await
            .map_err(|e| TicketError::Unavailable(e.to_string()))?;
        first.map(drop).ok_or(TicketError::Reused)
    }
}
