//! Postgres access, one file per table. Functions take an executor so callers choose between
//! the pool and a transaction; they return domain types, never raw rows.

pub mod audit;
pub mod cameras;
pub mod invites;
pub mod members;
pub mod recordings;
pub mod refresh_tokens;
pub mod rooms;
pub mod users;
pub mod webhooks;
