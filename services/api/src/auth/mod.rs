//! Authentication and authorization: password hashing on a bounded pool, access and refresh
//! tokens, abuse limits, the current user and admin extractors, and room and recording access
//! rules.

pub mod admin;
pub mod current_user;
pub mod hashing;
pub mod rate_limit;
pub mod recording_access;
pub mod room_access;
pub mod tokens;
