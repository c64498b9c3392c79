//! A signaling gateway in the test's process, on an ephemeral port.

use std::sync::Arc;

use crate::env;

/// A running gateway: its WebSocket URL and what stops it (as SIGTERM would).
pub struct Gateway {
    pub url: String,
    pub stopper: Arc<tokio::sync::watch::Sender<bool>>,
}

/// A gateway of Redis prefix `prefix` that verifies tickets with the JWKS at `jwks_url`.
pub fn gateway(prefix: &str, jwks_url: &str, instance_id: &str) -> Gateway {
    let gateway = confab_gateway::Application::build(confab_gateway::Settings {
        bind: "127.0.0.1:0".into(),
        redis_url: env("REDIS_URL"),
        redis_prefix: prefix.to_owned(),
        jwks_url: jwks_url.to_owned(),
        jwt_issuer: "confab".into(),
        allowed_origins: vec![],
        instance_id: instance_id.into(),
        ice: Default::default(),
        limits: Default::default(),
    })
    .unwrap();
    let url = format!("ws://127.0.0.1:{}/v1/signal", gateway.port());
    let stopper = gateway.stopper();
    actix_web::rt::spawn(gateway.run_until_stopped());
    Gateway { url, stopper }
}
