//! The ingest worker's settings, validated at start-up. Timings that operators have no reason to
//! tune are fields with fixed values here, so tests can shorten them in code.

use std::sync::Arc;
use std::time::Duration;

use confab_common::camera_url::HostPolicy;
use confab_common::config::{ConfigError, Source, invalid};
use confab_common::secret_box::SecretBox;
use confab_common::tokens::SigningKeys;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Address of the ops HTTP server (`/healthz`, `/readyz`, `/metrics`).
    pub bind: String,
    pub redis_url: String,
    pub redis_prefix: String,
    pub database_url: String,
    /// Names this worker in camera leases and in `camera_status.worker_id`; random when unset.
    pub instance_id: String,
    /// Opens cameras' sealed credentials (`CONFAB_CAMERA_KEY`); without it, cameras that have
    /// credentials fail with a clear reason.
    pub secrets: Option<Arc<SecretBox>>,
    /// Which camera addresses may be connected to (checked again before every connection).
    pub host_policy: HostPolicy,
    /// How a pulled camera joins its room's call; `None` (no `CONFAB_JWT_KEY`) pulls cameras
    /// without bringing them into calls.
    pub call: Option<CallSettings>,
    pub timings: Timings,
}

/// What a camera needs to take a seat in a call: the gateways, the key to sign its own `camera`
/// tickets with (the API's, the last of the file), and where its WebRTC connections bind.
#[derive(Clone)]
pub struct CallSettings {
    pub gateway_urls: Vec<String>,
    pub keys: Arc<SigningKeys>,
    pub jwt_issuer: String,
    /// Local UDP addresses to gather host candidates on; port 0 picks one.
    pub bind_addrs: Vec<String>,
    /// Offer loopback candidates too. Only for tests, where every peer is on one machine.
    pub include_loopback_candidates: bool,
}

impl std::fmt::Debug for CallSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallSettings")
            .field("gateway_urls", &self.gateway_urls)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("bind_addrs", &self.bind_addrs)
            .finish_non_exhaustive()
    }
}

/// How often things happen and how long they may take.
#[derive(Debug, Clone)]
pub struct Timings {
    /// How often the worker looks for cameras to pull and renews its leases.
    pub scan_every: Duration,
    /// A lease not renewed for this long expires: another worker then takes the camera.
    pub lease_ttl: Duration,
    /// How often a connected camera's status row is refreshed.
    pub status_every: Duration,
    /// No frame for this long: the stream stalled; reconnect.
    pub stall_after: Duration,
    /// How long connecting (DNS, TCP, DESCRIBE, SETUP, PLAY) may take.
    pub connect_timeout: Duration,
    /// The first wait before a reconnect; doubled on each failure in a row up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// The window frame rate and bitrate are measured over.
    pub meter_window: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            scan_every: Duration::from_secs(2),
            lease_ttl: Duration::from_secs(10),
            status_every: Duration::from_secs(5),
            stall_after: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            meter_window: Duration::from_secs(5),
        }
    }
}

/// A random id for this process.
pub fn random_instance_id() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    format!("ingest-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

impl Settings {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            bind: src.string("CONFAB_BIND", "127.0.0.1:8091"),
            redis_url: src.url("REDIS_URL", "", &["redis"])?,
            redis_prefix: src.string("CONFAB_REDIS_PREFIX", "confab"),
            database_url: src.url("DATABASE_URL", "", &["postgres", "postgresql"])?,
            instance_id: src.get("CONFAB_INSTANCE_ID").map_or_else(random_instance_id, str::to_owned),
            secrets: SecretBox::from_source(src)?.map(Arc::new),
            host_policy: HostPolicy::from_source(src)?,
            call: CallSettings::from_source(src)?,
            timings: Timings::default(),
        })
    }
}

impl CallSettings {
    /// `None` without `CONFAB_JWT_KEY`; an unreadable key is an error.
    pub fn from_source(src: &Source) -> Result<Option<Self>, ConfigError> {
        let Some(pem) = src.get("CONFAB_JWT_KEY") else { return Ok(None) };
        let keys = SigningKeys::from_pem(pem).map_err(|e| invalid("CONFAB_JWT_KEY", "<hidden>", e.to_string()))?;
        Ok(Some(Self {
            gateway_urls: src.gateway_urls()?,
            keys: Arc::new(keys),
            jwt_issuer: src.string("CONFAB_JWT_ISSUER", "confab"),
            bind_addrs: vec!["0.0.0.0:0".to_owned()],
            include_loopback_candidates: false,
        }))
    }
}
