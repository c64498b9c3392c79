//! Code every Confab service shares: configuration, logging, HTTP plumbing and token checks.

pub mod config;
pub mod http;
pub mod ops;
pub mod presence_events;
pub mod recording_jobs;
pub mod redis;
pub mod telemetry;
pub mod tokens;
