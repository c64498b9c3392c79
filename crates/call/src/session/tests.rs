//! The session's rules, driven by the JSON a gateway sends (docs/protocol.md) and a made-up clock.

use super::*;

const SECOND: Duration = Duration::from_secs(1);

fn recorder_policy() -> Rejoin {
    Rejoin { backoff: Duration::from_millis(500), give_up_after: Some(30 * SECOND), retry_first_entry: false }
}

fn camera_policy() -> Rejoin {
    Rejoin { backoff: Duration::from_millis(500), give_up_after: None, retry_first_entry: true }
}

fn server(json: &str) -> ServerMessage {
    serde_json::from_str(json).expect("a server message")
}

fn welcome(json: &str) -> Welcome {
    let Some(Kind::Welcome(welcome)) = server(json).kind else { panic!("not a welcome") };
    welcome
}

fn events(session: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

fn sent(session: &mut Session) -> Vec<String> {
    std::iter::from_fn(|| session.poll_transmit()).map(|m| serde_json::to_string(&m).unwrap()).collect()
}

fn peer(peer_id: &str, role: &str) -> Peer {
    Peer {
        peer_id: peer_id.into(),
        user_id: format!("u-{peer_id}"),
        display_name: peer_id.to_uppercase(),
        role: role.into(),
    }
}

/// A session in the call as `me`, with Ann (member) and a camera already there.
fn in_call(now: Instant) -> Session {
    let mut session = Session::new(recorder_policy(), now);
    assert!(session.wants_to_enter(now));
    session.entered(welcome(
        r#"{"welcome":{"peer_id":"me","room_id":"r","peers":[
            {"peer_id":"ann","user_id":"u-ann","display_name":"ANN","role":"member"},
            {"peer_id":"cam","user_id":"u-cam","display_name":"CAM","role":"camera"}],
           "ice_servers":[{"urls":["stun:stun.example:3478"]}]}}"#,
    ));
    session
}

#[test]
fn a_welcome_puts_the_seat_in_the_call_with_its_peers_and_ice_servers() {
    let now = Instant::now();
    let mut session = in_call(now);
    assert_eq!(session.peer_id(), Some("me"));
    assert!(!session.wants_to_enter(now) && session.poll_timeout().is_none());
    assert_eq!(
        events(&mut session),
        [Event::Joined { peer_id: "me".into(), peers: vec![peer("ann", "member"), peer("cam", "camera")], sfu: None }]
    );
    assert_eq!(session.peer("ann"), Some(&peer("ann", "member")));
    assert_eq!(session.ice_servers()[0].urls, ["stun:stun.example:3478"]);
}

#[test]
fn the_roster_follows_joins_leaves_and_resyncs() {
    let mut session = in_call(Instant::now());
    events(&mut session);
    session.receive(server(
        r#"{"peer_joined":{"peer":{"peer_id":"bob","user_id":"u-bob","display_name":"BOB","role":"owner"}}}"#,
    ));
    session.receive(server(r#"{"peer_left":{"peer_id":"ann","reason":"left"}}"#));
    assert_eq!(
        events(&mut session),
        [Event::PeerJoined(peer("bob", "owner")), Event::PeerLeft { peer_id: "ann".into() }]
    );
    assert!(session.peer("ann").is_none() && session.peer("bob").is_some());

    // Bob and the camera were missed leaving, Dee joining: each gone one is told, then the list.
    session.receive(server(
        r#"{"resync":{"peers":[{"peer_id":"dee","user_id":"u-dee","display_name":"DEE","role":"member"}]}}"#,
    ));
    assert_eq!(
        events(&mut session),
        [
            Event::PeerLeft { peer_id: "bob".into() },
            Event::PeerLeft { peer_id: "cam".into() },
            Event::Resync { peers: vec![peer("dee", "member")] },
        ]
    );
    assert!(session.peer("bob").is_none() && session.peer("dee").is_some());
}

#[test]
fn a_new_recorder_replaces_the_one_before_and_a_stop_names_its_own() {
    let mut session = in_call(Instant::now());
    events(&mut session);
    session.receive(server(r#"{"recording_started":{"recording_id":"x","recorder_peer_id":"rec-1"}}"#));
    assert_eq!(session.recorder(), Some("rec-1"));
    // The recorder rejoined with a new peer id before its stop reached this gateway.
    session.receive(server(r#"{"recording_started":{"recording_id":"x","recorder_peer_id":"rec-2"}}"#));
    session.receive(server(r#"{"recording_stopped":{"recording_id":"x","recorder_peer_id":"rec-1"}}"#));
    assert_eq!(session.recorder(), Some("rec-2"));
    assert_eq!(
        events(&mut session),
        [
            Event::RecordingStarted { recorder_peer_id: "rec-1".into() },
            Event::RecordingStopped { recorder_peer_id: "rec-1".into() },
            Event::RecordingStarted { recorder_peer_id: "rec-2".into() },
            Event::RecordingStopped { recorder_peer_id: "rec-1".into() },
        ]
    );
    session.receive(server(r#"{"recording_stopped":{"recording_id":"x","recorder_peer_id":"rec-2"}}"#));
    assert_eq!(session.recorder(), None);
}

#[test]
fn leave_to_speak_comes_out_as_events_in_the_order_it_was_given_and_taken() {
    let mut session = in_call(Instant::now());
    events(&mut session);
    session.receive(server(r#"{"speak_granted":{"peer_id":"ann"}}"#));
    session.receive(server(r#"{"speak_revoked":{"peer_id":"ann"}}"#));
    session.receive(server(r#"{"speak_granted":{"peer_id":"ann"}}"#));
    assert_eq!(
        events(&mut session),
        [
            Event::SpeakGranted { peer_id: "ann".into() },
            Event::SpeakRevoked { peer_id: "ann".into() },
            Event::SpeakGranted { peer_id: "ann".into() },
        ]
    );
    assert!(sent(&mut session).is_empty(), "nothing to answer");

    let mut entering = Session::new(recorder_policy(), Instant::now());
    entering.receive(server(r#"{"speak_granted":{"peer_id":"ann"}}"#));
    assert!(events(&mut entering).is_empty(), "not in the call yet: the media server reads the grants on entering");
}

#[test]
fn signals_come_out_typed_and_unknown_sdp_types_are_dropped() {
    let mut session = in_call(Instant::now());
    events(&mut session);
    session.receive(server(r#"{"signal":{"from":"ann","sdp":{"type":"offer","sdp":"v=0"}}}"#));
    session.receive(server(r#"{"signal":{"from":"ann","sdp":{"type":"answer","sdp":"v=1"}}}"#));
    session.receive(server(r#"{"signal":{"from":"ann","sdp":{"type":"rollback"}}}"#));
    session.receive(server(
        r#"{"signal":{"from":"ann","candidate":{"candidate":"candidate:1","sdp_mid":"0","sdp_mline_index":0}}}"#,
    ));
    session.receive(server(r#"{"signal":{"from":"ann"}}"#));
    let candidate = IceCandidate {
        candidate: "candidate:1".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        username_fragment: String::new(),
    };
    assert_eq!(
        events(&mut session),
        [
            Event::Offer { from: "ann".into(), sdp: "v=0".into() },
            Event::Answer { from: "ann".into(), sdp: "v=1".into() },
            Event::Candidate { from: "ann".into(), candidate },
        ]
    );
}

#[test]
fn a_ping_is_answered_and_signals_go_out_only_while_in_the_call() {
    let now = Instant::now();
    let mut session = in_call(now);
    session.receive(server(r#"{"ping":{"timestamp_ms":"1795000000000"}}"#));
    session.signal(Signal { to: "ann".into(), ..Signal::default() });
    assert_eq!(sent(&mut session), [r#"{"pong":{"timestamp_ms":"1795000000000"}}"#, r#"{"signal":{"to":"ann"}}"#]);

    session.signal(Signal { to: "ann".into(), ..Signal::default() });
    session.lost(now);
    session.signal(Signal { to: "ann".into(), ..Signal::default() });
    assert!(sent(&mut session).is_empty(), "signals of the lost seat are dropped");
}

#[test]
fn a_lost_gateway_is_retried_at_once_then_after_each_backoff_until_the_limit() {
    let start = Instant::now();
    let mut session = in_call(start);
    events(&mut session);
    session.lost(start);
    assert_eq!(events(&mut session), [Event::Lost]);
    assert_eq!(session.peer_id(), None);
    assert!(session.wants_to_enter(start));
    session.enter_failed(start);
    assert!(!session.wants_to_enter(start));
    assert_eq!(session.poll_timeout(), Some(start + Duration::from_millis(500)));
    // Rounds fail for 30 s: then the call is given up.
    session.enter_failed(start + 29 * SECOND);
    assert!(!session.is_ended());
    session.enter_failed(start + 30 * SECOND);
    assert_eq!(events(&mut session), [Event::Ended(Ended::GaveUp)]);
    assert!(session.is_ended() && session.poll_timeout().is_none());
}

#[test]
fn a_rejoin_in_time_is_a_new_seat_with_a_fresh_view() {
    let start = Instant::now();
    let mut session = in_call(start);
    session.receive(server(r#"{"recording_started":{"recording_id":"x","recorder_peer_id":"rec-1"}}"#));
    session.lost(start);
    session.enter_failed(start + SECOND);
    session.entered(welcome(r#"{"welcome":{"peer_id":"me-2","room_id":"r","peers":[]}}"#));
    assert_eq!(session.peer_id(), Some("me-2"));
    assert_eq!((session.recorder(), session.peer("ann")), (None, None));
    assert_eq!(events(&mut session).last(), Some(&Event::Joined { peer_id: "me-2".into(), peers: vec![], sfu: None }));
}

#[test]
fn the_first_entry_is_one_round_unless_the_policy_retries_it() {
    let now = Instant::now();
    let mut recorder = Session::new(recorder_policy(), now);
    recorder.enter_failed(now);
    assert_eq!(events(&mut recorder), [Event::Ended(Ended::GaveUp)]);

    let mut camera = Session::new(camera_policy(), now);
    for round in 0..1000 {
        camera.enter_failed(now + round * SECOND);
    }
    assert!(!camera.is_ended() && events(&mut camera).is_empty(), "a camera never gives up");
}

#[test]
fn the_call_ends_on_room_closed_kicked_or_leave_and_says_so_once() {
    let mut closed = in_call(Instant::now());
    events(&mut closed);
    closed.receive(server(r#"{"room_closed":{}}"#));
    closed.receive(server(r#"{"peer_left":{"peer_id":"ann"}}"#));
    closed.leave();
    assert_eq!(events(&mut closed), [Event::Ended(Ended::RoomClosed)]);
    assert!(sent(&mut closed).is_empty(), "no bye after the room is gone");

    let mut kicked = in_call(Instant::now());
    events(&mut kicked);
    kicked.receive(server(r#"{"kicked":{"reason":"deleted"}}"#));
    assert_eq!(events(&mut kicked), [Event::Ended(Ended::Kicked("deleted".into()))]);

    let mut leaving = in_call(Instant::now());
    events(&mut leaving);
    leaving.leave();
    assert_eq!(sent(&mut leaving), [r#"{"bye":{}}"#]);
    assert_eq!(events(&mut leaving), [Event::Ended(Ended::Left)]);
}

#[test]
fn messages_out_of_place_change_nothing() {
    let now = Instant::now();
    let mut entering = Session::new(recorder_policy(), now);
    entering.receive(server(r#"{"peer_joined":{"peer":{"peer_id":"bob"}}}"#));
    entering.lost(now);
    assert!(events(&mut entering).is_empty() && entering.peer("bob").is_none());

    let mut session = in_call(now);
    events(&mut session);
    session.receive(server(r#"{"welcome":{"peer_id":"other"}}"#));
    session.receive(server(r#"{"peer_joined":{}}"#));
    session.receive(server(r#"{"error":{"code":"unknown_peer","message":"no such peer"}}"#));
    session.receive(ServerMessage { kind: None });
    session.entered(welcome(r#"{"welcome":{"peer_id":"again"}}"#));
    session.enter_failed(now);
    assert_eq!(session.peer_id(), Some("me"));
    assert!(events(&mut session).is_empty() && sent(&mut session).is_empty());
}

#[test]
fn the_media_server_the_call_goes_through_is_told_at_the_welcome_and_at_each_change() {
    let now = Instant::now();
    let mut session = Session::new(camera_policy(), now);
    session.entered(welcome(r#"{"welcome":{"peer_id":"me","room_id":"r","peers":[],"sfu":{"peer_id":"sfu-1"}}}"#));
    assert_eq!(
        events(&mut session),
        [Event::Joined { peer_id: "me".into(), peers: vec![], sfu: Some("sfu-1".into()) }]
    );
    assert_eq!(session.sfu(), Some("sfu-1"));

    // Another seat takes over, then the SFU leaves: back to mesh.
    session.receive(server(r#"{"media_changed":{"sfu":{"peer_id":"sfu-2"}}}"#));
    session.receive(server(r#"{"media_changed":{}}"#));
    assert_eq!(
        events(&mut session),
        [Event::MediaChanged { sfu: Some("sfu-2".into()) }, Event::MediaChanged { sfu: None }]
    );
    assert_eq!(session.sfu(), None);

    // A resync tells a change the seat missed, before the peers; one that changes nothing, nothing.
    session.receive(server(r#"{"resync":{"peers":[],"sfu":{"peer_id":"sfu-3"}}}"#));
    session.receive(server(r#"{"resync":{"peers":[],"sfu":{"peer_id":"sfu-3"}}}"#));
    session.receive(server(r#"{"media_changed":{"sfu":{"peer_id":"sfu-3"}}}"#));
    assert_eq!(
        events(&mut session),
        [
            Event::MediaChanged { sfu: Some("sfu-3".into()) },
            Event::Resync { peers: vec![] },
            Event::Resync { peers: vec![] },
        ]
    );

    // A new seat after a lost gateway starts from its own welcome.
    session.lost(now);
    session.entered(welcome(r#"{"welcome":{"peer_id":"me-2","room_id":"r","peers":[]}}"#));
    assert_eq!(events(&mut session).last(), Some(&Event::Joined { peer_id: "me-2".into(), peers: vec![], sfu: None }));
    assert_eq!(session.sfu(), None);
}
