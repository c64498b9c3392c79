//! `confab-gateway` entry point: settings, logging, serve until SIGTERM.

use confab_common::config::Source;
use confab_common::ops::OpsServer;
use confab_common::telemetry::{self, LogSettings};
use confab_gateway::Settings;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let src = Source::from_env()?;
    telemetry::init(&LogSettings::from_source(&src)?);
    let settings = Settings::from_source(&src)?;
    let server = OpsServer::build(&settings.bind, &settings.redis_url)?;
    tracing::info!(port = server.port(), "confab-gateway listening");
    server.run_until_stopped().await?;
    Ok(())
}
