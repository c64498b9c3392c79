//! Authentication: password hashing on a bounded pool, access and refresh tokens, abuse limits,
//! and the extractor that turns a bearer token into the current user.

pub mod current_user;
pub mod hashing;
pub mod rate_limit;
pub mod tokens;
