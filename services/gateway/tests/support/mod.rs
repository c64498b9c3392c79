//! What the gateway tests need beyond confab-testkit: tickets for rooms of a chosen capacity or
//! with chosen media settings, a fence that shows a peer heard nothing it should not have, and
//! what a peer hears over a stretch of time.

#![allow(dead_code)] // each test binary uses its own part

use std::time::{Duration, Instant};

use confab_domain::ticket::{TicketClaims, TicketHolder};
use confab_domain::{MediaRouting, RoomMode, RoomRole};
use confab_protocol::signal::signal::Payload;
use confab_protocol::signal::{SessionDescription, Signal};
use confab_testkit::{Kind, Signaling, TestKeys};

/// How long a test waits for something the gateway does in the background (a sweep, a park).
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A member's ticket for a room of `capacity`, as the API issues it (the testkit's are for rooms
/// of 4).
pub fn member_ticket(keys: &TestKeys, room: &str, name: &str, user: &str, capacity: u32) -> String {
    keys.keys.sign(&member_claims(room, name, user, capacity)).unwrap()
}

/// A member's ticket for a room of 8 whose settings are `media` and `mode`, as the API issues it.
pub fn ticket_with_settings(keys: &TestKeys, room: &str, name: &str, media: MediaRouting, mode: RoomMode) -> String {
    let claims = member_claims(room, name, &uuid::Uuid::new_v4().to_string(), 8).with_room_settings(media, mode);
    keys.keys.sign(&claims).unwrap()
}

fn member_claims(room: &str, name: &str, user: &str, capacity: u32) -> TicketClaims {
    let holder = TicketHolder {
        user_id: user.to_owned(),
        display_name: name.to_owned(),
        room_id: room.to_owned(),
        role: RoomRole::Member.into(),
        max_participants: capacity,
        recording_id: None,
    };
    TicketClaims::issue("confab", holder, chrono::Utc::now().timestamp())
}

/// Shows that `to` heard nothing since its last message, without waiting out a quiet window:
/// `from` signals it now, and that signal must be the next thing `to` hears. Whatever the gateway
/// had queued for `to` before would come first, so `from`'s signal must be queued after what is
/// being ruled out: send it once the gateway has visibly acted on that.
pub async fn hears_nothing_before_a_signal(to: &mut Signaling, to_id: &str, from: &mut Signaling, from_id: &str) {
    let fence = Payload::Sdp(SessionDescription { r#type: "offer".into(), sdp: "v=0 fence".into() });
    from.signal(to_id, fence.clone()).await;
    let expected = Kind::Signal(Signal { from: from_id.to_owned(), payload: Some(fence), ..Signal::default() });
    assert_eq!(to.recv().await, expected, "the first thing heard since is the fence");
}

/// Everything `peer` hears within `watch`: for what only a stretch of time can show.
pub async fn heard_within(peer: &mut Signaling, watch: Duration) -> Vec<Kind> {
    let deadline = Instant::now() + watch;
    let mut heard = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now())
        && let Some(message) = peer.recv_within(left).await
    {
        heard.push(message);
    }
    heard
}
