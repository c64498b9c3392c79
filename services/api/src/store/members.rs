//! The `room_members` and `room_bans` tables.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::domain::{RoomId, RoomRole, UserId};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: RoomRole,
    pub created_at: DateTime<Utc>,
}

pub async fn list_members(db: impl PgExecutor<'_>, room_id: RoomId) -> Result<Vec<Member>, sqlx::Error> {
    sqlx::query_as(
        "select m.user_id, u.email, u.display_name, m.role, m.created_at
         from room_members m join users u on u.id = m.user_id
         where m.room_id = $1 order by m.created_at, m.user_id",
    )
    .bind(room_id)
    .fetch_all(db)
    .await
}

/// A banned user, with who banned them (gone if that account was deleted).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Ban {
    pub user_id: UserId,
    pub email: String,
    pub display_name: String,
    pub banned_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
}

/// A room's bans, the latest first.
pub async fn list_bans(db: impl PgExecutor<'_>, room_id: RoomId) -> Result<Vec<Ban>, sqlx::Error> {
    sqlx::query_as(
        "select b.user_id, u.email, u.display_name, b.banned_by, b.created_at
         from room_bans b join users u on u.id = b.user_id
         where b.room_id = $1 order by b.created_at desc, b.user_id",
    )
    .bind(room_id)
    .fetch_all(db)
    .await
}

pub async fn find_member(
    db: impl PgExecutor<'_>,
    room_id: RoomId,
    user: UserId,
) -> Result<Option<Member>, sqlx::Error> {
    sqlx::query_as(
        "select m.user_id, u.email, u.display_name, m.role, m.created_at
         from room_members m join users u on u.id = m.user_id
         where m.room_id = $1 and m.user_id = $2",
    )
    .bind(room_id)
    .bind(user)
    .fetch_optional(db)
    .await
}

/// Adds a member; returns false when already a member (nothing changes).
pub async fn insert_member(
    db: impl PgExecutor<'_>,
    room_id: RoomId,
    user: UserId,
    role: RoomRole,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("insert into room_members (room_id, user_id, role) values ($1, $2, $3) on conflict do nothing")
            .bind(room_id)
            .bind(user)
            .bind(role)
            .execute(db)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn update_member_role(
    db: impl PgExecutor<'_>,
    room_id: RoomId,
    user: UserId,
    role: RoomRole,
) -> Result<(), sqlx::Error> {
    sqlx::query("update room_members set role = $3 where room_id = $1 and user_id = $2")
        .bind(room_id)
        .bind(user)
        .bind(role)
        .execute(db)
        .await
        .map(drop)
}

pub async fn delete_member(db: impl PgExecutor<'_>, room_id: RoomId, user: UserId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("delete from room_members where room_id = $1 and user_id = $2")
        .bind(room_id)
        .bind(user)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn insert_ban(
    db: impl PgExecutor<'_>,
    room_id: RoomId,
    user: UserId,
    banned_by: UserId,
) -> Result<(), sqlx::Error> {
    sqlx::query("insert into room_bans (room_id, user_id, banned_by) values ($1, $2, $3) on conflict do nothing")
        .bind(room_id)
        .bind(user)
        .bind(banned_by)
        .execute(db)
        .await
        .map(drop)
}

pub async fn is_banned(db: impl PgExecutor<'_>, room_id: RoomId, user: UserId) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists (select 1 from room_bans where room_id = $1 and user_id = $2)")
        .bind(room_id)
        .bind(user)
        .fetch_one(db)
        .await
}

pub async fn delete_ban(db: impl PgExecutor<'_>, room_id: RoomId, user: UserId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("delete from room_bans where room_id = $1 and user_id = $2")
        .bind(room_id)
        .bind(user)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}
