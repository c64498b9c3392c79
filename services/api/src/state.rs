//! What every handler shares: connections, the workers' handles and the settings. Its own module,
//! apart from `startup` (which builds the app from the routes), so that routes depend on it and
//! nothing here depends on routes.

use std::sync::atomic::AtomicUsize;

use confab_common::camera_url::HostPolicy;
use confab_storage::Storage;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

use crate::auth::hashing::PasswordHasher;
use crate::auth::rate_limit::RateLimiter;
use crate::auth::tokens::AccessTokens;
use crate::control::ControlBus;
use crate::jobs::RecordingJobs;
use crate::settings::Settings;

/// Everything a handler may need, shared by all workers.
pub struct AppState {
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub control: ControlBus,
    pub recording_jobs: RecordingJobs,
    /// Round-robin position in `settings.gateway_urls` for join tickets.
    pub next_gateway: AtomicUsize,
    pub hasher: PasswordHasher,
    pub access_tokens: AccessTokens,
    pub limiter: RateLimiter,
    /// Where recording files are downloaded from and deleted.
    pub storage: Storage,
    /// Which camera hosts the SSRF guard lets through besides public addresses.
    pub camera_policy: HostPolicy,
    pub settings: Settings,
}
