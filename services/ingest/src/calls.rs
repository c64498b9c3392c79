//! Which rooms have a call going on, from the gateways' presence in Redis (docs/protocol.md):
//! `keys::live_rooms` lists rooms with at least one peer and `keys::room_peers` holds their
//! presence entries. Recorders and cameras are peers too, but a room with only those has
//! nobody watching: a call needs one other peer.

use std::collections::HashSet;

use confab_domain::{keys, presence};
use redis::RedisResult;
use redis::aio::ConnectionManager;

use crate::leases::counted;
use crate::store::RoomId;

/// Whether a room's presence entries (JSON) include a person.
pub fn has_a_person<'a>(entries: impl IntoIterator<Item = &'a str>) -> bool {
    entries.into_iter().filter_map(|json| presence::parse(json).ok()).any(|entry| presence::is_person(&entry))
}

/// The rooms with a call now.
pub async fn rooms_with_a_call(redis: &ConnectionManager, prefix: &str) -> RedisResult<HashSet<RoomId>> {
    let mut redis = redis.clone();
    let live: Vec<String> =
        counted(redis::cmd("SMEMBERS").arg(keys::live_rooms(prefix)).query_async(&mut redis).await)?;
    let rooms: Vec<RoomId> = live.iter().filter_map(|id| RoomId::parse(id).ok()).collect();
    if rooms.is_empty() {
        return Ok(HashSet::new());
    }
    let mut pipe = redis::pipe();
    for room in &rooms {
        pipe.cmd("HVALS").arg(keys::room_peers(prefix, room));
    }
    let entries: Vec<Vec<String>> = counted(pipe.query_async(&mut redis).await)?;
    Ok(rooms
        .into_iter()
        .zip(entries)
        .filter(|(_, entries)| has_a_person(entries.iter().map(String::as_str)))
        .map(|(room, _)| room)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::has_a_person;

    #[test]
    fn a_room_with_only_recorders_and_cameras_has_no_call() {
        let recorder = r#"{"peer_id":"r","role":"recorder"}"#;
        let camera = r#"{"peer_id":"c","role":"camera"}"#;
        let member = r#"{"peer_id":"p","role":"member","display_name":"Ann"}"#;
        assert!(!has_a_person([]));
        assert!(!has_a_person([recorder, camera]));
        assert!(has_a_person([recorder, member]));
        assert!(!has_a_person(["not json"]));
    }
}
