//! `confab-recorder`: the recorder. For now it serves only its ops endpoints; recording lands with the recorder issue.

use confab_common::config::{ConfigError, Source};

#[derive(Debug, Clone)]
pub struct Settings {
    /// Address of the ops HTTP server (`/healthz`, `/readyz`, `/metrics`).
    pub bind: String,
    pub redis_url: String,
}

impl Settings {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            bind: src.string("CONFAB_BIND", "127.0.0.1:8090"),
            redis_url: src.url("REDIS_URL", "", &["redis", "rediss"])?,
        })
    }
}
