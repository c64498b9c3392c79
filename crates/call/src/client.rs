//! The async shell that carries a [`Session`] over a WebSocket: it enters the first gateway that
//! admits the seat, feeds the session what the gateway says and when, and writes what the session
//! wants sent. [`Call::next`] is cancel-safe, so a service can `select!` on it beside its media.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use confab_protocol::signal::{ServerMessage, Signal, Welcome, server_message::Kind};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::session::{Event, Rejoin, Session};
use crate::{Pass, Signals};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
/// A round over the gateways in progress: kept across cancelled [`Call::next`]s, since dropping
/// it could drop a socket a gateway had just admitted (the seat would join, leave and join).
type Entering = Pin<Box<dyn Future<Output = anyhow::Result<(Socket, Welcome)>> + Send>>;

/// Who takes the seat, where, and how hard it tries to get (back) in.
pub struct Seat {
    pub pass: Pass,
    pub gateways: Vec<String>,
    pub rejoin: Rejoin,
}

/// A service's seat in a call.
pub struct Call {
    session: Session,
    pass: Pass,
    gateways: Vec<String>,
    socket: Option<Socket>,
    entering: Option<Entering>,
    /// Messages for the gateway, taken from the session, until the socket has them.
    outbox: VecDeque<String>,
    signals: Signals,
    signals_rx: mpsc::UnboundedReceiver<Signal>,
    /// Rounds over the gateways that failed since the seat was last in the call.
    failed_rounds: u32,
}

impl Call {
    /// A seat that enters its call on the first [`Call::next`].
    pub fn new(seat: Seat) -> Self {
        let (signals, signals_rx) = mpsc::unbounded_channel();
        Self {
            session: Session::new(seat.rejoin, Instant::now()),
            pass: seat.pass,
            gateways: seat.gateways,
            socket: None,
            entering: None,
            outbox: VecDeque::new(),
            signals,
            signals_rx,
            failed_rounds: 0,
        }
    }

    /// The call as the seat sees it: its peer id, who is in it, the recorder, the ICE servers.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Where to send offers, answers and candidates for peers (dropped while out of the call).
    pub fn signals(&self) -> Signals {
        self.signals.clone()
    }

    /// The next thing that happened in the call; `None` once it has ended (after
    /// [`Event::Ended`]). Cancel-safe: nothing is lost when the future is dropped.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.session.poll_event() {
                return Some(event);
            }
            self.flush().await;
            if self.session.is_ended() {
                if let Some(mut socket) = self.socket.take() {
                    let _ = socket.close(None).await;
                }
                return None;
            }
            match self.socket.as_mut() {
                Some(socket) => tokio::select! {
                    Some(signal) = self.signals_rx.recv() => self.session.signal(signal),
                    frame = socket.next() => match frame {
                        Some(Ok(Message::Text(text))) => match serde_json::from_str::<ServerMessage>(&text) {
                            Ok(message) => self.session.receive(message),
                            Err(error) => tracing::debug!(%error, "a gateway message the seat does not read"),
                        },
                        Some(Ok(Message::Close(_)) | Err(_)) | None => self.lose(),
                        Some(Ok(_)) => {}
                    },
                },
                None if self.entering.is_some() || self.session.wants_to_enter(Instant::now()) => {
                    let (gateways, pass) = (self.gateways.clone(), self.pass.clone());
                    let entering = self.entering.get_or_insert_with(|| Box::pin(enter(gateways, pass)));
                    tokio::select! {
                        Some(signal) = self.signals_rx.recv() => self.session.signal(signal),
                        entered = entering => {
                            self.entering = None;
                            self.entered(entered);
                        }
                    }
                }
                None => {
                    let wake = self.session.poll_timeout().map(tokio::time::Instant::from_std);
                    tokio::select! {
                        Some(signal) = self.signals_rx.recv() => self.session.signal(signal),
                        () = sleep_until(wake) => {}
                    }
                }
            }
        }
    }

    /// Leaves the call with `bye`.
    pub async fn leave(&mut self) {
        self.session.leave();
        while self.next().await.is_some() {}
    }

    fn entered(&mut self, entered: anyhow::Result<(Socket, Welcome)>) {
        match entered {
            Ok((socket, welcome)) => {
                self.socket = Some(socket);
                self.failed_rounds = 0;
                self.session.entered(welcome);
            }
            Err(error) => {
                // Said once, then quietly: the gateways may be down for a while.
                if self.failed_rounds == 0 {
                    tracing::warn!(error = %format!("{error:#}"), "no gateway admits the seat yet");
                } else {
                    tracing::debug!(error = %format!("{error:#}"), "no gateway admits the seat yet");
                }
                self.failed_rounds += 1;
                self.session.enter_failed(Instant::now());
            }
        }
    }

    /// Writes what the session wants sent; a socket that fails is lost.
    async fn flush(&mut self) {
        while let Some(message) = self.session.poll_transmit() {
            match serde_json::to_string(&message) {
                Ok(text) => self.outbox.push_back(text),
                Err(error) => tracing::warn!(%error, "a message for the gateway could not be written"),
            }
        }
        let Some(socket) = self.socket.as_mut() else { return self.outbox.clear() };
        if self.outbox.is_empty() {
            return;
        }
        // Each message leaves the outbox only once the socket has taken it (cancel-safety).
        while let Some(text) = self.outbox.front() {
            if socket.feed(Message::text(text.clone())).await.is_err() {
                return self.lose();
            }
            self.outbox.pop_front();
        }
        if socket.flush().await.is_err() {
            self.lose();
        }
    }

    fn lose(&mut self) {
        self.socket = None;
        self.outbox.clear();
        self.session.lost(Instant::now());
    }
}

async fn sleep_until(wake: Option<tokio::time::Instant>) {
    match wake {
        Some(wake) => tokio::time::sleep_until(wake).await,
        None => std::future::pending().await,
    }
}

/// Connects to the first of `gateways` that admits the holder of `pass`: the socket and its
/// `welcome`.
async fn enter(gateways: Vec<String>, pass: Pass) -> anyhow::Result<(Socket, Welcome)> {
    let mut last_error = anyhow::anyhow!("no gateway configured");
    for gateway in &gateways {
        match tokio::time::timeout(CONNECT_TIMEOUT, enter_via(gateway, &pass)).await {
            Ok(Ok(entered)) => return Ok(entered),
            Ok(Err(e)) => last_error = e,
            Err(_) => last_error = anyhow::anyhow!("{gateway} did not answer within {CONNECT_TIMEOUT:?}"),
        }
    }
    Err(last_error)
}

async fn enter_via(gateway: &str, pass: &Pass) -> anyhow::Result<(Socket, Welcome)> {
    let ticket = pass.ticket()?;
    let mut request = gateway.into_client_request()?;
    request.headers_mut().insert("sec-websocket-protocol", format!("confab.v1, confab.ticket.{ticket}").parse()?);
    // Nagle off: offers, answers and candidates are small frames that must not wait for an ACK.
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
        .await
        .with_context(|| format!("connecting to {gateway}"))?;
    while let Some(frame) = socket.next().await {
        if let Message::Text(text) = frame? {
            let first: ServerMessage = serde_json::from_str(&text).context("the gateway's first message")?;
            match first.kind {
                Some(Kind::Welcome(welcome)) => return Ok((socket, welcome)),
                Some(Kind::Error(error)) => bail!("{gateway} refused the {}: {}", pass.role.as_str(), error.code),
                _ => bail!("{gateway} did not begin with a welcome"),
            }
        }
    }
    bail!("{gateway} closed before its welcome")
}
