//! Which rooms have a call going on, from the gateways' presence in Redis (docs/protocol.md):
//! `{prefix}:rooms:live` lists rooms with at least one peer and `{prefix}:room:{id}:peers` holds
//! their presence entries. Recorders and cameras are peers too, but a room with only those has
//! nobody watching: a call needs one other peer.

use std::collections::HashSet;

use redis::RedisResult;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::leases::counted;
use crate::store::RoomId;

/// Presence roles that are not people.
const NOT_PEOPLE: &[&str] = &["recorder", "camera"];

#[derive(serde::Deserialize)]
struct Presence {
    #[serde(default)]
    role: String,
}

/// Whether a room's presence entries (JSON) include a person.
pub fn has_a_person<'a>(entries: impl IntoIterator<Item = &'a str>) -> bool {
    entries
        .into_iter()
        .filter_map(|json| serde_json::from_str::<Presence>(json).ok())
        .any(|p| !NOT_PEOPLE.contains(&p.role.as_str()))
}

/// The rooms with a call now.
pub async fn rooms_with_a_call(redis: &ConnectionManager, prefix: &str) -> RedisResult<HashSet<RoomId>> {
    let mut redis = redis.clone();
    let live: Vec<String> =
        counted(redis::cmd("SMEMBERS").arg(format!("{prefix}:rooms:live")).query_async(&mut redis).await)?;
    let rooms: Vec<RoomId> = live.iter().filter_map(|id| Uuid::parse_str(id).ok()).map(RoomId).collect();
    if rooms.is_empty() {
        return Ok(HashSet::new());
    }
    let mut pipe = redis::pipe();
    for room in &rooms {
        pipe.cmd("HVALS").arg(format!("{prefix}:room:{room}:peers"));
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
