//! Integration tests of `confab-api` against real Postgres and Redis: each test gets its own
//! database and Redis key prefix, and talks to a real server over HTTP.

mod admin;
mod auth;
mod authz;
mod binary;
mod cameras;
mod helpers;
mod hostile_input;
mod invites;
mod join;
mod jwt_attacks;
mod me;
mod members;
mod ops;
mod recordings;
mod recordings_outlive_rooms;
mod refresh;
mod request_ids;
mod room_settings;
mod rooms;
mod speakers;
mod web;
mod webhooks;
