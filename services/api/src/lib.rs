//! `confab-api`: accounts, tokens, rooms, invites, recordings metadata and administration.

pub mod allowed_methods;
pub mod auth;
pub mod cli;
pub mod control;
pub mod domain;
pub mod download;
pub mod error;
pub mod extractor_errors;
pub mod jobs;
pub mod openapi;
pub mod removal;
pub mod request_guard;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod store;
pub mod web_client;
pub mod webhooks;

/// The schema migrations, embedded so `confab-api migrate` needs no files at run time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");
