//! Structured logging for every service: human-readable by default, JSON lines when
//! `CONFAB_LOG_FORMAT=json`. Field names are dotted (`user.id`, `http.route`) with units in the
//! name (`duration_ms`). Tokens, passwords, SDP and ICE candidates are never logged.

use crate::config::{ConfigError, Source, invalid};
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logging settings read from `CONFAB_LOG_FORMAT` and `CONFAB_LOG_LEVEL`.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

impl LogSettings {
    pub fn from_source(source: &Source) -> Result<Self, ConfigError> {
        let format = match source.string("CONFAB_LOG_FORMAT", "text").as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(invalid("CONFAB_LOG_FORMAT", other, "must be text or json")),
        };
        let filter = source.string("CONFAB_LOG_LEVEL", "info");
        EnvFilter::try_new(&filter).map_err(|e| invalid("CONFAB_LOG_LEVEL", &filter, e.to_string()))?;
        Ok(Self { format, filter })
    }
}

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(settings: &LogSettings) {
    let builder =
        tracing_subscriber::fmt().with_env_filter(EnvFilter::new(&settings.filter)).with_writer(std::io::stderr);
    match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}
