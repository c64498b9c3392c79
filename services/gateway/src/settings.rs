//! The gateway's settings, validated at start-up.

use std::time::Duration;

use confab_common::config::{ConfigError, Source, invalid};

use crate::ice::IceConfig;

#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: String,
    pub redis_url: String,
    pub redis_prefix: String,
    /// Where the API publishes its signing keys.
    pub jwks_url: String,
    pub jwt_issuer: String,
    /// Browser origins allowed to open a socket; requests without `Origin` (non-browser
    /// clients) are allowed, since cross-site WebSocket hijacking needs a browser.
    pub allowed_origins: Vec<String>,
    /// Names this instance in presence; random when unset.
    pub instance_id: String,
    pub ice: IceConfig,
    pub limits: Limits,
}

/// Per-connection limits (docs/protocol.md).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_bytes: usize,
    /// Sustained client messages per second, and the burst allowed above it.
    pub messages_per_second: f64,
    pub message_burst: f64,
    /// Server messages queued for one connection before it counts as a slow consumer.
    pub outbound_queue: usize,
    /// How often the gateway pings, and checks whether the client has gone silent.
    pub heartbeat: Duration,
    /// Silence after which a peer is dropped and announced as left (`timeout`), at the first
    /// heartbeat past it: within `dead_after + heartbeat`.
    pub dead_after: Duration,
    /// How long an unplanned disconnect keeps the peer's id and place for a resume.
    pub resume_window: Duration,
    /// Connections one user may hold in one room (tabs, devices), across all instances.
    pub connections_per_user: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            messages_per_second: 20.0,
            message_burst: 50.0,
            outbound_queue: 256,
            heartbeat: Duration::from_secs(15),
            dead_after: Duration::from_secs(30),
            resume_window: Duration::from_secs(15),
            connections_per_user: 5,
        }
    }
}

/// A random id for this process, unless configured.
pub fn random_instance_id() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    format!("gw-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

impl Settings {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let origins = src.list(
            "CONFAB_ALLOWED_ORIGINS",
            "http://127.0.0.1:8080,http://localhost:8080",
            &["http://", "https://"],
        )?;
        let stun_urls = src.list("CONFAB_STUN_URLS", "", &["stun:", "stuns:"])?;
        let turn_urls = src.list("CONFAB_TURN_URLS", "", &["turn:", "turns:"])?;
        if !turn_urls.is_empty() && src.get("CONFAB_TURN_SECRET").is_none() {
            return Err(invalid(
                "CONFAB_TURN_SECRET",
                "",
                "required with CONFAB_TURN_URLS (coturn static-auth-secret)",
            ));
        }
        Ok(Self {
            bind: src.string("CONFAB_BIND", "127.0.0.1:8081"),
            redis_url: src.url("REDIS_URL", "", &["redis"])?,
            redis_prefix: src.string("CONFAB_REDIS_PREFIX", "confab"),
            jwks_url: src.url("CONFAB_JWKS_URL", "http://127.0.0.1:8080/.well-known/jwks.json", &["http"])?,
            jwt_issuer: src.string("CONFAB_JWT_ISSUER", "confab"),
            allowed_origins: origins,
            instance_id: src.get("CONFAB_INSTANCE_ID").map_or_else(random_instance_id, str::to_owned),
            ice: IceConfig {
                stun_urls,
                turn_urls,
                turn_secret: src.get("CONFAB_TURN_SECRET").map(str::to_owned),
                turn_ttl_secs: src.number("CONFAB_TURN_TTL_SECS", 86_400, 60, 7 * 86_400)? as i64,
            },
            limits: Limits::default(),
        })
    }
}
