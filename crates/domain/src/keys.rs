//! The Redis key schema, spelled once (docs/protocol.md, "Redis keys and channels"). Every key
//! starts with the deployment's prefix, so deployments (and tests) can share one Redis. Lua scripts
//! get their keys from here too (as `KEYS`); they only build none of their own.
//!
//! Rooms, users and recorders appear in keys by their ids as text: the gateways know rooms only by
//! the string a ticket names, so the builders take anything that displays as the id.

use std::fmt::Display;

/// Pub/sub channel every gateway subscribes to: binary protobuf `confab.bus.v1.Control` from the API.
pub fn control_channel(prefix: &str) -> String {
    format!("{prefix}:control")
}

/// Pub/sub channel of one room's events between gateway instances (`confab.bus.v1.RoomEvent`).
pub fn room_channel(prefix: &str, room: impl Display) -> String {
    format!("{prefix}:room:{room}:bus")
}

/// The room id of a [`room_channel`] name.
pub fn room_of_channel<'a>(prefix: &str, channel: &'a str) -> Option<&'a str> {
    channel.strip_prefix(prefix)?.strip_prefix(":room:")?.strip_suffix(":bus")
}

/// Hash of one room's presence: peer id → presence entry ([`crate::presence`]), written by gateways.
pub fn room_peers(prefix: &str, room: impl Display) -> String {
    format!("{prefix}:room:{room}:peers")
}

/// Set of the peer ids a moderator let speak in one room's call (a lecture): added by the API
/// (only for a peer in [`room_peers`], in one step), taken out by the API when a moderator
/// revokes and by the gateways when the peer leaves; gone with the call's last peer. The media
/// server reads it when it enters the call.
pub fn room_speakers(prefix: &str, room: impl Display) -> String {
    format!("{prefix}:room:{room}:speakers")
}

/// Set of the ids of rooms with at least one peer, written by gateways.
pub fn live_rooms(prefix: &str) -> String {
    format!("{prefix}:rooms:live")
}

/// Heartbeat of one gateway instance, holding its live incarnation.
pub fn gateway_alive(prefix: &str, instance: impl Display) -> String {
    format!("{prefix}:instance:{instance}:alive")
}

/// The pattern (`SCAN MATCH`) of every gateway instance's heartbeat key.
pub fn gateway_alive_pattern(prefix: &str) -> String {
    format!("{}:instance:*:alive", glob_escape(prefix))
}

/// Stream of participants' arrivals and departures, appended by gateways, read by the API.
pub fn presence_events(prefix: &str) -> String {
    format!("{prefix}:presence:events")
}

/// Stream of recording jobs, appended by the API, read by the recorders.
pub fn recording_jobs(prefix: &str) -> String {
    format!("{prefix}:recordings:jobs")
}

/// Heartbeat of one recorder, renewed while it takes jobs.
pub fn recorder_alive(prefix: &str, recorder: impl Display) -> String {
    format!("{prefix}:recorder:{recorder}:alive")
}

/// The pattern (`SCAN MATCH`) of every recorder's heartbeat key.
pub fn recorder_alive_pattern(prefix: &str) -> String {
    format!("{}:recorder:*:alive", glob_escape(prefix))
}

/// Set of the ids of the media server instances that registered: each has its [`sfu_instance`]
/// entry while it is alive; an id whose entry has expired is dropped by the next placement.
pub fn sfu_instances(prefix: &str) -> String {
    format!("{prefix}:sfu:instances")
}

/// Hash of one media server instance in the registry: its media addresses, capacity and load,
/// and whether it is draining; renewed by its heartbeat with a short TTL.
pub fn sfu_instance(prefix: &str, instance: impl Display) -> String {
    format!("{prefix}:sfu:instance:{instance}")
}

/// Stream of the rooms placed on one media server instance, appended by whoever places them
/// (gateways, and an instance handing its rooms over), read by that instance only.
pub fn sfu_instance_jobs(prefix: &str, instance: impl Display) -> String {
    format!("{prefix}:sfu:instance:{instance}:jobs")
}

/// Which media server instance a room is placed on: its instance id, set when the room is
/// placed (short TTL), renewed while the instance serves it; so a room is placed once.
pub fn sfu_room(prefix: &str, room: impl Display) -> String {
    format!("{prefix}:sfu:room:{room}")
}

/// The pattern (`SCAN MATCH`) of every room's [`sfu_room`] key.
pub fn sfu_room_pattern(prefix: &str) -> String {
    format!("{}:sfu:room:*", glob_escape(prefix))
}

/// The room id of an [`sfu_room`] key.
pub fn room_of_sfu_room<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(prefix)?.strip_prefix(":sfu:room:")
}

/// Which ingest worker pulls a camera: its instance id, with a TTL.
pub fn camera_lease(prefix: &str, camera: impl Display) -> String {
    format!("{prefix}:camera:{camera}:lease")
}

/// A join ticket that has been used, kept until it would have expired anyway.
pub fn used_ticket(prefix: &str, jti: &str) -> String {
    format!("{prefix}:ticket:{jti}")
}

/// The API's fixed-window counter of `bucket` (`login_ip`, …) for one hashed subject.
pub fn rate_limit(prefix: &str, bucket: &str, subject_hash: &str) -> String {
    format!("{prefix}:rl:{bucket}:{subject_hash}")
}

/// Whether `id` may name a media server instance: 1–64 ASCII letters, digits, `.`, `_` or `-`,
/// so it reads the same in a key, a log line and the admin API's paths (`/v1/admin/sfus/{id}`).
pub fn is_instance_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `text` with Redis glob metacharacters escaped, to be matched literally in a `SCAN` pattern
/// (a prefix may contain any character).
fn glob_escape(text: &str) -> String {
    text.chars().fold(String::with_capacity(text.len()), |mut out, c| {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_spelled_as_they_always_were() {
        let p = "confab";
        assert_eq!(control_channel(p), "confab:control");
        assert_eq!(room_channel(p, "r1"), "confab:room:r1:bus");
        assert_eq!(room_peers(p, "r1"), "confab:room:r1:peers");
        assert_eq!(room_speakers(p, "r1"), "confab:room:r1:speakers");
        assert_eq!(live_rooms(p), "confab:rooms:live");
        assert_eq!(gateway_alive(p, "gw-1"), "confab:instance:gw-1:alive");
        assert_eq!(presence_events(p), "confab:presence:events");
        assert_eq!(recording_jobs(p), "confab:recordings:jobs");
        assert_eq!(recorder_alive(p, "rec-1"), "confab:recorder:rec-1:alive");
        assert_eq!(camera_lease(p, "c1"), "confab:camera:c1:lease");
        assert_eq!(sfu_instances(p), "confab:sfu:instances");
        assert_eq!(sfu_instance(p, "sfu-1"), "confab:sfu:instance:sfu-1");
        assert_eq!(sfu_instance_jobs(p, "sfu-1"), "confab:sfu:instance:sfu-1:jobs");
        assert_eq!(sfu_room(p, "r1"), "confab:sfu:room:r1");
        assert_eq!(used_ticket(p, "abc"), "confab:ticket:abc");
        assert_eq!(rate_limit(p, "login_ip", "00ff"), "confab:rl:login_ip:00ff");
    }

    #[test]
    fn a_room_channel_names_its_room() {
        assert_eq!(room_of_channel("a:b", &room_channel("a:b", "r1")), Some("r1"));
        assert_eq!(room_of_channel("a:b", &control_channel("a:b")), None);
        assert_eq!(room_of_channel("other", &room_channel("a:b", "r1")), None);
    }

    #[test]
    fn an_sfu_room_key_names_its_room() {
        assert_eq!(room_of_sfu_room("a:b", &sfu_room("a:b", "r1")), Some("r1"));
        assert_eq!(room_of_sfu_room("a:b", &sfu_instance("a:b", "sfu-1")), None);
        assert_eq!(room_of_sfu_room("other", &sfu_room("a:b", "r1")), None);
    }

    #[test]
    fn instance_ids_are_short_and_plain() {
        assert!(is_instance_id("sfu-0a1b2c3d4e5f"));
        assert!(is_instance_id("sfu_1.eu-west"));
        assert!(is_instance_id(&"a".repeat(64)));
        for bad in ["", "sfu 1", "sfu:1", "sfu/1", "sfü", &"a".repeat(65)] {
            assert!(!is_instance_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn glob_metacharacters_are_escaped() {
        assert_eq!(glob_escape("confab"), "confab");
        assert_eq!(glob_escape(r"a*b?[c]\\"), r"a\*b\?\[c\]\\\\");
    }

    #[test]
    fn patterns_match_only_this_prefix() {
        assert_eq!(gateway_alive_pattern("confab"), "confab:instance:*:alive");
        assert_eq!(recorder_alive_pattern(r"a*b?[c]\"), r"a\*b\?\[c\]\\:recorder:*:alive");
        assert_eq!(sfu_room_pattern("a*"), r"a\*:sfu:room:*");
    }
}
