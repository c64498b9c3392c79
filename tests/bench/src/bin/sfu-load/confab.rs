//! The Confab target: our SFU, reached as docs/protocol.md says. The tool signs join tickets with
//! the deployment's key (as the API does) for a lecture room whose `media` is `sfu`, and serves
//! that key's JWKS to the gateway itself (no API or database in the run). The publisher is the
//! room's owner: the gateway queues the room for the SFU on its arrival, and once the SFU's seat
//! is in the room (`welcome.sfu` or `media_changed`) it offers its `publish` connection. Each
//! subscriber is a member (a lecture's viewer publishes nothing): it answers the `subscribe`
//! offer the SFU makes it. Every participant keeps its WebSocket, answering the gateway's pings.

use std::rc::Rc;
use std::cell::RefCell;
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
use crate::webrtc::{Publisher, Subscriber};
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
    room: String,
    participants: usize,
    /// The SFU's peer id, once the publisher learned it.
    sfu: Option<String>,
}

impl Confab {
    /// Signs with the key in `key_pem` and serves its JWKS on `jwks_port` for the gateway at
    /// `gateway` (`ws://…/v1/signal`).
    pub fn new(gateway: &str, key_pem: &str, jwks_port: u16) -> anyhow::Result<Self> {
        let keys = SigningKeys::from_pem(key_pem)?;
        confab_testkit::jwks_server_at(&keys, jwks_port);
        let room = format!("sfu-load-{}", std::process::id());
        Ok(Self { gateway: gateway.to_owned(), keys, room, participants: 0, sfu: None })
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
        let claims = TicketClaims::issue("confab", holder, now).with_room_settings(MediaRouting::Sfu, RoomMode::Lecture);
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
        let (publisher, offer) = Publisher::offer(run.local_ip).await?;
        send(&mut socket, signal(&sfu, "publish", "offer", offer)).await?;
        let answer = until(&mut socket, |kind| match kind {
            Kind::Signal(Signal { payload: Some(Payload::Sdp(answer)), .. }) if answer.r#type == "answer" => {
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
        publisher.start(answer, Rc::clone(run))?;
        keep(socket);
        self.sfu = Some(sfu);
        Ok(())
    }

    async fn subscribe(&mut self, run: &Rc<Run>) -> anyhow::Result<Rc<RefCell<Reception>>> {
        let sfu = self.sfu.clone().context("subscribers come after the publisher")?;
        let (mut socket, _) = self.join(RoomRole::Member).await?;
        let offer = until(&mut socket, |kind| match kind {
            Kind::Signal(Signal { payload: Some(Payload::Sdp(offer)), connection, .. })
                if offer.r#type == "offer" && connection == "subscribe" =>
            {
                Some(offer.sdp)
            }
            _ => None,
        })
        .await
        .context("the SFU's offer of the subscribe connection")?;
        let (subscriber, answer) = Subscriber::answer(run.local_ip, offer).await?;
        send(&mut socket, signal(&sfu, "subscribe", "answer", answer)).await?;
        keep(socket);
        Ok(subscriber.start(Rc::clone(run)))
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

/// Keeps a participant in the call for the rest of the run: its pings answered, the rest read.
fn keep(mut socket: Socket) {
    tokio::task::spawn_local(async move { while next_message(&mut socket).await.is_ok() {} });
}
