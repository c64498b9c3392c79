//! Property tests of frame decoding, the gateway's first contact with untrusted input: whatever
//! arrives, `decode` returns a command or a named protocol error, and never panics.

use confab_gateway::session::decode;
use proptest::prelude::*;

const VALID: &[&str] = &[
    r#"{"signal": {"to": "p0", "sdp": {"type": "offer", "sdp": "v=0"}}}"#,
    r#"{"signal": {"to": "p0", "candidate": {"candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host", "sdp_mid": "0", "sdp_mline_index": 0}}}"#,
    r#"{"broadcast": {"data": "hello"}}"#,
    r#"{"ping": {"timestamp_ms": "1795000000000"}}"#,
    r#"{"bye": {}}"#,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,512}") {
        if let Err(error) = decode(&text) {
            prop_assert_eq!(error.code, "malformed_message");
        }
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        which in 0..VALID.len(),
        cut in 0usize..200,
        at in 0usize..200,
        insert in "[\\[\\]{}\":,0-9a-z\\\\ -]{0,8}",
    ) {
        let frame = VALID[which];
        let at = at.min(frame.len());
        let end = (at + cut % 16).min(frame.len());
        if frame.is_char_boundary(at) && frame.is_char_boundary(end) {
            let mutated = format!("{}{insert}{}", &frame[..at], &frame[end..]);
            let _ = decode(&mutated);
        }
    }

    #[test]
    fn deeply_nested_json_is_refused_not_overflowed(depth in 1usize..5000) {
        let frame = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        prop_assert!(decode(&frame).is_err());
    }
}

#[test]
fn the_valid_frames_decode() {
    for frame in VALID {
        assert!(decode(frame).is_ok(), "{frame}");
    }
}
