//! What the services' tests share, once: a fresh database with the schema, a Redis prefix of
//! their own, signing keys, tickets and the JWKS that verifies them, the API and a gateway in-process, a
//! participant that speaks the signaling protocol in its typed messages, a synthetic webrtc-rs
//! sender, the committed media clips played in real time, an RTSP camera, temporary
//! directories, ffmpeg, S3 storage settings, and [`eventually`] to wait for a condition with a deadline rather than sleep and hope.
//! Everything runs against the real Postgres and Redis of `deploy/local/test`.

mod api;
mod database;
mod files;
mod gateway;
mod keys;
pub mod media;
mod rtsp;
mod sender;
mod signaling;
mod storage;

use std::time::Duration;

pub use api::{api, api_settings};
pub use confab_protocol::signal::server_message::Kind;
pub use database::fresh_database;
pub use files::{TempDir, run_tool};
pub use gateway::{Gateway, gateway, gateway_settings, start_gateway};
pub use keys::{TestKeys, jwks_server, jwks_server_at};
pub use rtsp::{RtspServer, Stopped};
pub use sender::{SenderPeer, loopback_connection};
pub use signaling::Signaling;
pub use storage::s3_settings;

/// An environment variable `deploy/local/test` sets.
pub fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} must be set: run the tests with deploy/local/test"))
}

/// A Redis key prefix no other test uses.
pub fn redis_prefix() -> String {
    format!("confab-test:{}", uuid::Uuid::new_v4().simple())
}

/// Polls `probe` every 50 ms until it gives a value, for at most `within`; panics saying `what`
/// was awaited otherwise.
pub async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> F,
) -> T {
    let give_up = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < give_up, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
