//! The recorder's settings, validated at start-up.

use std::path::PathBuf;
use std::time::Duration;

use confab_common::config::{ConfigError, Source};
use confab_storage::StorageSettings;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Address of the ops HTTP server (`/healthz`, `/readyz`, `/metrics`).
    pub bind: String,
    pub redis_url: String,
    pub redis_prefix: String,
    pub database_url: String,
    /// Names this recorder in the job queue and in `recordings.recorder_id`; random when unset.
    pub instance_id: String,
    /// The gateways; the recorder joins calls through the first one that answers.
    pub gateway_urls: Vec<String>,
    /// The API's signing keys (PEM): the recorder signs its own `recorder` tickets with the last.
    pub jwt_keys_pem: String,
    pub jwt_issuer: String,
    /// Where files are written (and, with S3 storage, spooled until uploaded).
    pub recordings_dir: PathBuf,
    /// Where finished files are kept: the recordings directory or an S3 bucket.
    pub storage: StorageSettings,
    /// A job whose recorder has not renewed its claim for this long is taken over.
    pub reclaim_after: Duration,
    /// No recording is started while the recordings directory's filesystem has less free space.
    pub min_free_bytes: u64,
}

/// A random id for this process.
pub fn random_instance_id() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    format!("rec-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

impl Settings {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            bind: src.string("CONFAB_BIND", "127.0.0.1:8090"),
            redis_url: src.url("REDIS_URL", "", &["redis"])?,
            redis_prefix: src.string("CONFAB_REDIS_PREFIX", "confab"),
            database_url: src.url("DATABASE_URL", "", &["postgres", "postgresql"])?,
            instance_id: src.get("CONFAB_INSTANCE_ID").map_or_else(random_instance_id, str::to_owned),
            gateway_urls: src.gateway_urls()?,
            jwt_keys_pem: src.required("CONFAB_JWT_KEY")?,
            jwt_issuer: src.string("CONFAB_JWT_ISSUER", "confab"),
            recordings_dir: src.string("CONFAB_RECORDINGS_DIR", "recordings").into(),
            storage: StorageSettings::from_source(src)?,
            reclaim_after: Duration::from_secs(30),
            min_free_bytes: src.number("CONFAB_RECORDER_MIN_FREE_BYTES", 1_073_741_824, 0, u64::MAX)?,
        })
    }
}
