//! The API's settings, read once at start-up and validated so a bad value stops the process
//! with a message naming the variable. Tests build `Settings` in code.

use std::time::Duration;

use confab_common::camera_url::HostPolicy;
use confab_common::config::{ConfigError, Source};
use confab_common::secret_box::SecretBox;
use confab_storage::StorageSettings;

/// A fixed-window limit: at most `max` events per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u64,
    pub window: Duration,
}

impl Limit {
    pub const fn per_minute(max: u64) -> Self {
        Self { max, window: Duration::from_secs(60) }
    }
    pub const fn per_hour(max: u64) -> Self {
        Self { max, window: Duration::from_secs(3600) }
    }
}

/// Abuse limits: attempts on the unauthenticated endpoints, and how slowly a body may arrive.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// Login attempts from one client IP.
    pub login_per_ip: Limit,
    /// Login attempts naming one account, from anywhere.
    pub login_per_account: Limit,
    /// Failed logins of one account: the hard cap that slows a distributed guessing attack.
    pub login_failures_per_account: Limit,
    /// Sign-ups from one client IP.
    pub signup_per_ip: Limit,
    /// How long a request body may take to arrive in full (slow-body attacks); a slower one is
    /// answered 408 and its connection closed.
    pub body_read_timeout: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            login_per_ip: Limit::per_minute(30),
            login_per_account: Limit::per_minute(10),
            login_failures_per_account: Limit::per_hour(100),
            signup_per_ip: Limit::per_hour(20),
            body_read_timeout: Duration::from_secs(10),
        }
    }
}

/// How webhook deliveries are sent and retried (docs/operations.md, "Webhooks").
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The wait after a first failed attempt; it doubles with each failure, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// A delivery still failing this long after its event is given up (`failed`).
    pub retry_window: Duration,
    /// How long one attempt may take, connection included.
    pub timeout: Duration,
    /// How often a delivery worker looks for due deliveries.
    pub poll_interval: Duration,
    /// Events older than this are deleted once none of their deliveries is pending.
    pub retention: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(900),
            retry_window: Duration::from_secs(86_400),
            timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(500),
            retention: Duration::from_secs(7 * 86_400),
        }
    }
}

impl WebhookSettings {
    fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let default = Self::default();
        Ok(Self {
            retry_base: src.seconds("CONFAB_WEBHOOK_RETRY_BASE_SECS", default.retry_base.as_secs(), 1, 3600)?,
            retry_max: src.seconds("CONFAB_WEBHOOK_RETRY_MAX_SECS", default.retry_max.as_secs(), 1, 86_400)?,
            retry_window: src.seconds(
                "CONFAB_WEBHOOK_RETRY_WINDOW_SECS",
                default.retry_window.as_secs(),
                3600,
                30 * 86_400,
            )?,
            timeout: src.seconds("CONFAB_WEBHOOK_TIMEOUT_SECS", default.timeout.as_secs(), 1, 60)?,
            poll_interval: default.poll_interval,
            retention: Duration::from_secs(86_400 * src.number("CONFAB_WEBHOOK_RETENTION_DAYS", 7, 1, 3650)?),
        })
    }
}

/// IP cameras (docs/operations.md, "Cameras"): the key that seals their credentials and the
/// destinations the SSRF guard lets through besides public addresses.
#[derive(Debug, Clone, Default)]
pub struct CameraSettings {
    /// `CONFAB_CAMERA_KEY`; without it cameras cannot have credentials.
    pub key: Option<SecretBox>,
    /// Host names, IP addresses and CIDR blocks always allowed (e.g. a camera VLAN).
    pub allowed_hosts: Vec<String>,
    /// Allow private networks (RFC 1918, CGNAT, IPv6 ULA, link-local).
    pub allow_private: bool,
}

impl CameraSettings {
    fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let policy = HostPolicy::from_source(src)?;
        Ok(Self {
            key: SecretBox::from_source(src)?,
            allowed_hosts: policy.allowed_hosts().to_vec(),
            allow_private: policy.allow_private(),
        })
    }

    /// The guard's policy; fails on an allowed-hosts entry that is not a name, address or block.
    pub fn host_policy(&self) -> anyhow::Result<HostPolicy> {
        HostPolicy::new(self.allow_private, &self.allowed_hosts)
            .map_err(|e| anyhow::anyhow!("CONFAB_CAMERA_ALLOWED_HOSTS: {e}"))
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Address the HTTP server binds (`host:port`; port 0 picks a free one).
    pub bind: String,
    /// Base URL people use to reach the web client (invite links).
    pub public_url: String,
    /// WebSocket URLs of the gateways, handed out in turn with join tickets.
    pub gateway_urls: Vec<String>,
    pub database_url: String,
    pub db_max_connections: u32,
    pub redis_url: String,
    /// Prefix of every Redis key this deployment writes (tests use one per test).
    pub redis_prefix: String,
    /// One or more PEM PKCS#8 Ed25519 private keys; the last signs.
    pub jwt_keys_pem: String,
    pub jwt_issuer: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// A rotated refresh token presented again within this window is refused without revoking
    /// its family: two tabs refreshing at once are a race, not a theft.
    pub refresh_reuse_grace: Duration,
    /// Where recorders write recordings and, with local storage, the API reads them for download.
    pub recordings_dir: std::path::PathBuf,
    /// Where finished recordings are kept: the recordings directory or an S3 bucket.
    pub storage: StorageSettings,
    /// The browser client, served at `/`.
    pub web_dir: std::path::PathBuf,
    pub hash_workers: usize,
    pub hash_queue: usize,
    pub limits: RateLimits,
    pub webhooks: WebhookSettings,
    pub cameras: CameraSettings,
}

/// Default number of password-hashing threads: half the cores, so a login flood never takes
/// the CPU that other requests need.
pub fn default_hash_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

impl Settings {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let defaults = RateLimits::default();
        let limit = |key: &str, default: Limit| -> Result<Limit, ConfigError> {
            let max = src.number(key, default.max, 1, 1_000_000)?;
            Ok(Limit { max, ..default })
        };
        let hash_workers = src.number("CONFAB_HASH_WORKERS", default_hash_workers() as u64, 1, 256)? as usize;
        Ok(Self {
            bind: src.string("CONFAB_BIND", "127.0.0.1:8080"),
            public_url: src.url("CONFAB_PUBLIC_URL", "http://127.0.0.1:8080", &["http", "https"])?,
            gateway_urls: src.gateway_urls()?,
            jwt_issuer: src.string("CONFAB_JWT_ISSUER", "confab"),
            database_url: src.url("DATABASE_URL", "", &["postgres", "postgresql"])?,
            db_max_connections: src.number("CONFAB_DB_MAX_CONNECTIONS", 20, 1, 1000)? as u32,
            redis_url: src.url("REDIS_URL", "", &["redis"])?,
            redis_prefix: src.string("CONFAB_REDIS_PREFIX", "confab"),
            jwt_keys_pem: src.required("CONFAB_JWT_KEY")?,
            access_token_ttl: src.seconds("CONFAB_ACCESS_TOKEN_TTL_SECS", 900, 60, 900)?,
            refresh_token_ttl: Duration::from_secs(86_400 * src.number("CONFAB_REFRESH_TOKEN_TTL_DAYS", 30, 1, 30)?),
            refresh_reuse_grace: Duration::from_millis(src.number("CONFAB_REFRESH_REUSE_GRACE_MS", 2000, 0, 10_000)?),
            recordings_dir: src.string("CONFAB_RECORDINGS_DIR", "recordings").into(),
            storage: StorageSettings::from_source(src)?,
            web_dir: src.string("CONFAB_WEB_DIR", "web").into(),
            hash_workers,
            hash_queue: src.number("CONFAB_HASH_QUEUE", 16 * hash_workers as u64, 0, 100_000)? as usize,
            limits: RateLimits {
                login_per_ip: limit("CONFAB_LOGIN_RATE_PER_IP", defaults.login_per_ip)?,
                login_per_account: limit("CONFAB_LOGIN_RATE_PER_ACCOUNT", defaults.login_per_account)?,
                login_failures_per_account: limit(
                    "CONFAB_LOGIN_FAILURES_PER_ACCOUNT_HOUR",
                    defaults.login_failures_per_account,
                )?,
                signup_per_ip: limit("CONFAB_SIGNUP_RATE_PER_IP", defaults.signup_per_ip)?,
                body_read_timeout: src.seconds(
                    "CONFAB_BODY_READ_TIMEOUT_SECS",
                    defaults.body_read_timeout.as_secs(),
                    1,
                    300,
                )?,
            },
            webhooks: WebhookSettings::from_source(src)?,
            cameras: CameraSettings::from_source(src)?,
        })
    }
}
