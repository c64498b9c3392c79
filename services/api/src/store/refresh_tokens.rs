//! The `refresh_tokens` table: rotation with reuse detection.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::domain::UserId;

pub async fn insert_refresh_token(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    family_id: Uuid,
    user_id: UserId,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("insert into refresh_tokens (token_hash, family_id, user_id, expires_at) values ($1, $2, $3, $4)")
        .bind(token_hash)
        .bind(family_id)
        .bind(user_id)
        .bind(expires_at)
        .execute(db)
        .await
        .map(drop)
}

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum Rotation {
    /// The token was live and is now rotated; issue its successor in the same family.
    Rotated { family_id: Uuid, user_id: UserId, expires_at: DateTime<Utc> },
    /// The token was already rotated `since_rotation` ago (a replay or a concurrent refresh).
    Reused { family_id: Uuid, user_id: UserId, since_rotation: chrono::Duration },
    /// Unknown, expired or revoked.
    Invalid,
}

/// Marks the token rotated if it is live. The row lock makes concurrent presenters of one token
/// serialize: exactly one sees it live, the others see it rotated.
pub async fn rotate_refresh_token(conn: &mut PgConnection, token_hash: &[u8]) -> Result<Rotation, sqlx::Error> {
    let rotated: Option<(Uuid, UserId, DateTime<Utc>)> = sqlx::query_as(
        "update refresh_tokens set rotated_at = now()
         where token_hash = $1 and rotated_at is null and revoked_at is null and expires_at > now()
         returning family_id, user_id, expires_at",
    )
    .bind(token_hash)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((family_id, user_id, expires_at)) = rotated {
        return Ok(Rotation::Rotated { family_id, user_id, expires_at });
    }
    let reused: Option<(Uuid, UserId, DateTime<Utc>)> = sqlx::query_as(
        "select family_id, user_id, rotated_at from refresh_tokens
         where token_hash = $1 and rotated_at is not null and revoked_at is null",
    )
    .bind(token_hash)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match reused {
        Some((family_id, user_id, rotated_at)) => {
            Rotation::Reused { family_id, user_id, since_rotation: Utc::now() - rotated_at }
        }
        None => Rotation::Invalid,
    })
}

pub async fn revoke_family(db: impl PgExecutor<'_>, family_id: Uuid) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("update refresh_tokens set revoked_at = now() where family_id = $1 and revoked_at is null")
        .bind(family_id)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

pub async fn revoke_all_for_user(db: impl PgExecutor<'_>, user_id: UserId) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("update refresh_tokens set revoked_at = now() where user_id = $1 and revoked_at is null")
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}
