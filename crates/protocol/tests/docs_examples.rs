//! Every example message in docs/protocol.md parses as the type it documents.

use confab_protocol::signal::{ClientMessage, ServerMessage};

/// The lines of the JSON code block that follows `marker` in the protocol document.
fn examples(marker: &str) -> Vec<String> {
    let doc = include_str!("../../../docs/protocol.md");
    let after = &doc[doc.find(marker).unwrap_or_else(|| panic!("{marker} not in docs/protocol.md"))..];
    let block = after.split("```json").nth(1).unwrap().split("```").next().unwrap();
    block.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

#[test]
fn every_client_example_parses() {
    let lines = examples("<!-- client examples");
    assert!(lines.len() >= 5);
    for line in lines {
        let message: ClientMessage = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(message.kind.is_some(), "{line}");
    }
}

#[test]
fn every_server_example_parses() {
    let lines = examples("<!-- server examples");
    assert!(lines.len() >= 10);
    for line in lines {
        let message: ServerMessage = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(message.kind.is_some(), "{line}");
    }
}
