//! The media server's settings, validated at start-up.

use std::net::SocketAddr;

use confab_common::config::{ConfigError, Source};
use confab_domain::keys;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Address of the ops HTTP server (`/healthz`, `/readyz`, `/metrics`).
    pub bind: String,
    pub redis_url: String,
    pub redis_prefix: String,
    /// Names this SFU in the registry, its job stream and the rooms it serves; random when unset.
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
    /// Subscribers it takes before it counts as full, for placing rooms by load.
    pub capacity: u64,
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
            instance_id: instance_id(src.get("CONFAB_INSTANCE_ID"))?,
            gateway_urls: src.gateway_urls()?,
            jwt_keys_pem: src.required("CONFAB_JWT_KEY")?,
            jwt_issuer: src.string("CONFAB_JWT_ISSUER", "confab"),
            media_bind: socket_address("CONFAB_MEDIA_BIND", src.string("CONFAB_MEDIA_BIND", "0.0.0.0:7882"))?,
            media_address: socket_address(
                "CONFAB_MEDIA_ADDRESS",
                src.string("CONFAB_MEDIA_ADDRESS", "127.0.0.1:7882"),
            )?,
            media_threads: src.number("CONFAB_MEDIA_THREADS", 1, 1, 64)? as u16,
            capacity: src.number("CONFAB_SFU_CAPACITY", 250, 1, 1_000_000)?,
        })
    }
}

/// `CONFAB_INSTANCE_ID` if it may name an instance (it appears in Redis keys and the admin API's
/// paths), else random.
fn instance_id(configured: Option<&str>) -> Result<String, ConfigError> {
    match configured {
        None => Ok(random_instance_id()),
        Some(id) if keys::is_instance_id(id) => Ok(id.to_owned()),
        Some(id) => Err(ConfigError::Invalid {
            key: "CONFAB_INSTANCE_ID".to_owned(),
            reason: "1 to 64 ASCII letters, digits, '.', '_' or '-'".to_owned(),
            value: id.to_owned(),
        }),
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
