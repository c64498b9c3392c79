//! Postgres access, one file per table. Functions take an executor so callers choose between
//! the pool and a transaction; they return domain types, never raw rows.

pub mod refresh_tokens;
pub mod users;
