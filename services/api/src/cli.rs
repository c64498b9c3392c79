//! One-off commands: migrations, key generation, and bootstrapping the first admin.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use confab_common::config::Source;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;

use crate::auth::hashing::hash_blocking;
use crate::domain::{DisplayName, Email, Password, Role};
use crate::store::users::{self, NewUser};

async fn connect(src: &Source) -> anyhow::Result<sqlx::PgPool> {
    let url = src.url("DATABASE_URL", "", &["postgres", "postgresql"])?;
    sqlx::PgPool::connect(&url).await.context("DATABASE_URL: cannot connect")
}

/// Applies pending migrations.
pub async fn migrate(src: &Source) -> anyhow::Result<()> {
    let pool = connect(src).await?;
    crate::MIGRATOR.run(&pool).await?;
    Ok(())
}

/// Writes a new Ed25519 signing key (PKCS#8 PEM, mode 0600). Refuses to overwrite.
pub fn keygen(out: &Path) -> anyhow::Result<()> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
    let pem = SigningKey::from_bytes(&seed).to_pkcs8_pem(LineEnding::LF)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(out).with_context(|| format!("cannot create {}", out.display()))?;
    file.write_all(pem.as_bytes())?;
    Ok(())
}

/// Creates an admin account with the password read from stdin, or promotes an existing account
/// (whose password is then left unchanged).
pub async fn create_admin(src: &Source, email: &str, name: Option<&str>, password: &str) -> anyhow::Result<String> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    let pool = connect(src).await?;
    if users::promote_to_admin(&pool, email.as_str()).await? {
        return Ok(format!("{} already existed and is now an admin", email.as_str()));
    }
    let password = Password::parse(password.to_owned()).map_err(|e| anyhow::anyhow!("password: {e}"))?;
    let default_name = email.as_str().split('@').next().unwrap_or("admin").to_owned();
    let name = DisplayName::parse(name.unwrap_or(&default_name)).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let hash = hash_blocking(password.expose())?;
    let user = users::insert_user(
        &pool,
        &NewUser { email: email.as_str(), display_name: name.as_str(), password_hash: &hash, role: Role::Admin },
    )
    .await?;
    Ok(format!("created admin {} ({})", user.email, user.id))
}
