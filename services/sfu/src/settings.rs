//! The media server's settings, validated at start-up.

use std::net::SocketAddr;

use confab_common::config::{ConfigError, Source};

#[derive(Debug, Clone)]
pub struct Settings {
    /// Address of the ops HTTP server (`/healthz`, `/readyz`, `/metrics`).
    pub bind: String,
    pub redis_url: String,
    pub redis_prefix: String,
    /// Names this SFU in the work queue and in the rooms it serves; random when unset.
    pub instance_id: String,
    /// The gateways; the SFU takes its seat in calls through the first one that answers.
    pub gateway_urls: Vec<String>,
    /// The API's signing keys (PEM): the SFU signs its own `sfu` tickets with the last.
    pub jwt_keys_pem: String,
    pub jwt_issuer: String,
    /// The UDP address every media connection shares.
    pub media_bind: SocketAddr,
    /// Where participants reach that port: the one candidate the SFU gives them.
    pub media_address: SocketAddr,
    /// Media threads, each on its own port: the bind and advertised ports and the next ones.
    pub media_threads: u16,
}

/// A random id for this process.
pub fn random_instance_id() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    format!("sfu-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

impl Settings {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            bind: src.string("CONFAB_BIND", "127.0.0.1:8092"),
            redis_url: src.url("REDIS_URL", "", &["redis"])?,
            redis_prefix: src.string("CONFAB_REDIS_PREFIX", "confab"),
            instance_id: src.get("CONFAB_INSTANCE_ID").map_or_else(random_instance_id, str::to_owned),
            gateway_urls: src.gateway_urls()?,
            jwt_keys_pem: src.required("CONFAB_JWT_KEY")?,
            jwt_issuer: src.string("CONFAB_JWT_ISSUER", "confab"),
            media_bind: socket_address("CONFAB_MEDIA_BIND", src.string("CONFAB_MEDIA_BIND", "0.0.0.0:7882"))?,
            media_address: socket_address(
                "CONFAB_MEDIA_ADDRESS",
                src.string("CONFAB_MEDIA_ADDRESS", "127.0.0.1:7882"),
            )?,
            media_threads: src.number("CONFAB_MEDIA_THREADS", 1, 1, 64)? as u16,
        })
    }
}

/// `value` of `key` as `ip:port`.
fn socket_address(key: &str, value: String) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
        key: key.to_owned(),
        reason: format!("{e}: expected ip:port"),
        value,
    })
}
