//! The Confab target: our SFU, reached as docs/protocol.md says. The tool signs join tickets with
//! the deployment's key (as the API does) for a lecture room whose `media` is `sfu`, and serves
//! that key's JWKS to the gateway itself (no API or database in the run). The publisher is the
//! room's owner: the gateway queues the room for the SFU on its arrival, and once the SFU's seat
//! is in the room (`welcome.sfu` or `media_changed`) it offers its `publish` connection. Each
//! subscriber is a member (a lecture's viewer publishes nothing): it answers the `subscribe`
//! offer the SFU makes it. Every participant keeps its WebSocket, answering the gateway's pings,
//! and follows the room to another SFU as a client does: told `media_changed` to another seat, the
//! publisher publishes to it afresh, and each subscriber answers its offer on a new connection
//! (`--failovers`, `crate::failover`, measures how soon media flows again).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use confab_bench::signaling::{client_text, read};
use confab_common::tokens::SigningKeys;
use confab_domain::{CallRole, MediaRouting, RoomMode, RoomRole};
use confab_protocol::signal::server_message::Kind;
use confab_protocol::signal::{Pong, SessionDescription, Signal, client_message, signal::Payload};
use confab_tickets::{TicketClaims, TicketHolder};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::reception::Reception;
use crate::webrtc::{Publisher, Renegotiation, Subscriber};
use crate::{Run, Target};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the gateway may take to admit the first participant (it fetches the JWKS first), and
/// the SFU to take its seat and answer.
const PATIENCE: Duration = Duration::from_secs(30);
/// The room's capacity in the tickets: a lecture's.
const CAPACITY: u32 = 1000;

pub struct Confab {
    gateway: String,
    keys: SigningKeys,
    pub room: String,
    participants: usize,
    /// The SFU's peer id, once the publisher learned it.
    sfu: Option<String>,
    /// Every subscribe connection made so far: one per subscriber and SFU the room went through.
    pub receptions: Rc<Receptions>,
}

/// What each subscribe connection received, in the order they were made.
pub type Receptions = RefCell<Vec<Rc<RefCell<Reception>>>>;

impl Confab {
    /// Signs with the key in `key_pem` and serves its JWKS on `jwks_port` for the gateway at
    /// `gateway` (`ws://…/v1/signal`).
    pub fn new(gateway: &str, key_pem: &str, jwks_port: u16) -> anyhow::Result<Self> {
        let keys = SigningKeys::from_pem(key_pem)?;
        confab_testkit::jwks_server_at(&keys, jwks_port);
        let room = format!("sfu-load-{}", std::process::id());
        let receptions = Rc::default();
        Ok(Self { gateway: gateway.to_owned(), keys, room, participants: 0, sfu: None, receptions })
    }

    /// A participant's socket, welcomed; the welcome's SFU peer id, if the SFU is in the room.
    async fn join(&mut self, role: RoomRole) -> anyhow::Result<(Socket, Option<String>)> {
        self.participants += 1;
        let holder = TicketHolder {
            user_id: format!("sfu-load-{}", self.participants),
            display_name: format!("Load {}", self.participants),
            room_id: self.room.clone(),
            role: CallRole::Person(role),
            max_participants: CAPACITY,
            recording_id: None,
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
        let claims =
            TicketClaims::issue("confab", holder, now).with_room_settings(MediaRouting::Sfu, RoomMode::Lecture);
        let ticket = self.keys.sign(&claims)?;
        let give_up = tokio::time::Instant::now() + PATIENCE;
        loop {
            let mut request = self.gateway.as_str().into_client_request()?;
            let protocols = format!("confab.v1, confab.ticket.{ticket}");
            request.headers_mut().insert("sec-websocket-protocol", protocols.parse()?);
            // Refused while the gateway has not fetched the key set yet: try again.
            if let Ok((mut socket, _)) = tokio_tungstenite::connect_async(request).await {
                let welcome = until(&mut socket, |kind| match kind {
                    Kind::Welcome(welcome) => Some(welcome),
                    _ => None,
                });
                let welcome = welcome.await?;
                return Ok((socket, welcome.sfu.map(|sfu| sfu.peer_id)));
            }
            if tokio::time::Instant::now() > give_up {
                bail!("the gateway at {} admitted nobody within {PATIENCE:?}", self.gateway);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Target for Confab {
    async fn publish(&mut self, run: &Rc<Run>) -> anyhow::Result<()> {
        let (mut socket, sfu) = self.join(RoomRole::Owner).await?;
        let sfu = match sfu {
            Some(sfu) => sfu,
            None => until(&mut socket, |kind| match kind {
                Kind::MediaChanged(changed) => changed.sfu.map(|sfu| sfu.peer_id),
                _ => None,
            })
            .await
            .context("the SFU taking its seat")?,
        };
        publish_to(&mut socket, &sfu, run).await?;
        self.sfu = Some(sfu.clone());
        let run = Rc::clone(run);
        tokio::task::spawn_local(async move {
            let mut sfu = sfu;
            while let Ok(kind) = next_message(&mut socket).await {
                let Some(next) = moved_to(kind, &sfu) else { continue };
                sfu = next;
                if let Err(e) = publish_to(&mut socket, &sfu, &run).await {
                    eprintln!("sfu-load: publishing to the next SFU: {e:#}");
                }
            }
        });
        Ok(())
    }

    async fn subscribe(&mut self, run: &Rc<Run>) -> anyhow::Result<Rc<RefCell<Reception>>> {
        let sfu = self.sfu.clone().context("subscribers come after the publisher")?;
        let (mut socket, _) = self.join(RoomRole::Member).await?;
        let offer = until(&mut socket, |kind| subscribe_offer(kind, &sfu)).await;
        let offer = offer.context("the SFU's offer of the subscribe connection")?;
        let (reception, mut connection) = subscribe_to(&mut socket, &sfu, offer, run, &self.receptions).await?;
        let (run, receptions) = (Rc::clone(run), Rc::clone(&self.receptions));
        // The SFU's later offers renegotiate the connection; a new SFU's first offer opens another.
        tokio::task::spawn_local(async move {
            let (mut sfu, mut subscribed_to) = (sfu.clone(), sfu);
            while let Ok(kind) = next_message(&mut socket).await {
                if let Some(next) = moved_to(kind.clone(), &sfu) {
                    sfu = next;
                    continue;
                }
                let Some(offer) = subscribe_offer(kind, &sfu) else { continue };
                let answered = if sfu == subscribed_to {
                    renegotiate(&mut socket, &sfu, offer, &connection).await
                } else {
                    subscribed_to = sfu.clone();
                    subscribe_to(&mut socket, &sfu, offer, &run, &receptions).await.map(|(_, next)| connection = next)
                };
                if let Err(e) = answered {
                    eprintln!("sfu-load: answering the SFU's offer: {e:#}");
                }
            }
        });
        Ok(reception)
    }
}

/// Offers a publish connection to `sfu`, and sends the clip on it once answered and connected.
async fn publish_to(socket: &mut Socket, sfu: &str, run: &Rc<Run>) -> anyhow::Result<()> {
    let (publisher, offer) = Publisher::offer(run.local_ip).await?;
    send(socket, signal(sfu, "publish", "offer", offer)).await?;
    let answer = until(socket, |kind| match kind {
        Kind::Signal(Signal { payload: Some(Payload::Sdp(answer)), from, .. })
            if answer.r#type == "answer" && from == sfu =>
        {
            Some(answer.sdp)
        }
        Kind::Signal(Signal { payload: Some(Payload::Refusal(refusal)), .. }) => {
            eprintln!("sfu-load: the SFU refused the publisher: {}", refusal.code);
            None
        }
        _ => None,
    })
    .await
    .context("the SFU's answer")?;
    publisher.start(answer, Rc::clone(run))
}

/// Answers `sfu`'s offer of a subscribe connection with a new one, counted into `receptions`;
/// what renegotiates it.
async fn subscribe_to(
    socket: &mut Socket,
    sfu: &str,
    offer: String,
    run: &Rc<Run>,
    receptions: &Receptions,
) -> anyhow::Result<(Rc<RefCell<Reception>>, Renegotiation)> {
    let (mut subscriber, answer) = Subscriber::answer(run.local_ip, offer).await?;
    let renegotiation = subscriber.renegotiable();
    send(socket, signal(sfu, "subscribe", "answer", answer)).await?;
    let reception = subscriber.start(Rc::clone(run));
    receptions.borrow_mut().push(Rc::clone(&reception));
    Ok((reception, renegotiation))
}

/// Answers `sfu`'s new offer on the running subscribe `connection`.
async fn renegotiate(socket: &mut Socket, sfu: &str, offer: String, connection: &Renegotiation) -> anyhow::Result<()> {
    let (answered, answer) = tokio::sync::oneshot::channel();
    connection.send((offer, answered)).ok().context("the subscriber stopped")?;
    let answer = answer.await.context("the subscriber stopped")??;
    send(socket, signal(sfu, "subscribe", "answer", answer)).await
}

/// The SFU seat the room moved to, if `kind` says it moved from `sfu`.
fn moved_to(kind: Kind, sfu: &str) -> Option<String> {
    match kind {
        Kind::MediaChanged(changed) => changed.sfu.map(|next| next.peer_id).filter(|next| next != sfu),
        _ => None,
    }
}

/// `sfu`'s offer of the subscribe connection, if `kind` is one.
fn subscribe_offer(kind: Kind, sfu: &str) -> Option<String> {
    match kind {
        Kind::Signal(Signal { payload: Some(Payload::Sdp(offer)), connection, from, .. })
            if offer.r#type == "offer" && connection == "subscribe" && from == sfu =>
        {
            Some(offer.sdp)
        }
        _ => None,
    }
}

fn signal(to: &str, connection: &str, kind: &str, sdp: String) -> client_message::Kind {
    let payload = Payload::Sdp(SessionDescription { r#type: kind.to_owned(), sdp });
    client_message::Kind::Signal(Signal {
        to: to.to_owned(),
        connection: connection.to_owned(),
        payload: Some(payload),
        ..Signal::default()
    })
}

async fn send(socket: &mut Socket, kind: client_message::Kind) -> anyhow::Result<()> {
    Ok(socket.send(Message::text(client_text(kind))).await?)
}

/// The next server message (pings answered on the way).
async fn next_message(socket: &mut Socket) -> anyhow::Result<Kind> {
    loop {
        let Some(frame) = socket.next().await else { bail!("the gateway closed the connection") };
        if let Message::Text(text) = frame? {
            match read(&text) {
                Some(Kind::Ping(ping)) => {
                    send(socket, client_message::Kind::Pong(Pong { timestamp_ms: ping.timestamp_ms })).await?;
                }
                Some(kind) => return Ok(kind),
                None => {}
            }
        }
    }
}

/// The first message `pick` takes, within [`PATIENCE`].
async fn until<T>(socket: &mut Socket, mut pick: impl FnMut(Kind) -> Option<T>) -> anyhow::Result<T> {
    let found = async {
        loop {
            if let Some(found) = pick(next_message(socket).await?) {
                return anyhow::Ok(found);
            }
        }
    };
    tokio::time::timeout(PATIENCE, found).await.with_context(|| format!("not within {PATIENCE:?}"))?
}
