//! The gateway over real WebSockets and a real Redis, with tickets signed the way the API signs
//! them and served from a real JWKS endpoint.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use awc::ws::{Frame, Message};
use confab_common::tokens::SigningKeys;
use confab_gateway::settings::Limits;
use confab_gateway::{Application, Settings};
use confab_tickets::TICKET_AUDIENCE;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

mod support;

type Socket = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

/// A JWKS endpoint, the keys behind it, and gateways sharing one Redis prefix.
struct World {
    keys: Arc<SigningKeys>,
    gateways: Vec<String>,
    stoppers: Vec<Arc<tokio::sync::watch::Sender<bool>>>,
    redis_prefix: String,
    jwks_url: String,
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").expect("REDIS_URL must be set: run the tests with deploy/local/test")
}

async fn world(instances: usize) -> World {
    world_with(instances, Limits::default()).await
}

async fn world_with(instances: usize, limits: Limits) -> World {
    let keys = Arc::new(SigningKeys::from_signing_keys(&[ed25519_dalek::SigningKey::from_bytes(&[4; 32])]).unwrap());
    let jwks_url = support::jwks_server(&keys);
    let redis_prefix = format!("confab-test:{}", uuid::Uuid::new_v4().simple());
    let mut gateways = Vec::new();
    let mut stoppers = Vec::new();
    for index in 0..instances {
        let app = Application::build(Settings {
            bind: "127.0.0.1:0".into(),
            redis_url: redis_url(),
            redis_prefix: redis_prefix.clone(),
            jwks_url: jwks_url.clone(),
            jwt_issuer: "confab".into(),
            allowed_origins: vec!["https://confab.test".into()],
            instance_id: format!("gw-test-{index}"),
            ice: confab_gateway::ice::IceConfig {
                stun_urls: vec!["stun:stun.confab.test:3478".into()],
                ..Default::default()
            },
            limits: limits.clone(),
        })
        .unwrap();
        gateways.push(format!("ws://127.0.0.1:{}/v1/signal", app.port()));
        stoppers.push(app.stopper());
        actix_web::rt::spawn(app.run_until_stopped());
    }
    World { keys, gateways, stoppers, redis_prefix, jwks_url }
}

impl World {
    fn ticket(&self, room: &str, name: &str, capacity: u32) -> String {
        self.ticket_for(room, name, &uuid::Uuid::new_v4().to_string(), capacity)
    }

    fn ticket_for(&self, room: &str, name: &str, user: &str, capacity: u32) -> String {
        support::ticket(&self.keys, room, name, user, capacity)
    }

    /// Connects with the ticket as a subprotocol; the handshake status on refusal.
    async fn connect(&self, gateway: usize, ticket: &str) -> Result<Peer, u16> {
        let ticket_protocol = format!("confab.ticket.{ticket}");
        let connecting = awc::Client::new()
            .ws(&self.gateways[gateway])
            .protocols(["confab.v1", ticket_protocol.as_str()])
            .connect()
            .await;
        match connecting {
            Ok((res, socket)) => {
                let selected = res.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap().to_owned());
                assert_eq!(selected.as_deref(), Some("confab.v1"));
                Ok(Peer { socket })
            }
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => Err(status.as_u16()),
            Err(e) => panic!("connect failed: {e}"),
        }
    }

    /// Joins `room` and returns the peer with its welcome.
    async fn join(&self, gateway: usize, room: &str, name: &str) -> (Peer, Value) {
        let mut peer = self.connect(gateway, &self.ticket(room, name, 8)).await.expect("admitted");
        let welcome = peer.recv().await;
        assert!(welcome.get("welcome").is_some(), "{welcome}");
        (peer, welcome["welcome"].clone())
    }
}

struct Peer {
    socket: Socket,
}

enum Event {
    Text(Value),
    Closed(Option<u16>),
}

impl Peer {
    async fn send(&mut self, message: Value) {
        self.socket.send(Message::Text(message.to_string().into())).await.unwrap();
    }

    /// The next text or close within `wait`; pings are answered on the way.
    async fn next_event(&mut self, wait: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next()).await.ok()?;
            match frame {
                Some(Ok(Frame::Text(bytes))) => return Some(Event::Text(serde_json::from_slice(&bytes).unwrap())),
                Some(Ok(Frame::Close(reason))) => return Some(Event::Closed(reason.map(|r| u16::from(r.code)))),
                Some(Ok(Frame::Ping(bytes))) => self.socket.send(Message::Pong(bytes)).await.unwrap(),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Some(Event::Closed(None)),
            }
        }
    }

    async fn recv(&mut self) -> Value {
        match self.next_event(Duration::from_secs(5)).await {
            Some(Event::Text(value)) => value,
            Some(Event::Closed(code)) => panic!("closed ({code:?}) while waiting for a message"),
            None => panic!("no message within 5 s"),
        }
    }

    async fn closed(&mut self) -> Option<u16> {
        loop {
            match self.next_event(Duration::from_secs(5)).await {
                Some(Event::Closed(code)) => return code,
                Some(Event::Text(_)) => {}
                None => panic!("not closed within 5 s"),
            }
        }
    }

    async fn silent(&mut self) -> bool {
        !matches!(self.next_event(Duration::from_millis(300)).await, Some(Event::Text(_)))
    }
}

fn room() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[actix_web::test]
async fn peers_are_welcomed_announced_and_signals_reach_only_the_addressed_peer() {
    let world = world(1).await;
    let room = room();
    let (mut ann, ann_welcome) = world.join(0, &room, "Ann").await;
    assert!(ann_welcome.get("peers").is_none(), "empty lists are omitted, as proto3 JSON does");
    assert_eq!(ann_welcome["ice_servers"], json!([{"urls": ["stun:stun.confab.test:3478"]}]));
    let (mut bob, bob_welcome) = world.join(0, &room, "Bob").await;
    assert_eq!(bob_welcome["peers"][0]["peer_id"], ann_welcome["peer_id"]);
    assert_eq!(bob_welcome["peers"][0]["display_name"], "Ann");
    assert_eq!(ann.recv().await["peer_joined"]["peer"]["peer_id"], bob_welcome["peer_id"]);
    let (mut cat, _) = world.join(0, &room, "Cat").await;
    ann.recv().await;
    bob.recv().await;

    let offer = json!({"type": "offer", "sdp": "v=0 offer"});
    ann.send(json!({"signal": {"to": bob_welcome["peer_id"], "sdp": offer}})).await;
    let received = bob.recv().await;
    assert_eq!(received, json!({"signal": {"from": ann_welcome["peer_id"], "sdp": offer}}));
    assert!(cat.silent().await, "a third peer never sees a signal addressed to someone else");
    assert!(ann.silent().await);
}

#[actix_web::test]
async fn protocol_errors_are_answered_and_the_connection_survives() {
    let world = world(1).await;
    let (mut ann, _) = world.join(0, &room(), "Ann").await;
    for (frame, code) in [
        ("not json", "malformed_message"),
        ("{}", "malformed_message"),
        (r#"{"welcome": {}}"#, "malformed_message"),
        (r#"{"signal": {"to": "nobody", "sdp": {"type": "offer", "sdp": "v=0"}}}"#, "unknown_peer"),
    ] {
        ann.socket.send(Message::Text(frame.into())).await.unwrap();
        assert_eq!(ann.recv().await["error"]["code"], code, "{frame}");
    }
    ann.send(json!({"ping": {"timestamp_ms": 42}})).await;
    assert_eq!(ann.recv().await, json!({"pong": {"timestamp_ms": "42"}}));
}

#[actix_web::test]
async fn bad_tickets_and_origins_are_refused_before_the_upgrade() {
    let world = world(1).await;
    let room = room();
    assert_eq!(world.connect(0, "not-a-ticket").await.err(), Some(401));
    let ticket = world.ticket(&room, "Ann", 8);
    let mut first = world.connect(0, &ticket).await.unwrap();
    first.recv().await;
    assert_eq!(world.connect(0, &ticket).await.err(), Some(401), "tickets are single use");
    let rogue = SigningKeys::from_signing_keys(&[ed25519_dalek::SigningKey::from_bytes(&[9; 32])]).unwrap();
    let now = chrono::Utc::now().timestamp();
    let forged = rogue
        .sign(&json!({"iss": "confab", "aud": TICKET_AUDIENCE, "sub": "u", "exp": now + 60, "iat": now, "jti": "j",
            "room_id": room, "display_name": "Eve", "room_role": "owner", "max_participants": 50}))
        .unwrap();
    assert_eq!(world.connect(0, &forged).await.err(), Some(401));

    let evil = awc::Client::new()
        .ws(&world.gateways[0])
        .origin("https://evil.test")
        .protocols([format!("confab.ticket.{}", world.ticket(&room, "Eve", 8))])
        .connect()
        .await;
    assert!(matches!(evil, Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s.as_u16() == 403));
    let allowed = awc::Client::new()
        .ws(format!("{}?ticket={}", world.gateways[0], world.ticket(&room, "Dan", 8)))
        .origin("https://confab.test")
        .connect()
        .await;
    assert!(allowed.is_ok(), "an allowed origin with the query-string ticket gets in");
}

#[actix_web::test]
async fn capacity_holds_across_instances_under_a_race() {
    let world = world(2).await;
    let room = room();
    let tickets: Vec<String> = (0..8).map(|i| world.ticket(&room, &format!("P{i}"), 3)).collect();
    let world = &world;
    let attempts = tickets.iter().enumerate().map(|(i, t)| async move {
        let mut peer = world.connect(i % 2, t).await.expect("upgraded");
        let first = peer.recv().await;
        (first, peer)
    });
    let results = futures_util::future::join_all(attempts).await;
    let admitted = results.iter().filter(|(first, _)| first.get("welcome").is_some()).count();
    let full = results.iter().filter(|(first, _)| first["error"]["code"] == "room_full").count();
    assert_eq!((admitted, full), (3, 5));
}

#[actix_web::test]
async fn oversized_messages_close_with_1009_and_bye_is_announced_as_left() {
    let world = world(1).await;
    let room = room();
    let (mut ann, ann_welcome) = world.join(0, &room, "Ann").await;
    let (mut bob, _) = world.join(0, &room, "Bob").await;
    ann.recv().await;
    bob.send(json!({"broadcast": {"data": "x".repeat(70 * 1024)}})).await;
    assert_eq!(bob.closed().await, Some(1009));
    let left = ann.recv().await;
    assert_eq!(left["peer_left"]["reason"], "message_too_big");
    let (mut cat, _) = world.join(0, &room, "Cat").await;
    ann.recv().await;
    ann.send(json!({"bye": {}})).await;
    assert_eq!(cat.recv().await["peer_left"], json!({"peer_id": ann_welcome["peer_id"], "reason": "left"}));
}

#[actix_web::test]
async fn a_message_over_the_limit_in_continuation_frames_closes_with_1009_and_leaves_at_once() {
    use actix_ws::Item;
    let world = world(1).await;
    let room = room();
    let (mut ann, _) = world.join(0, &room, "Ann").await;
    let (mut bob, bob_welcome) = world.join(0, &room, "Bob").await;
    ann.recv().await;
    let fragment = bytes::Bytes::from(vec![b'x'; 40 * 1024]);
    bob.socket.send(Message::Continuation(Item::FirstText(fragment.clone()))).await.unwrap();
    bob.socket.send(Message::Continuation(Item::Continue(fragment))).await.unwrap();
    assert_eq!(bob.closed().await, Some(1009), "closed at the fragment that crosses 64 KiB");
    let left = ann.next_event(Duration::from_secs(2)).await;
    assert!(
        matches!(&left, Some(Event::Text(v)) if v["peer_left"] == json!({"peer_id": bob_welcome["peer_id"], "reason": "message_too_big"})),
        "Bob leaves at once, not after the resume window"
    );
}

#[actix_web::test]
async fn text_that_is_not_utf8_closes_with_1007_and_leaves_at_once() {
    use actix_ws::Item;
    let world = world(1).await;
    let room = room();
    let (mut ann, _) = world.join(0, &room, "Ann").await;
    let (mut bob, bob_welcome) = world.join(0, &room, "Bob").await;
    ann.recv().await;
    bob.socket
        .send(Message::Continuation(Item::FirstText(bytes::Bytes::from_static(b"{\"bye\": \xff"))))
        .await
        .unwrap();
    bob.socket.send(Message::Continuation(Item::Last(bytes::Bytes::from_static(b"}")))).await.unwrap();
    assert_eq!(bob.closed().await, Some(1007));
    let left = ann.next_event(Duration::from_secs(2)).await;
    assert!(
        matches!(&left, Some(Event::Text(v)) if v["peer_left"] == json!({"peer_id": bob_welcome["peer_id"], "reason": "invalid_utf8"})),
        "{:?}",
        left.map(|e| match e {
            Event::Text(v) => v.to_string(),
            Event::Closed(c) => format!("{c:?}"),
        })
    );
}

#[actix_web::test]
async fn presence_is_kept_in_redis_for_the_api_and_cleared_on_leave() {
    let world = world(1).await;
    let room = room();
    let (mut ann, welcome) = world.join(0, &room, "Ann").await;
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let key = confab_domain::keys::room_peers(&world.redis_prefix, &room);
    let entry: String =
        redis::AsyncCommands::hget(&mut redis, &key, welcome["peer_id"].as_str().unwrap()).await.unwrap();
    let entry: Value = serde_json::from_str(&entry).unwrap();
    assert_eq!(entry["instance_id"], "gw-test-0");
    assert_eq!(entry["display_name"], "Ann");
    let live: bool =
        redis::AsyncCommands::sismember(&mut redis, confab_domain::keys::live_rooms(&world.redis_prefix), &room)
            .await
            .unwrap();
    assert!(live);
    let recorder_ticket =
        support::ticket_as(&world.keys, &room, "Recorder", "recorder-1", 2, "recorder", Some("rec-1"));
    let mut recorder = world.connect(0, &recorder_ticket).await.expect("the recorder joins");
    recorder.recv().await;
    recorder.send(json!({"bye": {}})).await;
    recorder.closed().await;
    ann.send(json!({"bye": {}})).await;
    ann.closed().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let left: i64 = redis::AsyncCommands::hlen(&mut redis, &key).await.unwrap();
    assert_eq!(left, 0);

    // The API's webhooks read joins and leaves from this stream; recorders are not participants.
    let stream = confab_domain::keys::presence_events(&world.redis_prefix);
    let entries: Vec<(String, HashMap<String, String>)> =
        redis::cmd("XRANGE").arg(&stream).arg("-").arg("+").query_async(&mut redis).await.unwrap();
    let events: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|(_, fields)| {
            (fields["type"].as_str(), fields["room_id"].as_str(), fields.get("reason").map_or("", String::as_str))
        })
        .collect();
    assert_eq!(events, [("participant.joined", room.as_str(), ""), ("participant.left", room.as_str(), "left")]);
    let peer: Value = serde_json::from_str(&entries[1].1["peer"]).unwrap();
    assert_eq!((peer["peer_id"].as_str(), peer["display_name"].as_str()), (welcome["peer_id"].as_str(), Some("Ann")));
}

#[actix_web::test]
async fn a_gateway_started_before_the_api_is_unready_until_it_has_the_keys_then_admits_at_once() {
    let keys = SigningKeys::from_signing_keys(&[ed25519_dalek::SigningKey::from_bytes(&[5; 32])]).unwrap();
    let jwks_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = Application::build(Settings {
        bind: "127.0.0.1:0".into(),
        redis_url: redis_url(),
        redis_prefix: format!("confab-test:{}", uuid::Uuid::new_v4().simple()),
        jwks_url: format!("http://127.0.0.1:{jwks_port}/jwks"),
        jwt_issuer: "confab".into(),
        allowed_origins: vec![],
        instance_id: "gw-early".into(),
        ice: Default::default(),
        limits: Limits::default(),
    })
    .unwrap();
    let port = app.port();
    actix_web::rt::spawn(app.run_until_stopped());
    let readyz = async || {
        let mut res = awc::Client::new().get(format!("http://127.0.0.1:{port}/readyz")).send().await.unwrap();
        (res.status().as_u16(), res.json::<Value>().await.unwrap())
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = readyz().await;
    assert_eq!(
        (status, &body["checks"]["signing_keys"], &body["checks"]["redis"]),
        (503, &json!("unreachable"), &json!("ok"))
    );

    support::jwks_server_at(&keys, jwks_port);
    let started = std::time::Instant::now();
    while readyz().await.0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(3), "ready within 3 s of the API answering");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ticket = support::ticket(&keys, &room(), "Ann", &uuid::Uuid::new_v4().to_string(), 8);
    let (_, socket) =
        awc::Client::new().ws(format!("ws://127.0.0.1:{port}/v1/signal?ticket={ticket}")).connect().await.unwrap();
    let welcome = Peer { socket }.recv().await;
    assert!(welcome.get("welcome").is_some(), "{welcome}");
}

#[actix_web::test]
async fn shutdown_closes_every_socket_with_1012() {
    let world = world(1).await;
    let (mut ann, _) = world.join(0, &room(), "Ann").await;
    world.stoppers[0].send(true).unwrap();
    assert_eq!(ann.closed().await, Some(1012));
}

#[actix_web::test]
async fn a_flooding_client_is_told_then_disconnected() {
    let world = world(1).await;
    let (mut ann, _) = world.join(0, &room(), "Ann").await;
    for _ in 0..300 {
        ann.send(json!({"broadcast": {"data": "spam"}})).await;
    }
    let mut saw_rate_limited = false;
    let code = loop {
        match ann.next_event(Duration::from_secs(5)).await {
            Some(Event::Text(v)) if v["error"]["code"] == "rate_limited" => saw_rate_limited = true,
            Some(Event::Text(_)) => {}
            Some(Event::Closed(code)) => break code,
            None => panic!("the flood was tolerated"),
        }
    };
    assert!(saw_rate_limited);
    assert_eq!(code, Some(1008));
}

#[actix_web::test]
async fn peers_on_two_instances_see_each_other_and_exchange_offer_answer_and_candidates() {
    let world = world(2).await;
    let room = room();
    let (mut ann, ann_welcome) = world.join(0, &room, "Ann").await;
    let (mut bob, bob_welcome) = world.join(1, &room, "Bob").await;
    let (ann_id, bob_id) = (ann_welcome["peer_id"].clone(), bob_welcome["peer_id"].clone());
    assert_eq!(bob_welcome["peers"][0]["peer_id"], ann_id, "presence spans instances");
    assert_eq!(ann.recv().await["peer_joined"]["peer"]["peer_id"], bob_id);
    let (mut cat, _) = world.join(1, &room, "Cat").await;
    ann.recv().await;
    bob.recv().await;

    let offer = json!({"type": "offer", "sdp": "v=0 offer"});
    ann.send(json!({"signal": {"to": bob_id, "sdp": offer}})).await;
    assert_eq!(bob.recv().await, json!({"signal": {"from": ann_id, "sdp": offer}}));
    let answer = json!({"type": "answer", "sdp": "v=0 answer"});
    bob.send(json!({"signal": {"to": ann_id, "sdp": answer}})).await;
    assert_eq!(ann.recv().await, json!({"signal": {"from": bob_id, "sdp": answer}}));
    let candidate = json!({"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host", "sdp_mid": "0"});
    ann.send(json!({"signal": {"to": bob_id, "candidate": candidate}})).await;
    assert_eq!(bob.recv().await["signal"]["candidate"], candidate);
    assert!(cat.silent().await, "the third peer, on the same instance as Bob, sees none of it");

    ann.send(json!({"broadcast": {"data": "hello all"}})).await;
    assert_eq!(bob.recv().await, json!({"broadcast": {"from": ann_id, "data": "hello all"}}));
    assert_eq!(cat.recv().await["broadcast"]["data"], "hello all");
    assert!(ann.silent().await, "no echo to the sender");

    ann.send(json!({"bye": {}})).await;
    assert_eq!(bob.recv().await["peer_left"], json!({"peer_id": ann_id, "reason": "left"}));
    bob.send(json!({"signal": {"to": ann_id, "sdp": offer}})).await;
    assert_eq!(bob.recv().await["error"]["code"], "unknown_peer", "a peer that left another instance is gone");

    let metrics_url = world.gateways[1].replace("ws://", "http://").replace("/v1/signal", "/metrics");
    let mut response = awc::Client::new().get(metrics_url).send().await.unwrap();
    let metrics = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
    let relayed =
        metrics.lines().find(|l| l.starts_with("gateway_relay_latency_seconds_count")).expect("relay latency");
    assert!(relayed.rsplit(' ').next().unwrap().parse::<f64>().unwrap() >= 3.0, "{relayed}");
    assert!(metrics.contains(r#"gateway_messages_out_total{type="signal"}"#));
    assert!(metrics.contains(r#"gateway_messages_in_total{type="broadcast"}"#));
    // Calls, leaves and Redis health, named after the service like every gateway metric.
    assert!(metrics.contains("gateway_joins_total "), "{metrics}");
    assert!(metrics.contains(r#"gateway_leaves_total{reason="left"}"#), "{metrics}");
    assert!(metrics.contains("gateway_connections_active "), "{metrics}");
    // Its value is per process, and other tests' gateways start in this one: only its presence.
    assert!(metrics.contains("gateway_redis_connected "), "{metrics}");
    assert!(metrics.contains(r#"gateway_http_requests_total{method="GET",route="/v1/signal",status="101"}"#));
}

/// What this test process logs, as the JSON lines a gateway writes with `CONFAB_LOG_FORMAT=json`.
fn captured_logs() -> Arc<std::sync::Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = logs.clone();
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter("confab_gateway=info")
            .with_writer(move || LogWriter(sink.clone()))
            .init();
        logs
    })
    .clone()
}

struct LogWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The logged JSON line that has `field` = `value`, waiting up to 2 s for it.
async fn logged_with(logs: &std::sync::Mutex<Vec<u8>>, field: &str, value: &str) -> Value {
    for _ in 0..100 {
        let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        let lines = text.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok());
        if let Some(line) = lines.into_iter().find(|line| line[field] == value) {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no log line with {field} = {value}");
}

async fn publish_control(world: &World, control: confab_protocol::bus::Control) {
    use prost::Message as _;
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let channel = confab_domain::keys::control_channel(&world.redis_prefix);
    let _: i64 = redis::AsyncCommands::publish(&mut redis, channel, control.encode_to_vec()).await.unwrap();
}

#[actix_web::test]
async fn api_commands_close_the_right_connections_on_every_instance() {
    use confab_protocol::bus::{CloseRoom, Control, KickPeer, control::Command};
    let logs = captured_logs();
    let world = world(2).await;
    let (room_a, room_b) = (room(), room());
    let (mut ann, ann_welcome) = world.join(0, &room_a, "Ann").await;
    let (mut bob, _) = world.join(1, &room_a, "Bob").await;
    ann.recv().await;
    let (mut cat, _) = world.join(1, &room_b, "Cat").await;

    let kick = KickPeer { room_id: room_a.clone(), peer_id: ann_welcome["peer_id"].as_str().unwrap().to_owned() };
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let command = Some(Command::KickPeer(kick));
    publish_control(&world, Control { command, request_id: request_id.clone() }).await;
    assert_eq!(ann.recv().await, json!({"kicked": {"reason": "kicked"}}));
    // The gateway holding Ann's connection logs the API request behind the kick.
    let logged = logged_with(&logs, "request.id", &request_id).await;
    assert_eq!((logged["command"].as_str(), logged["room.id"].as_str()), (Some("kick_peer"), Some(room_a.as_str())));
    assert_eq!(logged["connections"], 1);
    assert_eq!(ann.closed().await, Some(1008));
    assert_eq!(bob.recv().await["peer_left"]["reason"], "kicked");

    let close = Command::CloseRoom(CloseRoom { room_id: room_a.clone() });
    publish_control(&world, Control { command: Some(close), request_id: String::new() }).await;
    assert_eq!(bob.recv().await, json!({"room_closed": {}}));
    assert_eq!(bob.closed().await, Some(1000));
    assert!(cat.silent().await, "other rooms are untouched");
}

#[actix_web::test]
async fn a_silent_peer_is_dropped_and_announced_while_one_that_answers_pings_stays() {
    let limits =
        Limits { heartbeat: Duration::from_millis(200), dead_after: Duration::from_millis(500), ..Limits::default() };
    let world = world_with(2, limits).await;
    let room = room();
    let (mut ann, _) = world.join(0, &room, "Ann").await;
    let (silent, silent_welcome) = world.join(1, &room, "Sid").await;
    assert!(ann.recv().await.get("peer_joined").is_some());
    // Sid's socket stays open but never answers a ping; Ann's test client answers every one.
    let left = ann.recv().await;
    assert_eq!(left["peer_left"], json!({"peer_id": silent_welcome["peer_id"], "reason": "timeout"}));
    assert!(ann.next_event(Duration::from_millis(1500)).await.is_none(), "a peer that answers pings is kept");
    drop(silent);
}

#[actix_web::test]
async fn the_recorder_is_hidden_takes_no_place_and_comes_and_goes_as_a_recording() {
    let world = world(2).await;
    let room = room();
    let mut ann = world.connect(0, &world.ticket(&room, "Ann", 2)).await.expect("admitted");
    let ann_welcome = ann.recv().await["welcome"].clone();
    let ann_id = ann_welcome["peer_id"].clone();

    let recorder_ticket =
        support::ticket_as(&world.keys, &room, "Recorder", "recorder-1", 2, "recorder", Some("rec-42"));
    let mut recorder = world.connect(1, &recorder_ticket).await.expect("the recorder takes no place");
    let recorder_welcome = recorder.recv().await["welcome"].clone();
    assert_eq!(recorder_welcome["peers"][0]["peer_id"], ann_id, "the recorder sees everyone");
    let recorder_id = recorder_welcome["peer_id"].clone();
    assert_eq!(
        ann.recv().await,
        json!({"recording_started": {"recording_id": "rec-42", "recorder_peer_id": recorder_id}})
    );

    // Bob fills the room of two (the recorder does not count) and learns of the recording.
    let mut bob = world.connect(0, &world.ticket(&room, "Bob", 2)).await.expect("a place is left");
    let bob_welcome = bob.recv().await["welcome"].clone();
    assert_eq!(bob_welcome["recording"], true);
    assert_eq!(bob_welcome["peers"].as_array().unwrap().len(), 1, "only Ann: {bob_welcome}");
    assert_eq!(bob.recv().await["recording_started"]["recorder_peer_id"], recorder_id);
    assert!(recorder.recv().await.get("peer_joined").is_some(), "the recorder hears of Bob");
    assert_eq!(ann.recv().await["peer_joined"]["peer"]["display_name"], "Bob");
    let mut cat = world.connect(1, &world.ticket(&room, "Cat", 2)).await.expect("refused in band");
    assert_eq!(cat.recv().await["error"]["code"], "room_full");

    // Media offers go to the recorder like to any peer.
    let offer = json!({"type": "offer", "sdp": "v=0 sendonly"});
    ann.send(json!({"signal": {"to": recorder_id, "sdp": offer}})).await;
    assert_eq!(recorder.recv().await, json!({"signal": {"from": ann_id, "sdp": offer}}));

    recorder.send(json!({"bye": {}})).await;
    let stopped = json!({"recording_stopped": {"recording_id": "rec-42", "recorder_peer_id": recorder_id}});
    assert_eq!(ann.recv().await, stopped);
    assert_eq!(bob.recv().await, stopped);
}

#[actix_web::test]
async fn a_camera_is_seen_by_name_takes_no_place_and_is_no_participant_for_webhooks() {
    let world = world(2).await;
    let room = room();
    let mut ann = world.connect(0, &world.ticket(&room, "Ann", 2)).await.expect("admitted");
    let ann_id = ann.recv().await["welcome"]["peer_id"].clone();

    let camera_ticket = support::ticket_as(&world.keys, &room, "Front door", "camera-7", 2, "camera", None);
    let mut camera = world.connect(1, &camera_ticket).await.expect("the camera takes no place");
    let camera_welcome = camera.recv().await["welcome"].clone();
    assert_eq!(camera_welcome["peers"][0]["peer_id"], ann_id, "the camera sees everyone");
    let camera_id = camera_welcome["peer_id"].clone();
    let camera_peer =
        json!({"peer_id": camera_id, "user_id": "camera-7", "display_name": "Front door", "role": "camera"});
    assert_eq!(ann.recv().await, json!({"peer_joined": {"peer": camera_peer}}));

    // Bob fills the room of two (the camera does not count) and sees the camera among the peers.
    let mut bob = world.connect(0, &world.ticket(&room, "Bob", 2)).await.expect("a place is left");
    let bob_welcome = bob.recv().await["welcome"].clone();
    assert_eq!(bob_welcome["peers"].as_array().unwrap().len(), 2, "Ann and the camera: {bob_welcome}");
    assert_eq!(bob_welcome["peers"][1], camera_peer);
    assert!(bob_welcome.get("recording").is_none(), "a camera is no recording: {bob_welcome}");
    assert_eq!(camera.recv().await["peer_joined"]["peer"]["display_name"], "Bob");
    assert_eq!(ann.recv().await["peer_joined"]["peer"]["display_name"], "Bob");
    let mut cat = world.connect(1, &world.ticket(&room, "Cat", 2)).await.expect("refused in band");
    assert_eq!(cat.recv().await["error"]["code"], "room_full");

    // The camera offers like any peer.
    let offer = json!({"type": "offer", "sdp": "v=0 sendonly"});
    camera.send(json!({"signal": {"to": ann_id, "sdp": offer}})).await;
    assert_eq!(ann.recv().await, json!({"signal": {"from": camera_id, "sdp": offer}}));

    camera.send(json!({"bye": {}})).await;
    let left = json!({"peer_left": {"peer_id": camera_id, "reason": "left"}});
    assert_eq!(ann.recv().await, left);
    assert_eq!(bob.recv().await, left);

    // The webhooks' stream has Ann and Bob only.
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let stream = confab_domain::keys::presence_events(&world.redis_prefix);
    let entries: Vec<(String, HashMap<String, String>)> =
        redis::cmd("XRANGE").arg(&stream).arg("-").arg("+").query_async(&mut redis).await.unwrap();
    let names: Vec<(String, String)> = entries
        .iter()
        .map(|(_, fields)| {
            let peer: Value = serde_json::from_str(&fields["peer"]).unwrap();
            (fields["type"].clone(), peer["display_name"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        names,
        [("participant.joined".to_owned(), "Ann".to_owned()), ("participant.joined".to_owned(), "Bob".to_owned())]
    );
}

/// Publishes a broadcast for `to` as another instance would, numbered `seq` in its sequence.
async fn publish_numbered(world: &World, room: &str, to: &str, seq: u64) {
    use confab_protocol::bus::{Delivery, RoomEvent, room_event::Event};
    use confab_protocol::signal::{Broadcast, ServerMessage, server_message::Kind};
    use prost::Message as _;
    let message =
        ServerMessage { kind: Some(Kind::Broadcast(Broadcast { from: "p-far".into(), data: seq.to_string() })) };
    let event = RoomEvent {
        origin_instance: "gw-elsewhere".into(),
        event: Some(Event::Delivery(Delivery { to: to.to_owned(), message: Some(message) })),
        seq,
        read_at_us: 0,
    };
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let channel = confab_domain::keys::room_channel(&world.redis_prefix, room);
    let _: i64 = redis::AsyncCommands::publish(&mut redis, channel, event.encode_to_vec()).await.unwrap();
}

#[actix_web::test]
async fn a_gap_in_another_instances_sequence_brings_a_resync() {
    let world = world(2).await;
    let room = room();
    let (mut ann, ann_welcome) = world.join(0, &room, "Ann").await;
    let (_bob, bob_welcome) = world.join(1, &room, "Bob").await;
    assert!(ann.recv().await.get("peer_joined").is_some());
    let ann_id = ann_welcome["peer_id"].as_str().unwrap();

    for seq in [1, 2] {
        publish_numbered(&world, &room, ann_id, seq).await;
        assert_eq!(ann.recv().await["broadcast"]["data"], seq.to_string());
    }
    assert!(ann.silent().await, "events in sequence need no resync");

    // Events 3 and 4 never arrived.
    publish_numbered(&world, &room, ann_id, 5).await;
    assert_eq!(ann.recv().await["broadcast"]["data"], "5");
    let resync = ann.recv().await;
    let peers: Vec<&Value> = resync["resync"]["peers"].as_array().expect("a resync").iter().collect();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0]["peer_id"], bob_welcome["peer_id"]);

    // A new series (the other instance began serving the room afresh) is no gap.
    publish_numbered(&world, &room, ann_id, 1).await;
    assert_eq!(ann.recv().await["broadcast"]["data"], "1");
    assert!(ann.silent().await);
}

#[actix_web::test]
async fn peers_of_a_dead_instance_are_announced_as_left_and_their_places_freed() {
    let world = world(1).await;
    let room = room();
    let (mut ann, _) = world.join(0, &room, "Ann").await;
    // What a `kill -9`-ed instance leaves behind: its presence, and a heartbeat key that expires.
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let key = confab_domain::keys::room_peers(&world.redis_prefix, &room);
    let ghost = json!({"peer_id": "ghost", "user_id": "u", "display_name": "Gus", "role": "member",
        "instance_id": "gw-killed", "joined_at": "2026-01-01T00:00:00Z"});
    let _: () = redis::AsyncCommands::hset(&mut redis, &key, "ghost", ghost.to_string()).await.unwrap();
    let started = std::time::Instant::now();
    let left = loop {
        match ann.next_event(Duration::from_secs(15)).await {
            Some(Event::Text(v)) if v.get("peer_left").is_some() => break v,
            Some(Event::Text(_)) => {}
            _ => panic!("no peer_left for the dead instance's peer"),
        }
    };
    assert_eq!(left["peer_left"], json!({"peer_id": "ghost", "reason": "disconnected"}));
    assert!(started.elapsed() <= Duration::from_secs(15));
    let present: i64 = redis::AsyncCommands::hlen(&mut redis, &key).await.unwrap();
    assert_eq!(present, 1, "only Ann, on a live instance, is left");
}

/// A gateway in its own process, killed (SIGKILL) when dropped.
struct GatewayProcess(std::process::Child);

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl World {
    /// Starts the `confab-gateway` binary as one more instance of this world; its URL is added
    /// to `gateways`.
    async fn spawn_process(&mut self, instance_id: &str) -> GatewayProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_confab-gateway"))
            .env("CONFAB_BIND", format!("127.0.0.1:{port}"))
            .env("REDIS_URL", redis_url())
            .env("CONFAB_REDIS_PREFIX", &self.redis_prefix)
            .env("CONFAB_JWKS_URL", &self.jwks_url)
            .env("CONFAB_INSTANCE_ID", instance_id)
            .env("CONFAB_LOG_LEVEL", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the gateway binary starts");
        let process = GatewayProcess(child);
        let health = format!("http://127.0.0.1:{port}/healthz");
        for _ in 0..100 {
            if awc::Client::new().get(&health).send().await.is_ok_and(|r| r.status().is_success()) {
                self.gateways.push(format!("ws://127.0.0.1:{port}/v1/signal"));
                return process;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the gateway process did not become healthy");
    }
}

#[actix_web::test]
async fn a_gateway_process_killed_with_sigkill_has_its_peers_announced_as_left_by_the_survivor() {
    let mut world = world(1).await;
    let doomed = world.spawn_process("gw-doomed").await;
    let room = room();
    let (mut ann, _) = world.join(0, &room, "Ann").await;
    let (_bob, bob_welcome) = world.join(1, &room, "Bob").await;
    assert_eq!(ann.recv().await["peer_joined"]["peer"]["peer_id"], bob_welcome["peer_id"]);

    drop(doomed);
    // Heartbeat expiry (10 s) and a sweep (3 s) find it dead; the resume window's remainder (5 s)
    // and another sweep later, Bob, who never came back, leaves.
    let left = loop {
        match ann.next_event(Duration::from_secs(25)).await {
            Some(Event::Text(v)) if v.get("peer_left").is_some() => break v,
            Some(Event::Text(_)) => {}
            _ => panic!("no peer_left within 25 s of the kill"),
        }
    };
    assert_eq!(left["peer_left"], json!({"peer_id": bob_welcome["peer_id"], "reason": "disconnected"}));
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let present: i64 =
        redis::AsyncCommands::hlen(&mut redis, confab_domain::keys::room_peers(&world.redis_prefix, &room))
            .await
            .unwrap();
    assert_eq!(present, 1, "Bob's place is free again");
}

/// Everything a peer hears within `watch` (pings answered); stops early if the socket closes.
async fn heard_within(peer: &mut Peer, watch: Duration) -> Vec<Value> {
    let deadline = std::time::Instant::now() + watch;
    let mut heard = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match peer.next_event(left).await {
            Some(Event::Text(message)) => heard.push(message),
            Some(Event::Closed(_)) | None => break,
        }
    }
    heard
}

fn comings_and_goings(heard: &[Value]) -> Vec<&Value> {
    heard.iter().filter(|m| m.get("peer_left").is_some() || m.get("peer_joined").is_some()).collect()
}

#[actix_web::test]
async fn a_client_whose_gateway_is_killed_resumes_on_another_and_the_room_sees_nothing() {
    let mut world = world(1).await;
    let doomed = world.spawn_process("gw-doomed-resume").await;
    let room = room();
    let (mut ann, ann_welcome) = world.join(0, &room, "Ann").await;
    let bob_user = uuid::Uuid::new_v4().to_string();
    let (mut bob, bob_welcome) = world.join_as(1, &room, &bob_user).await;
    assert_eq!(ann.recv().await["peer_joined"]["peer"]["peer_id"], bob_welcome["peer_id"]);

    let killed = std::time::Instant::now();
    drop(doomed);
    assert!(
        matches!(bob.next_event(Duration::from_secs(5)).await, Some(Event::Closed(_))),
        "Bob's socket dies with it"
    );
    let token = bob_welcome["resume_token"].as_str().unwrap();
    let (mut bob, resumed) = world.resume(0, &room, &bob_user, token).await;
    let back_in = killed.elapsed();
    println!("Bob was back in the call {} ms after his gateway was killed", back_in.as_millis());
    assert_eq!(resumed["peer_id"], bob_welcome["peer_id"], "same peer id");
    assert_eq!(resumed["peers"][0]["peer_id"], ann_welcome["peer_id"]);

    // Past the dead gateway's heartbeat, a sweep and the resume window's remainder.
    let heard = heard_within(&mut ann, Duration::from_secs(16)).await;
    assert!(comings_and_goings(&heard).is_empty(), "Ann saw nothing of it: {heard:?}");
    ann.send(json!({"signal": {"to": bob_welcome["peer_id"], "sdp": {"type": "offer", "sdp": "v=0"}}})).await;
    assert_eq!(bob.recv().await["signal"]["from"], ann_welcome["peer_id"]);
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let present: i64 =
        redis::AsyncCommands::hlen(&mut redis, confab_domain::keys::room_peers(&world.redis_prefix, &room))
            .await
            .unwrap();
    assert_eq!(present, 2, "no ghost of Bob's old connection");
}

#[actix_web::test]
async fn a_gateway_restarted_under_its_old_id_lets_its_predecessors_peers_resume_or_leave() {
    let mut world = world(1).await;
    let first_life = world.spawn_process("gw-phoenix").await;
    let room = room();
    let capacity = 3;
    let (mut ann, _) = world.connect_and_welcome(0, &room, "Ann", &uuid::Uuid::new_v4().to_string(), capacity).await;
    let bob_user = uuid::Uuid::new_v4().to_string();
    let (_bob, bob_welcome) = world.connect_and_welcome(1, &room, "Bob", &bob_user, capacity).await;
    let cat_user = uuid::Uuid::new_v4().to_string();
    let (_cat, cat_welcome) = world.connect_and_welcome(1, &room, "Cat", &cat_user, capacity).await;
    ann.recv().await;
    ann.recv().await;

    drop(first_life);
    let _second_life = world.spawn_process("gw-phoenix").await;
    let restarted = std::time::Instant::now();
    // Bob comes back to the restarted gateway; Cat never does.
    let token = bob_welcome["resume_token"].as_str().unwrap();
    let (_bob, resumed) = world.resume(2, &room, &bob_user, token).await;
    assert_eq!(resumed["peer_id"], bob_welcome["peer_id"]);

    let cat_left = loop {
        match ann.next_event(Duration::from_secs(25)).await {
            Some(Event::Text(v)) if v.get("peer_left").is_some() || v.get("peer_joined").is_some() => break v,
            Some(Event::Text(_)) => {}
            _ => panic!("Cat's ghost was never cleared"),
        }
    };
    assert_eq!(cat_left["peer_left"], json!({"peer_id": cat_welcome["peer_id"], "reason": "disconnected"}));
    println!("Cat's place was freed {} ms after the restart", restarted.elapsed().as_millis());
    assert!(restarted.elapsed() <= Duration::from_secs(20), "within the resume window and a sweep");
    let (_cat_again, again) = world.connect_and_welcome(0, &room, "Cat", &cat_user, capacity).await;
    assert_ne!(again["peer_id"], cat_welcome["peer_id"], "Cat's place is free for her to join afresh");
    assert_eq!(ann.recv().await["peer_joined"]["peer"]["peer_id"], again["peer_id"]);
}

impl World {
    /// Joins as `user` with a resume token, as a client does after losing its connection.
    async fn resume(&self, gateway: usize, room: &str, user: &str, token: &str) -> (Peer, Value) {
        let ticket = self.ticket_for(room, "Bob", user, 8);
        let url = format!("{}?ticket={ticket}&resume={token}", self.gateways[gateway]);
        let (_, socket) = awc::Client::new().ws(url).connect().await.unwrap();
        let mut peer = Peer { socket };
        let welcome = peer.recv().await;
        (peer, welcome["welcome"].clone())
    }

    /// Joins as `user` named `name` in a room of `capacity`; the peer and its welcome.
    async fn connect_and_welcome(
        &self,
        gateway: usize,
        room: &str,
        name: &str,
        user: &str,
        capacity: u32,
    ) -> (Peer, Value) {
        let mut peer = self.connect(gateway, &self.ticket_for(room, name, user, capacity)).await.expect("admitted");
        let welcome = peer.recv().await;
        assert!(welcome.get("welcome").is_some(), "{welcome}");
        (peer, welcome["welcome"].clone())
    }

    async fn join_as(&self, gateway: usize, room: &str, user: &str) -> (Peer, Value) {
        let mut peer = self.connect(gateway, &self.ticket_for(room, "Bob", user, 8)).await.expect("admitted");
        let welcome = peer.recv().await;
        (peer, welcome["welcome"].clone())
    }
}

#[actix_web::test]
async fn a_dropped_client_that_resumes_in_time_keeps_its_peer_id_and_nobody_notices() {
    let world = world(2).await;
    let room = room();
    let (mut ann, ann_welcome) = world.join(0, &room, "Ann").await;
    let bob_user = uuid::Uuid::new_v4().to_string();
    let (bob, bob_welcome) = world.join_as(1, &room, &bob_user).await;
    ann.recv().await;
    drop(bob);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let token = bob_welcome["resume_token"].as_str().unwrap();
    let (mut bob, resumed) = world.resume(0, &room, &bob_user, token).await;
    assert_eq!(resumed["peer_id"], bob_welcome["peer_id"]);
    assert_eq!(resumed["peers"][0]["peer_id"], ann_welcome["peer_id"]);
    assert!(ann.silent().await, "no peer_left, no peer_joined");
    let offer = json!({"type": "offer", "sdp": "v=0"});
    ann.send(json!({"signal": {"to": bob_welcome["peer_id"], "sdp": offer}})).await;
    assert_eq!(bob.recv().await["signal"]["from"], ann_welcome["peer_id"]);
}

#[actix_web::test]
async fn a_dropped_client_that_does_not_resume_leaves_and_its_token_serves_no_one_else() {
    let world = world_with(1, Limits { resume_window: Duration::from_millis(700), ..Limits::default() }).await;
    let room = room();
    let (mut ann, _) = world.join(0, &room, "Ann").await;
    let (bob, bob_welcome) = world.join_as(0, &room, &uuid::Uuid::new_v4().to_string()).await;
    ann.recv().await;
    drop(bob);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let token = bob_welcome["resume_token"].as_str().unwrap();
    let (_eve, eve) = world.resume(0, &room, &uuid::Uuid::new_v4().to_string(), token).await;
    assert_ne!(eve["peer_id"], bob_welcome["peer_id"], "another user's ticket cannot take the peer over");
    assert!(ann.recv().await.get("peer_joined").is_some(), "Eve joins as herself");
    let left = ann.recv().await;
    assert_eq!(left["peer_left"], json!({"peer_id": bob_welcome["peer_id"], "reason": "disconnected"}));
}

#[actix_web::test]
async fn one_user_may_hold_several_tabs_but_not_unboundedly_many() {
    let world = world_with(2, Limits { connections_per_user: 2, ..Limits::default() }).await;
    let room = room();
    let user = uuid::Uuid::new_v4().to_string();
    let (_tab1, first) = world.join_as(0, &room, &user).await;
    let (_tab2, second) = world.join_as(1, &room, &user).await;
    assert_ne!(first["peer_id"], second["peer_id"], "each tab is its own peer");
    let mut tab3 = world.connect(1, &world.ticket_for(&room, "Bob", &user, 8)).await.unwrap();
    assert_eq!(tab3.recv().await["error"]["code"], "too_many_connections");
    assert_eq!(tab3.closed().await, Some(1008));
    let (_other, other) = world.join(0, &room, "Ann").await;
    assert!(other.get("peer_id").is_some(), "other users still get in");
}

#[actix_web::test]
async fn a_client_that_stops_reading_is_disconnected_and_the_room_carries_on() {
    let limits =
        Limits { outbound_queue: 4, messages_per_second: 10_000.0, message_burst: 10_000.0, ..Limits::default() };
    let world = world_with(1, limits).await;
    let room = room();
    let (mut ann, _) = world.join(0, &room, "Ann").await;
    let (_stalled, stalled_welcome) = world.join(0, &room, "Sid").await;
    ann.recv().await;
    // Sid never reads again. Ann (who gets no echo) sends far more than Sid's socket buffers and
    // queue can hold, and watches for Sid to be cut off.
    let chunk = "x".repeat(60 * 1024);
    let mut sid_left = None;
    for _ in 0..1000 {
        ann.send(json!({"broadcast": {"data": chunk}})).await;
        if let Some(Event::Text(message)) = ann.next_event(Duration::from_millis(1)).await
            && message["peer_left"]["peer_id"] == stalled_welcome["peer_id"]
        {
            sid_left = Some(message);
            break;
        }
    }
    let left = sid_left.expect("the stalled reader was cut off");
    assert_eq!(left["peer_left"]["reason"], "slow_consumer");
    let (mut bob, _) = world.join(0, &room, "Bob").await;
    ann.recv().await;
    ann.send(json!({"broadcast": {"data": "still here"}})).await;
    // Bob may first get the tail of the flood still in flight; the room carries on either way.
    while bob.recv().await["broadcast"]["data"] != "still here" {}
}
