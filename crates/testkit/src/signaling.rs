//! A participant's signaling connection that speaks the protocol's typed messages: what a test
//! sends and reads is checked by the same types the services use, not by string keys.

use std::time::Duration;

use confab_protocol::signal::server_message::Kind;
use confab_protocol::signal::signal::Payload;
use confab_protocol::signal::{Bye, ClientMessage, ServerMessage, Signal, Welcome, client_message};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for the gateway's next message.
const PATIENCE: Duration = Duration::from_secs(10);

pub struct Signaling {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Signaling {
    /// Joins through `gateway` with `ticket`: the connection and its `welcome`.
    pub async fn join(gateway: &str, ticket: &str) -> (Self, Welcome) {
        let mut request = gateway.into_client_request().unwrap();
        let protocols = format!("confab.v1, confab.ticket.{ticket}");
        request.headers_mut().insert("sec-websocket-protocol", protocols.parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut signaling = Self { socket };
        match signaling.recv().await {
            Kind::Welcome(welcome) => (signaling, welcome),
            other => panic!("the gateway began with {other:?}, not a welcome"),
        }
    }

    pub async fn send(&mut self, kind: client_message::Kind) {
        let text = serde_json::to_string(&ClientMessage { kind: Some(kind) }).unwrap();
        self.socket.send(Message::text(text)).await.unwrap();
    }

    /// Sends an offer, answer or candidate to `to`.
    pub async fn signal(&mut self, to: &str, payload: Payload) {
        self.send_signal(Signal { to: to.to_owned(), payload: Some(payload), ..Signal::default() }).await;
    }

    pub async fn send_signal(&mut self, signal: Signal) {
        self.send(client_message::Kind::Signal(signal)).await;
    }

    /// Leaves with `bye`.
    pub async fn bye(&mut self) {
        self.send(client_message::Kind::Bye(Bye {})).await;
    }

    /// The next message, within 10 s.
    pub async fn recv(&mut self) -> Kind {
        self.recv_within(PATIENCE).await.expect("a message from the gateway within 10 s")
    }

    /// The next message, or `None` if none comes within `limit`.
    pub async fn recv_within(&mut self, limit: Duration) -> Option<Kind> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next()).await.ok()?;
            if let Message::Text(text) = frame.expect("the socket stays open").unwrap() {
                let message: ServerMessage = serde_json::from_str(&text).unwrap();
                return Some(message.kind.expect("a message of a known type"));
            }
        }
    }

    /// The first of the next messages that `pick` takes, skipping the others (within 10 s each).
    pub async fn next_of<T>(&mut self, mut pick: impl FnMut(Kind) -> Option<T>) -> T {
        loop {
            if let Some(picked) = pick(self.recv().await) {
                return picked;
            }
        }
    }

    /// Like [`Signaling::next_of`], but `None` once `limit` passes.
    pub async fn next_of_within<T>(&mut self, limit: Duration, mut pick: impl FnMut(Kind) -> Option<T>) -> Option<T> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Some(picked) = pick(self.recv_within(left).await?) {
                return Some(picked);
            }
        }
    }
}

/// The next message of one type: `next!(signaling, RecordingStarted)` is the next
/// `recording_started`, skipping the others.
#[macro_export]
macro_rules! next {
    ($signaling:expr, $kind:ident) => {
        $signaling
            .next_of(|kind| match kind {
                $crate::Kind::$kind(message) => Some(message),
                _ => None,
            })
            .await
    };
}
