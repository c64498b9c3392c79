//! `confab-gateway` entry point: settings, logging, serve until SIGTERM.

use confab_common::config::Source;
use confab_common::telemetry::{self, LogSettings};
use confab_gateway::{Application, Settings};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let src = Source::from_env()?;
    telemetry::init(&LogSettings::from_source(&src)?);
    let settings = Settings::from_source(&src)?;
    let instance = settings.instance_id.clone();
    let app = Application::build(settings)?;
    tracing::info!(port = app.port(), instance.id = %instance, "confab-gateway listening");
    app.run_until_stopped().await?;
    Ok(())
}
