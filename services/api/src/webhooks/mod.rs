//! Webhooks: events about rooms, participants, recordings and users, sent to the endpoints
//! operators register (docs/operations.md, "Webhooks"). Events are recorded in Postgres in the
//! transaction of the change they report (migration 7); participant events come from the
//! gateways through a Redis Stream (`presence`); `delivery` workers in every API instance send
//! them, signed (`signature`), and retry until they are accepted or the retry window ends.

pub mod delivery;
pub mod presence;
pub mod signature;

/// Every event type, in the order the docs list them.
pub const EVENT_TYPES: &[&str] = &[
    "room.created",
    "room.deleted",
    "participant.joined",
    "participant.left",
    "recording.started",
    "recording.ready",
    "recording.failed",
    "user.created",
];
