//! The API in the test's process, on an ephemeral port, with the settings a test cares about
//! and test defaults for the rest.

use std::path::Path;
use std::time::Duration;

use confab_api::settings::Settings;

use crate::env;

/// The API's settings on `database_url` and the Redis prefix `prefix`, signing with `key_pem`,
/// sending joiners to `gateway_urls` and keeping recordings in `recordings_dir`.
pub fn api_settings(
    database_url: &str,
    prefix: &str,
    key_pem: &str,
    gateway_urls: Vec<String>,
    recordings_dir: &Path,
) -> Settings {
    Settings {
        bind: "127.0.0.1:0".into(),
        public_url: "http://confab.test".into(),
        gateway_urls,
        database_url: database_url.to_owned(),
        db_max_connections: 5,
        redis_url: env("REDIS_URL"),
        redis_prefix: prefix.to_owned(),
        jwt_keys_pem: key_pem.to_owned(),
        jwt_issuer: "confab".into(),
        access_token_ttl: Duration::from_secs(900),
        refresh_token_ttl: Duration::from_secs(86_400),
        refresh_reuse_grace: Duration::ZERO,
        recordings_dir: recordings_dir.to_owned(),
        web_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../../web").into(),
        storage: Default::default(),
        hash_workers: 1,
        hash_queue: 16,
        limits: Default::default(),
        webhooks: Default::default(),
        cameras: Default::default(),
    }
}

/// Starts the API with `settings`: its base URL.
pub async fn api(settings: Settings) -> String {
    let api = confab_api::startup::Application::build(settings).await.unwrap();
    let url = format!("http://127.0.0.1:{}", api.port());
    actix_web::rt::spawn(api.run_until_stopped());
    url
}
