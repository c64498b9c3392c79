//! `bare-relay`: the floor of the gateway benchmark. A plain tokio-tungstenite server doing only
//! what any relay must: give each connection a peer id in its room (`?room=`), parse each
//! `signal`, stamp `from`, and queue it for the addressed peer of the same room. No tickets,
//! Redis, presence or limits: the least a WebSocket relay of these messages costs here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
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
    let welcome = json!({"welcome": {"peer_id": peer_id}}).to_string();
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
        let Ok(mut message) = serde_json::from_str::<Value>(&text) else { continue };
        let Some(signal) = message.get_mut("signal").and_then(Value::as_object_mut) else { continue };
        let Some(Value::String(to)) = signal.remove("to") else { continue };
        signal.insert("from".into(), peer_id.clone().into());
        let target = rooms.lock().unwrap().get(&room).and_then(|peers| peers.get(&to)).cloned();
        if let Some(target) = target {
            let _ = target.try_send(Message::text(message.to_string()));
        }
    }
    if let Some(peers) = rooms.lock().unwrap().get_mut(&room) {
        peers.remove(&peer_id);
    }
    writer.abort();
}
