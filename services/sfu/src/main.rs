//! `confab-sfu` entry point: settings, logging, serve rooms until SIGTERM.

use confab_common::config::Source;
use confab_common::telemetry::{self, LogSettings};
use confab_sfu::{Settings, Sfu};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let src = Source::from_env()?;
    telemetry::init(&LogSettings::from_source(&src)?);
    let settings = Settings::from_source(&src)?;
    let instance = settings.instance_id.clone();
    let sfu = Sfu::build(settings).await?;
    tracing::info!(port = sfu.port(), media.ports = ?sfu.media_ports(), instance.id = %instance, "confab-sfu serving");
    sfu.run_until_stopped().await?;
    Ok(())
}
