//! The `rooms` table, and the membership lookup every room route starts with.

use sqlx::{PgConnection, PgExecutor};

use crate::domain::page::Page;
use crate::domain::{Room, RoomId, RoomRole, RoomSettings, UserId};

macro_rules! room_columns {
    () => {
        "r.id, r.name, r.owner_id, r.max_participants, r.media, r.mode, r.created_at"
    };
}

/// Creates the room and makes `owner` its owner member, in the caller's transaction.
pub async fn insert_room(
    tx: &mut PgConnection,
    owner: UserId,
    name: &str,
    settings: RoomSettings,
) -> Result<Room, sqlx::Error> {
    let room: Room = sqlx::query_as(concat!(
        "insert into rooms as r (id, name, owner_id, max_participants, media, mode) values ($1, $2, $3, $4, $5, $6)
         returning ",
        room_columns!()
    ))
    .bind(RoomId::random())
    .bind(name)
    .bind(owner)
    .bind(settings.max_participants.get())
    .bind(settings.media)
    .bind(settings.mode)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("insert into room_members (room_id, user_id, role) values ($1, $2, 'owner')")
        .bind(room.id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
    Ok(room)
}

/// The room and `user`'s role in it (`None` when not a member); `None` overall when no room.
pub async fn find_room_with_role(
    db: impl PgExecutor<'_>,
    room_id: RoomId,
    user: UserId,
) -> Result<Option<(Room, Option<RoomRole>)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        room: Room,
        role: Option<RoomRole>,
    }
    let row: Option<Row> = sqlx::query_as(concat!(
        "select ",
        room_columns!(),
        ", m.role from rooms r
         left join room_members m on m.room_id = r.id and m.user_id = $2
         where r.id = $1"
    ))
    .bind(room_id)
    .bind(user)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.room, r.role)))
}

/// Rooms `user` belongs to with their role in each, newest first, one page.
pub async fn list_rooms_of_user(
    db: impl PgExecutor<'_>,
    user: UserId,
    page: &Page,
) -> Result<Vec<(Room, RoomRole)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        room: Room,
        role: RoomRole,
    }
    let (at, id) = page.after.map(|c| (Some(c.created_at), Some(c.id))).unwrap_or_default();
    let rows: Vec<Row> = sqlx::query_as(concat!(
        "select ",
        room_columns!(),
        ", m.role from rooms r join room_members m on m.room_id = r.id and m.user_id = $1
         where $2::timestamptz is null or (r.created_at, r.id) < ($2, $3)
         order by r.created_at desc, r.id desc limit $4"
    ))
    .bind(user)
    .bind(at)
    .bind(id)
    .bind(page.fetch_limit())
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.room, r.role)).collect())
}

/// Every room, newest first, one page (admins).
pub async fn list_all_rooms(db: impl PgExecutor<'_>, page: &Page) -> Result<Vec<Room>, sqlx::Error> {
    let (at, id) = page.after.map(|c| (Some(c.created_at), Some(c.id))).unwrap_or_default();
    sqlx::query_as(concat!(
        "select ",
        room_columns!(),
        " from rooms r
         where $1::timestamptz is null or (r.created_at, r.id) < ($1, $2)
         order by r.created_at desc, r.id desc limit $3"
    ))
    .bind(at)
    .bind(id)
    .bind(page.fetch_limit())
    .fetch_all(db)
    .await
}

/// The room, locked until the caller's transaction ends, so that a change of its settings is
/// checked against the values it replaces.
pub async fn find_room_for_update(tx: &mut PgConnection, room_id: RoomId) -> Result<Option<Room>, sqlx::Error> {
    sqlx::query_as(concat!("select ", room_columns!(), " from rooms r where r.id = $1 for update"))
        .bind(room_id)
        .fetch_optional(tx)
        .await
}

/// Writes the room's name (when given) and settings.
pub async fn update_room(
    db: impl PgExecutor<'_>,
    room_id: RoomId,
    name: Option<&str>,
    settings: RoomSettings,
) -> Result<Room, sqlx::Error> {
    sqlx::query_as(concat!(
        "update rooms r set name = coalesce($2, name), max_participants = $3, media = $4, mode = $5,
         updated_at = now() where id = $1 returning ",
        room_columns!()
    ))
    .bind(room_id)
    .bind(name)
    .bind(settings.max_participants.get())
    .bind(settings.media)
    .bind(settings.mode)
    .fetch_one(db)
    .await
}

/// Deletes the room; memberships, bans and invites go with it (foreign keys cascade).
pub async fn delete_room(db: impl PgExecutor<'_>, room_id: RoomId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("delete from rooms where id = $1").bind(room_id).execute(db).await?;
    Ok(done.rows_affected() == 1)
}

/// Ids of the rooms `user` owns (to close their calls before the user is deleted).
pub async fn room_ids_owned_by(db: impl PgExecutor<'_>, user: UserId) -> Result<Vec<RoomId>, sqlx::Error> {
    sqlx::query_scalar("select id from rooms where owner_id = $1").bind(user).fetch_all(db).await
}

pub async fn room_exists(db: impl PgExecutor<'_>, room_id: RoomId) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists (select 1 from rooms where id = $1)").bind(room_id).fetch_one(db).await
}

pub async fn count_rooms(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from rooms").fetch_one(db).await
}
