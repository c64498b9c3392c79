//! The JSON on the WebSocket is exactly docs/protocol.md's: one key per frame, snake_case fields, and
//! lowerCamelCase accepted on read.

use confab_protocol::signal::{ClientMessage, ServerMessage, Signal, client_message, server_message, signal};
use serde_json::{Value, json};

fn server(text: &str) -> ServerMessage {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn the_spec_examples_parse_and_serialize_back_unchanged() {
    let examples = [
        r#"{"welcome": {"peer_id": "p1", "room_id": "r1", "peers": [{"peer_id": "p0", "user_id": "u0", "display_name": "Ann", "role": "owner"}], "ice_servers": [{"urls": ["stun:stun.example.org"]}], "resume_token": "t", "recording": false}}"#,
        r#"{"signal": {"from": "p1", "sdp": {"type": "offer", "sdp": "v=0"}}}"#,
        r#"{"peer_left": {"peer_id": "p0", "reason": "left"}}"#,
        r#"{"error": {"code": "room_full", "message": "the room is full"}}"#,
    ];
    for text in examples {
        let message = server(text);
        let round_trip: Value = serde_json::to_value(&message).unwrap();
        let original: Value = serde_json::from_str(text).unwrap();
        // Default values (false, "") are omitted on output, as proto3 JSON allows.
        let mut expected = original.clone();
        if let Some(welcome) = expected.get_mut("welcome") {
            welcome.as_object_mut().unwrap().remove("recording");
        }
        assert_eq!(round_trip, expected, "{text}");
    }
}

#[test]
fn client_signals_carry_an_offer_or_a_candidate() {
    let offer: ClientMessage =
        serde_json::from_value(json!({"signal": {"to": "p0", "sdp": {"type": "offer", "sdp": "v=0"}}})).unwrap();
    let Some(client_message::Kind::Signal(signal)) = offer.kind else { panic!("not a signal") };
    assert_eq!(signal.to, "p0");
    assert!(matches!(signal.payload, Some(signal::Payload::Sdp(ref s)) if s.r#type == "offer"));

    let candidate: ClientMessage = serde_json::from_value(json!({
        "signal": {"to": "p0", "candidate": {"candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host", "sdp_mid": "0", "sdp_mline_index": 0}}
    }))
    .unwrap();
    let Some(client_message::Kind::Signal(signal)) = candidate.kind else { panic!("not a signal") };
    assert!(matches!(signal.payload, Some(signal::Payload::Candidate(ref c)) if c.sdp_mid.as_deref() == Some("0")));
}

#[test]
fn a_candidate_keeps_mline_index_0_and_mid_0_through_the_gateway() {
    let sent = r#"{"signal": {"to": "p0", "candidate": {"candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host", "sdp_mid": "0", "sdp_mline_index": 0}}}"#;
    let Some(client_message::Kind::Signal(signal)) = serde_json::from_str::<ClientMessage>(sent).unwrap().kind else {
        panic!("not a signal")
    };
    let relayed = ServerMessage {
        kind: Some(server_message::Kind::Signal(Signal { to: String::new(), from: "p1".into(), ..signal })),
    };
    let printed: serde_json::Value = serde_json::to_value(&relayed).unwrap();
    assert_eq!(printed["signal"]["candidate"]["sdp_mline_index"], json!(0));
    assert_eq!(printed["signal"]["candidate"]["sdp_mid"], json!("0"));
    let without: ClientMessage =
        serde_json::from_value(json!({"signal": {"to": "p0", "candidate": {"candidate": "candidate:1"}}})).unwrap();
    let Some(client_message::Kind::Signal(signal)) = without.kind else { panic!("not a signal") };
    assert!(
        matches!(signal.payload, Some(signal::Payload::Candidate(ref c)) if c.sdp_mid.is_none() && c.sdp_mline_index.is_none())
    );
}

#[test]
fn lower_camel_case_is_accepted_on_read() {
    let message = server(r#"{"peerLeft": {"peerId": "p0", "reason": "left"}}"#);
    assert!(matches!(message.kind, Some(server_message::Kind::PeerLeft(ref l)) if l.peer_id == "p0"));
}

#[test]
fn malformed_messages_are_errors_not_panics() {
    for text in [
        "",
        "{}x",
        "[]",
        r#"{"signal": 5}"#,
        r#"{"signal": {"to": 5}}"#,
        r#"{"nonsense": {}}"#,
        r#"{"signal": {"sdp": {"type": "offer"}, "candidate": {"candidate": "c"}}}"#,
        r#"{"ping": {"timestamp_ms": -1}}"#,
    ] {
        assert!(serde_json::from_str::<ClientMessage>(text).is_err(), "{text:?} accepted");
    }
}

#[test]
fn a_mesh_signal_prints_exactly_as_before_the_media_server_fields() {
    let mesh = r#"{"signal":{"from":"p1","sdp":{"type":"offer","sdp":"v=0"}}}"#;
    assert_eq!(serde_json::to_string(&server(mesh)).unwrap(), mesh, "an empty connection is left out");
}

#[test]
fn media_server_messages_parse_and_serialize_back_unchanged() {
    let examples = [
        r#"{"signal": {"from": "sfu-1", "connection": "subscribe", "sdp": {"type": "offer", "sdp": "v=0"}}}"#,
        r#"{"signal": {"from": "sfu-1", "speaker": {"peer_id": "p2"}}}"#,
        r#"{"signal": {"from": "p1", "track_request": {"track_id": "cam-7", "max_width": 320, "max_height": 180}}}"#,
        r#"{"signal": {"from": "p1", "track_request": {"track_id": "cam-7", "paused": true}}}"#,
        r#"{"welcome": {"peer_id": "p1", "room_id": "r1", "resume_token": "t", "sfu": {"peer_id": "sfu-1"}}}"#,
        r#"{"media_changed": {"sfu": {"peer_id": "sfu-1"}}}"#,
        r#"{"media_changed": {}}"#,
        r#"{"resync": {"peers": [{"peer_id": "p0"}], "sfu": {"peer_id": "sfu-1"}}}"#,
        r#"{"speak_granted": {"peer_id": "p3"}}"#,
        r#"{"speak_revoked": {"peer_id": "p3"}}"#,
    ];
    for text in examples {
        let round_trip: Value = serde_json::to_value(server(text)).unwrap();
        assert_eq!(round_trip, serde_json::from_str::<Value>(text).unwrap(), "{text}");
    }
    let granted = server(r#"{"speakGranted": {"peerId": "p3"}}"#);
    assert!(matches!(granted.kind, Some(server_message::Kind::SpeakGranted(ref g)) if g.peer_id == "p3"));
    let back_to_mesh = server(r#"{"media_changed": {}}"#);
    assert!(matches!(back_to_mesh.kind, Some(server_message::Kind::MediaChanged(ref m)) if m.sfu.is_none()));
}

#[test]
fn a_signal_carries_one_payload_of_the_four() {
    let both = json!({"signal": {"to": "sfu-1", "speaker": {"peer_id": "p2"}, "track_request": {"track_id": "t"}}});
    assert!(serde_json::from_value::<ClientMessage>(both).is_err());
    let request: ClientMessage =
        serde_json::from_value(json!({"signal": {"to": "sfu-1", "trackRequest": {"trackId": "t", "maxWidth": 640}}}))
            .unwrap();
    let Some(client_message::Kind::Signal(signal)) = request.kind else { panic!("not a signal") };
    assert!(matches!(signal.payload, Some(signal::Payload::TrackRequest(ref r)) if r.max_width == 640));
}
