//! `confab-ingest` entry point: settings, logging, pull cameras until SIGTERM.

use confab_common::config::Source;
use confab_common::telemetry::{self, LogSettings};
use confab_ingest::{Ingest, Settings};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let src = Source::from_env()?;
    telemetry::init(&LogSettings::from_source(&src)?);
    let settings = Settings::from_source(&src)?;
    let instance = settings.instance_id.clone();
    let ingest = Ingest::build(settings)?;
    tracing::info!(port = ingest.port(), instance.id = %instance, "confab-ingest working");
    ingest.run_until_stopped().await?;
    Ok(())
}
