//! A Redis restart in the middle of a call: gateways reconnect, resubscribe, put their peers
//! back into presence with their heartbeats, resync them once the whole room is back, and
//! cross-instance signaling works again; nobody is taken for dead. Uses a Redis server of its
//! own so the restart touches no other test.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use awc::ws::{Frame, Message};
use confab_common::tokens::SigningKeys;
use confab_gateway::settings::Limits;
use confab_gateway::{Application, Settings};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

mod support;

/// A private redis-server, killed when dropped.
struct PrivateRedis {
    port: u16,
    child: Child,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed by deploy/local");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn stop(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn start_again(&mut self) {
        *self = Self::start(self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

type Socket = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

async fn recv(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("a message within 10 s");
        match frame {
            Some(Ok(Frame::Text(bytes))) => return serde_json::from_slice(&bytes).unwrap(),
            Some(Ok(Frame::Ping(bytes))) => socket.send(Message::Pong(bytes)).await.unwrap(),
            Some(Ok(_)) => {}
            other => panic!("socket ended: {other:?}"),
        }
    }
}

#[actix_web::test]
async fn a_redis_restart_mid_call_neither_splits_the_call_nor_resyncs_anyone_with_a_partial_room() {
    let mut redis = PrivateRedis::start(free_port());
    let keys = Arc::new(SigningKeys::from_signing_keys(&[ed25519_dalek::SigningKey::from_bytes(&[6; 32])]).unwrap());
    let jwks_url = support::jwks_server(&keys);

    let mut urls = Vec::new();
    for index in 0..2 {
        let app = Application::build(Settings {
            bind: "127.0.0.1:0".into(),
            redis_url: redis.url(),
            redis_prefix: "confab".into(),
            jwks_url: jwks_url.clone(),
            jwt_issuer: "confab".into(),
            allowed_origins: vec![],
            instance_id: format!("gw-restart-{index}"),
            ice: Default::default(),
            limits: Limits::default(),
        })
        .unwrap();
        urls.push(format!("ws://127.0.0.1:{}/v1/signal", app.port()));
        actix_web::rt::spawn(app.run_until_stopped());
    }
    let room = uuid::Uuid::new_v4().to_string();
    let join = async |gateway: usize, name: &str| {
        let ticket = support::ticket(&keys, &room, name, &uuid::Uuid::new_v4().to_string(), 8);
        let (_, mut socket) =
            awc::Client::new().ws(format!("{}?ticket={ticket}", urls[gateway])).connect().await.unwrap();
        let welcome = recv(&mut socket).await;
        (socket, welcome["welcome"]["peer_id"].as_str().unwrap().to_owned())
    };
    let (mut ann, ann_id) = join(0, "Ann").await;
    let (mut bob, bob_id) = join(1, "Bob").await;
    recv(&mut ann).await;

    redis.stop();
    tokio::time::sleep(Duration::from_secs(5)).await;
    redis.start_again();

    // Past the heartbeat TTL and a sweep: long enough for a gateway to take the other's live
    // peers for dead, as it once did.
    let watch = Duration::from_secs(14);
    let (ann_heard, bob_heard) = tokio::join!(heard_within(&mut ann, watch), heard_within(&mut bob, watch));
    for (heard, other) in [(&ann_heard, &bob_id), (&bob_heard, &ann_id)] {
        let resyncs: Vec<&Value> = heard.iter().filter(|m| m.get("resync").is_some()).collect();
        assert!(!resyncs.is_empty(), "a resync after the outage: {heard:?}");
        for resync in resyncs {
            let peers: Vec<&str> = resync["resync"]["peers"]
                .as_array()
                .map_or(Vec::new(), |peers| peers.iter().map(|p| p["peer_id"].as_str().unwrap()).collect());
            assert_eq!(peers, [other.as_str()], "every resync lists the whole room");
        }
        assert!(heard.iter().all(|m| m.get("peer_left").is_none() && m.get("peer_joined").is_none()), "{heard:?}");
    }
    let offer = json!({"type": "offer", "sdp": "v=0 after restart"});
    ann.send(Message::Text(json!({"signal": {"to": bob_id, "sdp": offer}}).to_string().into())).await.unwrap();
    assert_eq!(recv(&mut bob).await, json!({"signal": {"from": ann_id, "sdp": offer}}));
    bob.send(Message::Text(json!({"signal": {"to": ann_id, "sdp": offer}}).to_string().into())).await.unwrap();
    assert_eq!(recv(&mut ann).await, json!({"signal": {"from": bob_id, "sdp": offer}}));
}

/// Every message the socket gets within `watch`.
async fn heard_within(socket: &mut Socket, watch: Duration) -> Vec<Value> {
    let mut heard = Vec::new();
    let deadline = tokio::time::Instant::now() + watch;
    while let Ok(message) = tokio::time::timeout_at(deadline, recv(socket)).await {
        heard.push(message);
    }
    heard
}
