//! A signaling gateway in the test's process, on an ephemeral port.

use std::sync::Arc;

use confab_gateway::{Application, Settings};

use crate::env;

/// A running gateway: its WebSocket URL and what stops it (as SIGTERM would).
pub struct Gateway {
    pub url: String,
    pub stopper: Arc<tokio::sync::watch::Sender<bool>>,
}

/// A gateway's settings with test defaults: any free port, the Redis of `REDIS_URL` under
/// `prefix`, tickets verified with the JWKS at `jwks_url`, no origin allowed, no ICE servers.
pub fn gateway_settings(prefix: &str, jwks_url: &str, instance_id: &str) -> Settings {
    Settings {
        bind: "127.0.0.1:0".into(),
        redis_url: env("REDIS_URL"),
        redis_prefix: prefix.to_owned(),
        jwks_url: jwks_url.to_owned(),
        jwt_issuer: "confab".into(),
        allowed_origins: vec![],
        instance_id: instance_id.to_owned(),
        ice: Default::default(),
        limits: Default::default(),
    }
}

/// Starts a gateway with `settings`.
pub fn start_gateway(settings: Settings) -> Gateway {
    let gateway = Application::build(settings).unwrap();
    let url = format!("ws://127.0.0.1:{}/v1/signal", gateway.port());
    let stopper = gateway.stopper();
    actix_web::rt::spawn(gateway.run_until_stopped());
    Gateway { url, stopper }
}

/// A gateway of Redis prefix `prefix` that verifies tickets with the JWKS at `jwks_url`.
pub fn gateway(prefix: &str, jwks_url: &str, instance_id: &str) -> Gateway {
    start_gateway(gateway_settings(prefix, jwks_url, instance_id))
}
