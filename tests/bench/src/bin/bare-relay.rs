//! `bare-relay`: the floor of the gateway benchmark. A plain tokio-tungstenite server doing only
//! what any relay must: give each connection a peer id in its room (`?room=`), parse each
//! `signal`, stamp `from`, and queue it for the addressed peer of the same room. No tickets,
//! Redis, presence or limits: the least a WebSocket relay of these messages costs here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use clap::Parser;
use confab_bench::signaling::server_text;
use confab_protocol::signal::{ClientMessage, Welcome, client_message, server_message};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// Peers' outbound queues by room and peer id.
type Rooms = Arc<Mutex<HashMap<String, HashMap<String, mpsc::Sender<Message>>>>>;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8099")]
    bind: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(&args.bind).await?;
    let rooms = Rooms::default();
    let ids = Arc::new(AtomicU64::new(0));
    loop {
        let (stream, _) = listener.accept().await?;
        let peer_id = format!("p{}", ids.fetch_add(1, Ordering::Relaxed));
        tokio::spawn(serve(stream, peer_id, rooms.clone()));
    }
}

async fn serve(stream: TcpStream, peer_id: String, rooms: Rooms) {
    let mut room = String::new();
    // The callback's error type is tungstenite's, not ours.
    #[allow(clippy::result_large_err)]
    let read_room = |request: &Request, response: Response| {
        let query = request.uri().query().unwrap_or_default();
        room = query.split('&').find_map(|pair| pair.strip_prefix("room=")).unwrap_or_default().to_owned();
        Ok(response)
    };
    let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, read_room).await else { return };
    let (mut sink, mut frames) = socket.split();
    let welcome =
        server_text(server_message::Kind::Welcome(Welcome { peer_id: peer_id.clone(), ..Welcome::default() }));
    if sink.send(Message::text(welcome)).await.is_err() {
        return;
    }
    let (queue, mut outbound) = mpsc::channel(256);
    rooms.lock().unwrap().entry(room.clone()).or_default().insert(peer_id.clone(), queue);
    let writer = tokio::spawn(async move {
        while let Some(message) = outbound.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(frame)) = frames.next().await {
        let Message::Text(text) = frame else { continue };
        let Ok(ClientMessage { kind: Some(client_message::Kind::Signal(mut signal)) }) = serde_json::from_str(&text)
        else {
            continue;
        };
        let to = std::mem::take(&mut signal.to);
        signal.from.clone_from(&peer_id);
        let target = rooms.lock().unwrap().get(&room).and_then(|peers| peers.get(&to)).cloned();
        if let Some(target) = target {
            let _ = target.try_send(Message::text(server_text(server_message::Kind::Signal(signal))));
        }
    }
    if let Some(peers) = rooms.lock().unwrap().get_mut(&room) {
        peers.remove(&peer_id);
    }
    writer.abort();
}
