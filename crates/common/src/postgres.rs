//! Postgres as the services' readiness checks see it.

use sqlx::PgPool;

/// Answers within the command timeout, or says why not.
pub async fn ping(pool: &PgPool) -> Result<(), String> {
    match tokio::time::timeout(crate::redis::COMMAND_TIMEOUT, sqlx::query("select 1").execute(pool)).await {
        Ok(answered) => answered.map(drop).map_err(|e| e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}
