//! Code every Confab service shares: configuration, logging, HTTP plumbing, token checks, and
//! the camera URL guard and credential sealing that the API and the ingest worker both use, and
//! the job queues between services (recordings, rooms placed on the SFUs) and the SFUs' registry.

pub mod camera_url;
pub mod config;
pub mod http;
pub mod ops;
pub mod postgres;
pub mod presence_events;
pub mod recording_jobs;
pub mod redis;
pub mod secret_box;
pub mod sfu_jobs;
pub mod sfu_registry;
pub mod telemetry;
pub mod tokens;
