//! The `invites` table: creation, listing, revocation and the atomic use of a token.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::domain::{RoomId, UserId};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Invite {
    pub id: Uuid,
    pub room_id: RoomId,
    pub created_by: Option<UserId>,
    pub max_uses: i32,
    pub uses: i32,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

macro_rules! invite_columns {
    () => {
        "id, room_id, created_by, max_uses, uses, expires_at, revoked_at, created_at"
    };
}

pub async fn insert_invite(
    db: impl PgExecutor<'_>,
    room_id: RoomId,
    token_hash: &[u8],
    created_by: UserId,
    max_uses: i32,
    expires_at: DateTime<Utc>,
) -> Result<Invite, sqlx::Error> {
    sqlx::query_as(concat!(
        "insert into invites (id, room_id, token_hash, created_by, max_uses, expires_at)
         values ($1, $2, $3, $4, $5, $6) returning ",
        invite_columns!()
    ))
    .bind(Uuid::new_v4())
    .bind(room_id)
    .bind(token_hash)
    .bind(created_by)
    .bind(max_uses)
    .bind(expires_at)
    .fetch_one(db)
    .await
}

pub async fn list_invites(db: impl PgExecutor<'_>, room_id: RoomId) -> Result<Vec<Invite>, sqlx::Error> {
    sqlx::query_as(concat!("select ", invite_columns!(), " from invites where room_id = $1 order by created_at desc"))
        .bind(room_id)
        .fetch_all(db)
        .await
}

/// Revokes an invite of `room_id`; false when there is no such invite.
pub async fn revoke_invite(db: impl PgExecutor<'_>, room_id: RoomId, invite_id: Uuid) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("update invites set revoked_at = coalesce(revoked_at, now()) where id = $1 and room_id = $2")
            .bind(invite_id)
            .bind(room_id)
            .execute(db)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// The room a token was made for, whatever state the invite is in.
pub async fn find_invite_room(db: impl PgExecutor<'_>, token_hash: &[u8]) -> Result<Option<RoomId>, sqlx::Error> {
    sqlx::query_scalar("select room_id from invites where token_hash = $1").bind(token_hash).fetch_optional(db).await
}

/// Uses the token once if it is still live. The row lock serializes concurrent accepts, so a
/// token with `max_uses = 1` admits exactly one person.
pub async fn use_invite(db: impl PgExecutor<'_>, token_hash: &[u8]) -> Result<Option<RoomId>, sqlx::Error> {
    sqlx::query_scalar(
        "update invites set uses = uses + 1
         where token_hash = $1 and revoked_at is null and expires_at > now() and uses < max_uses
         returning room_id",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .await
}
