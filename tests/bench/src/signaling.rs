//! The signaling messages the load generators and the bare relay send and read, in the protocol's
//! typed form (`confab-protocol`), so a benchmark speaks exactly what `docs/protocol.md` says.

use anyhow::bail;
use confab_protocol::signal::server_message::Kind;
use confab_protocol::signal::{ClientMessage, ServerMessage, client_message};

/// A client message as the text frame that carries it.
pub fn client_text(kind: client_message::Kind) -> String {
    serde_json::to_string(&ClientMessage { kind: Some(kind) }).expect("protocol messages serialize")
}

/// A server message as the text frame that carries it.
pub fn server_text(kind: Kind) -> String {
    serde_json::to_string(&ServerMessage { kind: Some(kind) }).expect("protocol messages serialize")
}

/// A server message's kind; `None` for text that is not one (or of a type this build does not know).
pub fn read(text: &str) -> Option<Kind> {
    serde_json::from_str::<ServerMessage>(text).ok()?.kind
}

/// The peer id of a connection's first message, its `welcome`; an error naming what came instead.
pub fn welcome_peer_id(text: &str) -> anyhow::Result<String> {
    match read(text) {
        Some(Kind::Welcome(welcome)) => Ok(welcome.peer_id),
        Some(Kind::Error(error)) => bail!("the gateway refused the connection: {}", error.code),
        _ => bail!("expected a welcome, got another message"),
    }
}
