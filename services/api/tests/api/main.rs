//! Integration tests of `confab-api` against real Postgres and Redis: each test gets its own
//! database and Redis key prefix, and talks to a real server over HTTP.

mod auth;
mod authz;
mod binary;
mod helpers;
mod hostile_input;
mod jwt_attacks;
mod me;
mod ops;
mod refresh;
