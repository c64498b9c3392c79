//! Join tickets: the short-lived, single-use EdDSA JWTs that let one member into one room's
//! call. The API issues them; the gateway and the recorder verify them with this crate using
//! only the API's public keys (JWKS, fetched over HTTP and cached) and Redis (single use), never
//! the database.

mod jwks;
mod verifier;

/// The claims live with the other shared contracts; they are re-exported here for the crates that
/// sign or verify tickets.
pub use confab_domain::ticket::{
    CAMERA_ROLE, MAX_TICKET_TTL_SECS, RECORDER_ROLE, TICKET_AUDIENCE, TicketClaims, TicketHolder,
};
pub use jwks::JwksCache;
pub use verifier::{TicketError, TicketVerifier};
