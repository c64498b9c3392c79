//! A database of a test's own, with every migration applied, on the Postgres `DATABASE_URL`
//! names.

use sqlx::{Connection as _, Executor as _, PgConnection, PgPool};

use crate::env;

/// A uuid-named database with the schema: its pool and its URL.
pub async fn fresh_database() -> (PgPool, String) {
    let base = env("DATABASE_URL");
    let server = base.rsplit_once('/').expect("DATABASE_URL names a database").0.to_owned();
    let name = format!("confab_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await.unwrap();
    admin.execute(sqlx::AssertSqlSafe(format!(r#"create database "{name}""#))).await.unwrap();
    let url = format!("{server}/{name}");
    let db = PgPool::connect(&url).await.unwrap();
    confab_api::MIGRATOR.run(&db).await.unwrap();
    (db, url)
}
