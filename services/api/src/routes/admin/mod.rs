//! The administration surface (role `admin`, read from the database on every request): users,
//! rooms, live participants, recordings, cameras, media servers, the audit log and statistics.
//! Every change is audited.

pub mod audit;
pub mod cameras;
pub mod rooms;
pub mod sfus;
pub mod users;
pub mod webhooks;
