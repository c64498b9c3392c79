//! `confab-recorder` entry point: settings, logging, work until SIGTERM.

use confab_common::config::Source;
use confab_common::telemetry::{self, LogSettings};
use confab_recorder::{Recorder, Settings};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let src = Source::from_env()?;
    telemetry::init(&LogSettings::from_source(&src)?);
    let settings = Settings::from_source(&src)?;
    let instance = settings.instance_id.clone();
    let recorder = Recorder::build(settings)?;
    tracing::info!(port = recorder.port(), instance.id = %instance, "confab-recorder working");
    recorder.run_until_stopped().await?;
    Ok(())
}
