//! The `users` table.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::domain::page::Page;
use crate::domain::{Role, User, UserId};

/// The columns of [`User`], as a macro so queries stay `&'static str` (sqlx refuses built strings).
macro_rules! user_columns {
    () => {
        "id, email, display_name, role, disabled_at, token_version, created_at"
    };
}

/// A new account. `email` must already be normalized and `password_hash` a PHC string.
pub struct NewUser<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
}

pub async fn insert_user(db: impl PgExecutor<'_>, new: &NewUser<'_>) -> Result<User, sqlx::Error> {
    sqlx::query_as(concat!(
        "insert into users (id, email, display_name, password_hash, role)
         values ($1, $2, $3, $4, $5) returning ",
        user_columns!(),
        ""
    ))
    .bind(UserId::random())
    .bind(new.email)
    .bind(new.display_name)
    .bind(new.password_hash)
    .bind(new.role)
    .fetch_one(db)
    .await
}

pub async fn find_user_by_id(db: impl PgExecutor<'_>, id: UserId) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(concat!("select ", user_columns!(), " from users where id = $1")).bind(id).fetch_optional(db).await
}

/// The user of an access token, and whether the token's refresh family (its login) has been
/// revoked. One round trip, since every authenticated request makes it; the family check is one
/// probe of a partial index of revoked families.
pub async fn find_token_user(
    db: impl PgExecutor<'_>,
    id: UserId,
    family_id: Uuid,
) -> Result<Option<(User, bool)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: User,
        family_revoked: bool,
    }
    let row: Option<Row> = sqlx::query_as(concat!(
        "select ",
        user_columns!(),
        ", exists (select 1 from refresh_tokens
                   where family_id = $2 and revoked_at is not null) as family_revoked
         from users where id = $1"
    ))
    .bind(id)
    .bind(family_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.user, r.family_revoked)))
}

/// A user together with the password hash, for login.
pub async fn find_credentials_by_email(
    db: impl PgExecutor<'_>,
    email: &str,
) -> Result<Option<(User, String)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: User,
        password_hash: String,
    }
    let row: Option<Row> =
        sqlx::query_as(concat!("select ", user_columns!(), ", password_hash from users where email = $1"))
            .bind(email)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|r| (r.user, r.password_hash)))
}

pub async fn find_password_hash(db: impl PgExecutor<'_>, id: UserId) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("select password_hash from users where id = $1").bind(id).fetch_optional(db).await
}

pub async fn update_display_name(db: impl PgExecutor<'_>, id: UserId, name: &str) -> Result<User, sqlx::Error> {
    sqlx::query_as(concat!(
        "update users set display_name = $2, updated_at = now() where id = $1 returning ",
        user_columns!(),
        ""
    ))
    .bind(id)
    .bind(name)
    .fetch_one(db)
    .await
}

/// Replaces the password and invalidates every access token the user holds.
pub async fn update_password(db: impl PgExecutor<'_>, id: UserId, password_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update users set password_hash = $2, token_version = token_version + 1, updated_at = now()
         where id = $1",
    )
    .bind(id)
    .bind(password_hash)
    .execute(db)
    .await
    .map(drop)
}

/// Invalidates every access token the user holds (logout everywhere).
pub async fn bump_token_version(db: impl PgExecutor<'_>, id: UserId) -> Result<(), sqlx::Error> {
    sqlx::query("update users set token_version = token_version + 1, updated_at = now() where id = $1")
        .bind(id)
        .execute(db)
        .await
        .map(drop)
}

/// Makes an existing account an admin; returns false when no account has that email.
pub async fn promote_to_admin(db: impl PgExecutor<'_>, email: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("update users set role = 'admin', updated_at = now() where email = $1")
        .bind(email)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Users whose email or display name contains `search` (case-insensitive), newest first.
pub async fn search_users(
    db: impl PgExecutor<'_>,
    search: Option<&str>,
    page: &Page,
) -> Result<Vec<User>, sqlx::Error> {
    let pattern = search.map(|s| format!("%{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
    let (at, id) = page.after.map(|c| (Some(c.created_at), Some(c.id))).unwrap_or_default();
    sqlx::query_as(concat!(
        "select ",
        user_columns!(),
        " from users
         where ($1::text is null or email ilike $1 or display_name ilike $1)
           and ($2::timestamptz is null or (created_at, id) < ($2, $3))
         order by created_at desc, id desc limit $4"
    ))
    .bind(pattern)
    .bind(at)
    .bind(id)
    .bind(page.fetch_limit())
    .fetch_all(db)
    .await
}

pub async fn set_role(db: impl PgExecutor<'_>, id: UserId, role: Role) -> Result<(), sqlx::Error> {
    sqlx::query("update users set role = $2, updated_at = now() where id = $1")
        .bind(id)
        .bind(role)
        .execute(db)
        .await
        .map(drop)
}

/// Disables (ending every session) or re-enables an account.
pub async fn set_disabled(db: impl PgExecutor<'_>, id: UserId, disabled: bool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update users set disabled_at = case when $2 then coalesce(disabled_at, now()) end,
         token_version = token_version + case when $2 then 1 else 0 end, updated_at = now() where id = $1",
    )
    .bind(id)
    .bind(disabled)
    .execute(db)
    .await
    .map(drop)
}

/// Deletes the account; rooms it owns, its memberships and tokens go with it.
pub async fn delete_user(db: impl PgExecutor<'_>, id: UserId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("delete from users where id = $1").bind(id).execute(db).await?;
    Ok(done.rows_affected() == 1)
}

pub async fn count_users(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from users").fetch_one(db).await
}
