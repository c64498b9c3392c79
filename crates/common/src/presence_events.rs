//! The presence event stream (`confab_domain::keys::presence_events`): a gateway appends an entry whenever a
//! participant's presence starts or ends (in the same Lua step as the change), and the API reads
//! the stream through a consumer group to turn the entries into `participant.joined` /
//! `participant.left` webhook events. Fields: `type`, `room_id`, `peer` (the presence entry as
//! JSON: `peer_id`, `user_id`, `display_name`, `role`, `joined_at`, …) and, on a departure,
//! `reason` (as in `peer_left`). Recorders are not participants and never appear.

/// Entries kept (approximately): many hours of joins and leaves, even if the API is down.
pub const MAX_LENGTH: usize = 100_000;

pub const JOINED: &str = "participant.joined";
pub const LEFT: &str = "participant.left";
