//! The gateway over real WebSockets and a real Redis, with tickets signed the way the API signs
//! them and served from a real JWKS endpoint. Participants speak the protocol's typed messages
//! (confab-testkit's `Signaling`); a raw client reads the wire itself where the point is what is
//! on it: hostile frames, handshake refusals, close codes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::ws::{Frame, Message};
use confab_common::tokens::SigningKeys;
use confab_domain::presence::{self, PeerPresence};
use confab_domain::{MediaRouting, RoomMode};
use confab_gateway::Settings;
use confab_gateway::ice::IceConfig;
use confab_gateway::settings::Limits;
use confab_protocol::signal::signal::Payload;
use confab_protocol::signal::{
    Broadcast, IceCandidate, IceServer, MediaChanged, Peer, PeerJoined, PeerLeft, Ping, Pong, RecordingStarted,
    RecordingStopped, SessionDescription, Sfu, Signal, Speaker, TrackRequest, Welcome, client_message,
};
use confab_testkit::{Kind, Signaling, TestKeys, env, eventually, gateway_settings, start_gateway};
use confab_tickets::TICKET_AUDIENCE;
use futures_util::{SinkExt, StreamExt};
use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};

mod support;

use support::{PATIENCE, heard_within, hears_nothing_before_a_signal};

type Socket = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

/// How long a test watches for a `resync` that should not come. A resync is sent by a task of its
/// own after a read of Redis, so nothing a test could wait for is ordered after it: only a quiet
/// window can show it did not come (a wrong one would come within a Redis round trip).
const NO_RESYNC_WITHIN: Duration = Duration::from_millis(500);

/// A JWKS endpoint, the keys behind it, and gateways sharing one Redis prefix.
struct World {
    keys: TestKeys,
    gateways: Vec<String>,
    stoppers: Vec<Arc<tokio::sync::watch::Sender<bool>>>,
    redis_prefix: String,
    jwks_url: String,
}

fn world(instances: usize) -> World {
    world_with(instances, Limits::default())
}

fn world_with(instances: usize, limits: Limits) -> World {
    let keys = TestKeys::default();
    let jwks_url = confab_testkit::jwks_server(&keys.keys);
    let redis_prefix = confab_testkit::redis_prefix();
    let (mut gateways, mut stoppers) = (Vec::new(), Vec::new());
    for index in 0..instances {
        let defaults = gateway_settings(&redis_prefix, &jwks_url, &format!("gw-test-{index}"));
        let gateway = start_gateway(Settings {
            allowed_origins: vec!["https://confab.test".into()],
            ice: IceConfig { stun_urls: vec!["stun:stun.confab.test:3478".into()], ..Default::default() },
            limits: limits.clone(),
            ..defaults
        });
        gateways.push(gateway.url);
        stoppers.push(gateway.stopper);
    }
    World { keys, gateways, stoppers, redis_prefix, jwks_url }
}

impl World {
    /// A member's ticket for `room` (of 4), for a user of its own.
    fn ticket(&self, room: &str, name: &str) -> String {
        self.keys.ticket(room, name, "member", None)
    }

    fn ticket_for(&self, room: &str, name: &str, user: &str) -> String {
        self.keys.ticket_for(user, room, name, "member", None)
    }

    /// A member's ticket for `room` holding up to `capacity` people.
    fn ticket_in_room_of(&self, capacity: u32, room: &str, name: &str, user: &str) -> String {
        support::member_ticket(&self.keys, room, name, user, capacity)
    }

    /// Joins through instance `gateway` with `ticket`.
    async fn join_with(&self, gateway: usize, ticket: &str) -> (Signaling, Welcome) {
        Signaling::join(&self.gateways[gateway], ticket).await
    }

    /// Joins `room` as a user of its own named `name`.
    async fn join(&self, gateway: usize, room: &str, name: &str) -> (Signaling, Welcome) {
        self.join_with(gateway, &self.ticket(room, name)).await
    }

    /// Joins `room` as `user` (named Bob), as one more tab of theirs would.
    async fn join_as(&self, gateway: usize, room: &str, user: &str) -> (Signaling, Welcome) {
        self.join_with(gateway, &self.ticket_for(room, "Bob", user)).await
    }

    /// Joins as `user` with a resume token, as a client does after losing its connection.
    async fn resume(&self, gateway: usize, room: &str, user: &str, token: &str) -> (Signaling, Welcome) {
        let url = format!("{}?resume={token}", self.gateways[gateway]);
        Signaling::join(&url, &self.ticket_for(room, "Bob", user)).await
    }

    /// Connects a raw client with the ticket as a subprotocol; the handshake status on refusal.
    async fn connect(&self, gateway: usize, ticket: &str) -> Result<Raw, u16> {
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
                Ok(Raw { socket })
            }
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => Err(status.as_u16()),
            Err(e) => panic!("connect failed: {e}"),
        }
    }

    /// Joins with a raw client: the client and its `welcome` as it is on the wire.
    async fn join_raw(&self, gateway: usize, ticket: &str) -> (Raw, Value) {
        let mut peer = self.connect(gateway, ticket).await.expect("admitted");
        let welcome = peer.recv().await;
        assert!(welcome.get("welcome").is_some(), "{welcome}");
        (peer, welcome["welcome"].clone())
    }

    async fn redis(&self) -> MultiplexedConnection {
        redis::Client::open(env("REDIS_URL")).unwrap().get_multiplexed_async_connection().await.unwrap()
    }

    /// How many peers the room's presence holds.
    async fn present(&self, room: &str) -> i64 {
        let key = confab_domain::keys::room_peers(&self.redis_prefix, room);
        redis::AsyncCommands::hlen(&mut self.redis().await, key).await.unwrap()
    }

    /// The presence entry of `peer_id`, if the room has one.
    async fn entry(&self, room: &str, peer_id: &str) -> Option<PeerPresence> {
        let key = confab_domain::keys::room_peers(&self.redis_prefix, room);
        let entry: Option<String> = redis::AsyncCommands::hget(&mut self.redis().await, key, peer_id).await.unwrap();
        entry.map(|entry| presence::parse(&entry).unwrap())
    }

    /// Waits until the gateway has noticed that `peer_id`'s connection dropped and parked the peer
    /// for a resume (or, `or_gone`, already freed its place).
    async fn parked(&self, room: &str, peer_id: &str, or_gone: bool) {
        eventually("the dropped connection is parked for a resume", PATIENCE, || async {
            match self.entry(room, peer_id).await {
                Some(entry) => (entry.parked_until_ms > 0).then_some(()),
                None => or_gone.then_some(()),
            }
        })
        .await;
    }
}

/// A client that reads the wire itself, answering pings on the way.
struct Raw {
    socket: Socket,
}

enum Event {
    Text(Value),
    Closed(Option<u16>),
}

impl Raw {
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
}

fn room() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn user() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn sdp(kind: &str, sdp: &str) -> Payload {
    Payload::Sdp(SessionDescription { r#type: kind.into(), sdp: sdp.into() })
}

/// `payload` as the peer it is addressed to receives it from `from`.
fn signal_from(from: &str, payload: &Payload) -> Kind {
    Kind::Signal(Signal { from: from.to_owned(), payload: Some(payload.clone()), ..Signal::default() })
}

fn left(peer_id: &str, reason: &str) -> Kind {
    Kind::PeerLeft(PeerLeft { peer_id: peer_id.to_owned(), reason: reason.to_owned() })
}

/// The peer a `peer_joined` announces; any other message fails the test.
fn joined(message: Kind) -> Peer {
    match message {
        Kind::PeerJoined(PeerJoined { peer: Some(peer) }) => peer,
        other => panic!("expected peer_joined, got {other:?}"),
    }
}

fn error_code(message: Kind) -> String {
    match message {
        Kind::Error(error) => error.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn data_of(message: Kind) -> String {
    match message {
        Kind::Broadcast(broadcast) => broadcast.data,
        other => panic!("expected a broadcast, got {other:?}"),
    }
}

fn peer_left(message: Kind) -> Option<PeerLeft> {
    match message {
        Kind::PeerLeft(left) => Some(left),
        _ => None,
    }
}

/// Ann, Bob and Cat join `room`, in that order, through the instances `on`: each `welcome` lists
/// those already there (presence spans instances), and those already there are told of each
/// arrival.
async fn ann_bob_and_cat(world: &World, room: &str, on: [usize; 3]) -> [(Signaling, Welcome); 3] {
    let names = ["Ann", "Bob", "Cat"];
    let mut here: Vec<(Signaling, Welcome)> = Vec::new();
    for (name, gateway) in names.into_iter().zip(on) {
        let (signaling, welcome) = world.join(gateway, room, name).await;
        let listed: Vec<(&str, &str)> =
            welcome.peers.iter().map(|p| (p.peer_id.as_str(), p.display_name.as_str())).collect();
        let earlier: Vec<(&str, &str)> =
            here.iter().zip(names).map(|((_, w), name)| (w.peer_id.as_str(), name)).collect();
        assert_eq!(listed, earlier, "{name}'s welcome lists those already there");
        for (other, _) in &mut here {
            assert_eq!(joined(other.recv().await).peer_id, welcome.peer_id, "told of {name}");
        }
        here.push((signaling, welcome));
    }
    here.try_into().unwrap_or_else(|_| unreachable!("three joined"))
}

#[actix_web::test]
async fn peers_are_welcomed_announced_and_signals_reach_only_the_addressed_peer() {
    let world = world(1);
    let [(mut ann, ann_welcome), (mut bob, bob_welcome), (mut cat, cat_welcome)] =
        ann_bob_and_cat(&world, &room(), [0, 0, 0]).await;
    let stun = IceServer { urls: vec!["stun:stun.confab.test:3478".into()], ..Default::default() };
    assert_eq!(ann_welcome.ice_servers, [stun]);
    let (ann_id, bob_id) = (ann_welcome.peer_id.as_str(), bob_welcome.peer_id.as_str());

    let offer = sdp("offer", "v=0 offer");
    ann.signal(bob_id, offer.clone()).await;
    assert_eq!(bob.recv().await, signal_from(ann_id, &offer));
    // Bob has it, so the gateway has routed it: a third peer never sees a signal addressed to
    // someone else, and its sender gets no echo.
    hears_nothing_before_a_signal(&mut cat, &cat_welcome.peer_id, &mut ann, ann_id).await;
    hears_nothing_before_a_signal(&mut ann, ann_id, &mut bob, bob_id).await;
}

#[actix_web::test]
async fn protocol_errors_are_answered_and_the_connection_survives() {
    let world = world(1);
    let (mut ann, welcome) = world.join_raw(0, &world.ticket(&room(), "Ann")).await;
    assert!(welcome.get("peers").is_none(), "empty lists are omitted, as proto3 JSON does");
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
    let world = world(1);
    let room = room();
    assert_eq!(world.connect(0, "not-a-ticket").await.err(), Some(401));
    let ticket = world.ticket(&room, "Ann");
    let mut first = world.connect(0, &ticket).await.unwrap();
    first.recv().await;
    assert_eq!(world.connect(0, &ticket).await.err(), Some(401), "tickets are single use");
    let guest = world.keys.ticket(&room, "Gus", "guest", None);
    assert_eq!(world.connect(0, &guest).await.err(), Some(401), "a role no service issues");
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
        .protocols([format!("confab.ticket.{}", world.ticket(&room, "Eve"))])
        .connect()
        .await;
    assert!(matches!(evil, Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s.as_u16() == 403));
    let allowed = awc::Client::new()
        .ws(format!("{}?ticket={}", world.gateways[0], world.ticket(&room, "Dan")))
        .origin("https://confab.test")
        .connect()
        .await;
    assert!(allowed.is_ok(), "an allowed origin with the query-string ticket gets in");
}

#[actix_web::test]
async fn capacity_holds_across_instances_under_a_race() {
    let world = world(2);
    let room = room();
    let tickets: Vec<String> = (0..8).map(|i| world.ticket_in_room_of(3, &room, &format!("P{i}"), &user())).collect();
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
    let world = world(1);
    let room = room();
    let (mut ann, ann_welcome) = world.join_raw(0, &world.ticket(&room, "Ann")).await;
    let (mut bob, _) = world.join_raw(0, &world.ticket(&room, "Bob")).await;
    ann.recv().await;
    bob.send(json!({"broadcast": {"data": "x".repeat(70 * 1024)}})).await;
    assert_eq!(bob.closed().await, Some(1009));
    let left = ann.recv().await;
    assert_eq!(left["peer_left"]["reason"], "message_too_big");
    let (mut cat, _) = world.join_raw(0, &world.ticket(&room, "Cat")).await;
    ann.recv().await;
    ann.send(json!({"bye": {}})).await;
    assert_eq!(cat.recv().await["peer_left"], json!({"peer_id": ann_welcome["peer_id"], "reason": "left"}));
}

#[actix_web::test]
async fn a_message_over_the_limit_in_continuation_frames_closes_with_1009_and_leaves_at_once() {
    use actix_ws::Item;
    let world = world(1);
    let room = room();
    let (mut ann, _) = world.join_raw(0, &world.ticket(&room, "Ann")).await;
    let (mut bob, bob_welcome) = world.join_raw(0, &world.ticket(&room, "Bob")).await;
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
    let world = world(1);
    let room = room();
    let (mut ann, _) = world.join_raw(0, &world.ticket(&room, "Ann")).await;
    let (mut bob, bob_welcome) = world.join_raw(0, &world.ticket(&room, "Bob")).await;
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
    let world = world(1);
    let room = room();
    let (mut ann, welcome) = world.join(0, &room, "Ann").await;
    let entry = world.entry(&room, &welcome.peer_id).await.expect("Ann's presence entry");
    assert_eq!((entry.instance_id.as_str(), entry.display_name.as_str()), ("gw-test-0", "Ann"));
    let mut redis = world.redis().await;
    let live: bool =
        redis::AsyncCommands::sismember(&mut redis, confab_domain::keys::live_rooms(&world.redis_prefix), &room)
            .await
            .unwrap();
    assert!(live);
    let recorder_ticket = world.keys.ticket_for("recorder-1", &room, "Recorder", "recorder", Some("rec-1".into()));
    let (mut recorder, _) = world.join_with(0, &recorder_ticket).await;
    recorder.bye().await;
    ann.bye().await;
    eventually("both leave the room's presence", PATIENCE, || async {
        (world.present(&room).await == 0).then_some(())
    })
    .await;

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
    let peer = presence::parse(&entries[1].1["peer"]).unwrap();
    assert_eq!((peer.peer_id, peer.display_name.as_str()), (welcome.peer_id, "Ann"));
}

#[actix_web::test]
async fn a_gateway_started_before_the_api_is_unready_until_it_has_the_keys_then_admits_at_once() {
    let keys = TestKeys::default();
    let jwks_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let jwks_url = format!("http://127.0.0.1:{jwks_port}/jwks");
    let gateway = start_gateway(gateway_settings(&confab_testkit::redis_prefix(), &jwks_url, "gw-early"));
    let readyz_url = gateway.url.replace("ws://", "http://").replace("/v1/signal", "/readyz");
    let readyz = async || {
        let mut res = awc::Client::new().get(&readyz_url).send().await.unwrap();
        (res.status().as_u16(), res.json::<Value>().await.unwrap())
    };
    // Redis answers at once; the API does not yet.
    let (status, body) = eventually("the gateway reaches Redis", PATIENCE, || async {
        let (status, body) = readyz().await;
        (body["checks"]["redis"] == "ok").then_some((status, body))
    })
    .await;
    assert_eq!((status, &body["checks"]["signing_keys"]), (503, &json!("unreachable")));

    confab_testkit::jwks_server_at(&keys.keys, jwks_port);
    eventually("ready within 3 s of the API answering", Duration::from_secs(3), || async {
        (readyz().await.0 == 200).then_some(())
    })
    .await;
    Signaling::join(&gateway.url, &keys.ticket(&room(), "Ann", "member", None)).await;
}

#[actix_web::test]
async fn shutdown_closes_every_socket_with_1012() {
    let world = world(1);
    let (mut ann, _) = world.join_raw(0, &world.ticket(&room(), "Ann")).await;
    world.stoppers[0].send(true).unwrap();
    assert_eq!(ann.closed().await, Some(1012));
}

#[actix_web::test]
async fn a_flooding_client_is_told_then_disconnected() {
    let world = world(1);
    let (mut ann, _) = world.join_raw(0, &world.ticket(&room(), "Ann")).await;
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
    let world = world(2);
    let [(mut ann, ann_welcome), (mut bob, bob_welcome), (mut cat, cat_welcome)] =
        ann_bob_and_cat(&world, &room(), [0, 1, 1]).await;
    let (ann_id, bob_id) = (ann_welcome.peer_id.as_str(), bob_welcome.peer_id.as_str());

    let offer = sdp("offer", "v=0 offer");
    ann.signal(bob_id, offer.clone()).await;
    assert_eq!(bob.recv().await, signal_from(ann_id, &offer));
    let answer = sdp("answer", "v=0 answer");
    bob.signal(ann_id, answer.clone()).await;
    assert_eq!(ann.recv().await, signal_from(bob_id, &answer));
    let candidate = Payload::Candidate(IceCandidate {
        candidate: "candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host".into(),
        sdp_mid: Some("0".into()),
        ..Default::default()
    });
    ann.signal(bob_id, candidate.clone()).await;
    assert_eq!(bob.recv().await, signal_from(ann_id, &candidate));
    // The third peer, on the same instance as Bob, saw none of it.
    hears_nothing_before_a_signal(&mut cat, &cat_welcome.peer_id, &mut ann, ann_id).await;

    ann.send(client_message::Kind::Broadcast(Broadcast { from: String::new(), data: "hello all".into() })).await;
    let hello = Kind::Broadcast(Broadcast { from: ann_id.to_owned(), data: "hello all".into() });
    assert_eq!(bob.recv().await, hello);
    assert_eq!(cat.recv().await, hello);
    // No echo to the sender: it would have been queued before the others had the broadcast.
    hears_nothing_before_a_signal(&mut ann, ann_id, &mut bob, bob_id).await;

    ann.bye().await;
    assert_eq!(bob.recv().await, left(ann_id, "left"));
    bob.signal(ann_id, offer).await;
    assert_eq!(error_code(bob.recv().await), "unknown_peer", "a peer that left another instance is gone");

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
    eventually(&format!("a log line with {field} = {value}"), Duration::from_secs(2), || {
        let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        let mut lines = text.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok());
        std::future::ready(lines.find(|line| line[field] == value))
    })
    .await
}

async fn publish_control(world: &World, control: confab_protocol::bus::Control) {
    use prost::Message as _;
    let channel = confab_domain::keys::control_channel(&world.redis_prefix);
    let _: i64 =
        redis::AsyncCommands::publish(&mut world.redis().await, channel, control.encode_to_vec()).await.unwrap();
}

#[actix_web::test]
async fn api_commands_close_the_right_connections_on_every_instance() {
    use confab_protocol::bus::{CloseRoom, Control, KickPeer, control::Command};
    let logs = captured_logs();
    let world = world(2);
    let (room_a, room_b) = (room(), room());
    let (mut ann, ann_welcome) = world.join_raw(0, &world.ticket(&room_a, "Ann")).await;
    let (mut bob, _) = world.join_raw(1, &world.ticket(&room_a, "Bob")).await;
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
    // Bob's instance, Cat's too, has carried the command out: Dan joining her room there is the
    // next thing she hears.
    let (_dan, dan_welcome) = world.join(1, &room_b, "Dan").await;
    assert_eq!(joined(cat.recv().await).peer_id, dan_welcome.peer_id, "other rooms are untouched");
}

#[actix_web::test]
async fn a_silent_peer_is_dropped_and_announced_while_one_that_answers_pings_stays() {
    let limits =
        Limits { heartbeat: Duration::from_millis(200), dead_after: Duration::from_millis(500), ..Limits::default() };
    // A peer that is kept shows only over time: three times `dead_after`, pings answered all along.
    let kept_for = limits.dead_after * 3;
    let world = world_with(2, limits);
    let room = room();
    let (mut ann, _) = world.join(0, &room, "Ann").await;
    let (silent, silent_welcome) = world.join(1, &room, "Sid").await;
    joined(ann.recv().await);
    // Sid's socket stays open but is never read, so it never answers a ping; Ann's is read, and
    // answers every one.
    assert_eq!(ann.recv().await, left(&silent_welcome.peer_id, "timeout"));
    assert_eq!(ann.recv_within(kept_for).await, None, "a peer that answers pings is kept");
    assert_eq!(world.present(&room).await, 1, "Ann is still in the room");
    drop(silent);
}

#[actix_web::test]
async fn the_recorder_is_hidden_takes_no_place_and_comes_and_goes_as_a_recording() {
    let world = world(2);
    let room = room();
    let ticket = |name: &str| world.ticket_in_room_of(2, &room, name, &user());
    let (mut ann, ann_welcome) = world.join_with(0, &ticket("Ann")).await;
    let ann_id = ann_welcome.peer_id.as_str();

    let recorder_ticket = world.keys.ticket_for("recorder-1", &room, "Recorder", "recorder", Some("rec-42".into()));
    let (mut recorder, recorder_welcome) = world.join_with(1, &recorder_ticket).await;
    assert_eq!(recorder_welcome.peers[0].peer_id, ann_id, "the recorder sees everyone");
    let recorder_id = recorder_welcome.peer_id.as_str();
    let started = RecordingStarted { recording_id: "rec-42".into(), recorder_peer_id: recorder_id.into() };
    assert_eq!(ann.recv().await, Kind::RecordingStarted(started.clone()));

    // Bob fills the room of two (the recorder does not count) and learns of the recording.
    let (mut bob, bob_welcome) = world.join_with(0, &ticket("Bob")).await;
    assert!(bob_welcome.recording);
    assert_eq!(bob_welcome.peers.len(), 1, "only Ann: {:?}", bob_welcome.peers);
    assert_eq!(bob.recv().await, Kind::RecordingStarted(started));
    assert_eq!(joined(recorder.recv().await).display_name, "Bob", "the recorder hears of Bob");
    assert_eq!(joined(ann.recv().await).display_name, "Bob");
    let mut cat = world.connect(1, &ticket("Cat")).await.expect("refused in band");
    assert_eq!(cat.recv().await["error"]["code"], "room_full");

    // Media offers go to the recorder like to any peer.
    let offer = sdp("offer", "v=0 sendonly");
    ann.signal(recorder_id, offer.clone()).await;
    assert_eq!(recorder.recv().await, signal_from(ann_id, &offer));

    recorder.bye().await;
    let stopped = RecordingStopped { recording_id: "rec-42".into(), recorder_peer_id: recorder_id.into() };
    assert_eq!(ann.recv().await, Kind::RecordingStopped(stopped.clone()));
    assert_eq!(bob.recv().await, Kind::RecordingStopped(stopped));
}

#[actix_web::test]
async fn a_camera_is_seen_by_name_takes_no_place_and_is_no_participant_for_webhooks() {
    let world = world(2);
    let room = room();
    let ticket = |name: &str| world.ticket_in_room_of(2, &room, name, &user());
    let (mut ann, ann_welcome) = world.join_with(0, &ticket("Ann")).await;
    let ann_id = ann_welcome.peer_id.as_str();

    let camera_ticket = world.keys.ticket_for("camera-7", &room, "Front door", "camera", None);
    let (mut camera, camera_welcome) = world.join_with(1, &camera_ticket).await;
    assert_eq!(camera_welcome.peers[0].peer_id, ann_id, "the camera sees everyone");
    let camera_id = camera_welcome.peer_id.as_str();
    let camera_peer = Peer {
        peer_id: camera_id.into(),
        user_id: "camera-7".into(),
        display_name: "Front door".into(),
        role: "camera".into(),
    };
    assert_eq!(joined(ann.recv().await), camera_peer);

    // Bob fills the room of two (the camera does not count) and sees the camera among the peers.
    let (mut bob, bob_welcome) = world.join_with(0, &ticket("Bob")).await;
    assert_eq!(bob_welcome.peers.len(), 2, "Ann and the camera: {:?}", bob_welcome.peers);
    assert_eq!(bob_welcome.peers[1], camera_peer);
    assert!(!bob_welcome.recording, "a camera is no recording");
    assert_eq!(joined(camera.recv().await).display_name, "Bob");
    assert_eq!(joined(ann.recv().await).display_name, "Bob");
    let mut cat = world.connect(1, &ticket("Cat")).await.expect("refused in band");
    assert_eq!(cat.recv().await["error"]["code"], "room_full");

    // The camera offers like any peer.
    let offer = sdp("offer", "v=0 sendonly");
    camera.signal(ann_id, offer.clone()).await;
    assert_eq!(ann.recv().await, signal_from(camera_id, &offer));

    camera.bye().await;
    assert_eq!(ann.recv().await, left(camera_id, "left"));
    assert_eq!(bob.recv().await, left(camera_id, "left"));

    // The webhooks' stream has Ann and Bob only.
    let stream = confab_domain::keys::presence_events(&world.redis_prefix);
    let entries: Vec<(String, HashMap<String, String>)> =
        redis::cmd("XRANGE").arg(&stream).arg("-").arg("+").query_async(&mut world.redis().await).await.unwrap();
    let names: Vec<(&str, String)> = entries
        .iter()
        .map(|(_, fields)| (fields["type"].as_str(), presence::parse(&fields["peer"]).unwrap().display_name))
        .collect();
    assert_eq!(names, [("participant.joined", "Ann".to_owned()), ("participant.joined", "Bob".to_owned())]);
}

/// Publishes a broadcast for `to` as another instance would, numbered `seq` in its sequence.
async fn publish_numbered(world: &World, room: &str, to: &str, seq: u64) {
    use confab_protocol::bus::{Delivery, RoomEvent, room_event::Event};
    use confab_protocol::signal::ServerMessage;
    use prost::Message as _;
    let message =
        ServerMessage { kind: Some(Kind::Broadcast(Broadcast { from: "p-far".into(), data: seq.to_string() })) };
    let event = RoomEvent {
        origin_instance: "gw-elsewhere".into(),
        event: Some(Event::Delivery(Delivery { to: to.to_owned(), message: Some(message) })),
        seq,
        read_at_us: 0,
    };
    let channel = confab_domain::keys::room_channel(&world.redis_prefix, room);
    let _: i64 = redis::AsyncCommands::publish(&mut world.redis().await, channel, event.encode_to_vec()).await.unwrap();
}

#[actix_web::test]
async fn a_gap_in_another_instances_sequence_brings_a_resync() {
    let world = world(2);
    let room = room();
    let (mut ann, ann_welcome) = world.join(0, &room, "Ann").await;
    let (_bob, bob_welcome) = world.join(1, &room, "Bob").await;
    joined(ann.recv().await);
    let ann_id = ann_welcome.peer_id.as_str();

    for seq in [1, 2] {
        publish_numbered(&world, &room, ann_id, seq).await;
        assert_eq!(data_of(ann.recv().await), seq.to_string());
    }
    assert_eq!(ann.recv_within(NO_RESYNC_WITHIN).await, None, "events in sequence need no resync");

    // Events 3 and 4 never arrived.
    publish_numbered(&world, &room, ann_id, 5).await;
    assert_eq!(data_of(ann.recv().await), "5");
    let Kind::Resync(resync) = ann.recv().await else { panic!("no resync after the gap") };
    let peers: Vec<&str> = resync.peers.iter().map(|peer| peer.peer_id.as_str()).collect();
    assert_eq!(peers, [bob_welcome.peer_id.as_str()]);

    // A new series (the other instance began serving the room afresh) is no gap.
    publish_numbered(&world, &room, ann_id, 1).await;
    assert_eq!(data_of(ann.recv().await), "1");
    assert_eq!(ann.recv_within(NO_RESYNC_WITHIN).await, None);
}

#[actix_web::test]
async fn peers_of_a_dead_instance_are_announced_as_left_and_their_places_freed() {
    let world = world(1);
    let room = room();
    let (mut ann, _) = world.join(0, &room, "Ann").await;
    // What a `kill -9`-ed instance leaves behind: its presence, and a heartbeat key that expires.
    let ghost = PeerPresence {
        peer_id: "ghost".into(),
        user_id: "u".into(),
        display_name: "Gus".into(),
        role: "member".into(),
        instance_id: "gw-killed".into(),
        joined_at: "2026-01-01T00:00:00Z".into(),
        ..Default::default()
    };
    let key = confab_domain::keys::room_peers(&world.redis_prefix, &room);
    let _: () =
        redis::AsyncCommands::hset(&mut world.redis().await, &key, "ghost", presence::to_json(&ghost)).await.unwrap();
    let left = ann.next_of_within(Duration::from_secs(15), peer_left).await;
    let left = left.expect("a peer_left for the dead instance's peer within 15 s");
    assert_eq!(left, PeerLeft { peer_id: "ghost".into(), reason: "disconnected".into() });
    assert_eq!(world.present(&room).await, 1, "only Ann, on a live instance, is left");
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
            .env("REDIS_URL", env("REDIS_URL"))
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
        eventually("the gateway process is healthy", PATIENCE, || async {
            awc::Client::new().get(&health).send().await.is_ok_and(|r| r.status().is_success()).then_some(())
        })
        .await;
        self.gateways.push(format!("ws://127.0.0.1:{port}/v1/signal"));
        process
    }
}

#[actix_web::test]
async fn a_gateway_process_killed_with_sigkill_has_its_peers_announced_as_left_by_the_survivor() {
    let mut world = world(1);
    let doomed = world.spawn_process("gw-doomed").await;
    let room = room();
    let (mut ann, _) = world.join(0, &room, "Ann").await;
    let (_bob, bob_welcome) = world.join(1, &room, "Bob").await;
    assert_eq!(joined(ann.recv().await).peer_id, bob_welcome.peer_id);

    drop(doomed);
    // Heartbeat expiry (10 s) and a sweep (3 s) find it dead; the resume window's remainder (5 s)
    // and another sweep later, Bob, who never came back, leaves.
    let left =
        ann.next_of_within(Duration::from_secs(25), peer_left).await.expect("a peer_left within 25 s of the kill");
    assert_eq!(left, PeerLeft { peer_id: bob_welcome.peer_id, reason: "disconnected".into() });
    assert_eq!(world.present(&room).await, 1, "Bob's place is free again");
}

fn comings_and_goings(heard: &[Kind]) -> Vec<&Kind> {
    heard.iter().filter(|m| matches!(m, Kind::PeerLeft(_) | Kind::PeerJoined(_))).collect()
}

#[actix_web::test]
async fn a_client_whose_gateway_is_killed_resumes_on_another_and_the_room_sees_nothing() {
    let mut world = world(1);
    let doomed = world.spawn_process("gw-doomed-resume").await;
    let room = room();
    let (mut ann, ann_welcome) = world.join(0, &room, "Ann").await;
    let bob_user = user();
    // Bob's first connection reads the wire itself, to see it die.
    let (mut bob, bob_welcome) = world.join_raw(1, &world.ticket_for(&room, "Bob", &bob_user)).await;
    let bob_id = bob_welcome["peer_id"].as_str().unwrap();
    assert_eq!(joined(ann.recv().await).peer_id, bob_id);

    let killed = Instant::now();
    drop(doomed);
    assert!(
        matches!(bob.next_event(Duration::from_secs(5)).await, Some(Event::Closed(_))),
        "Bob's socket dies with it"
    );
    let token = bob_welcome["resume_token"].as_str().unwrap();
    let (mut bob, resumed) = world.resume(0, &room, &bob_user, token).await;
    let back_in = killed.elapsed();
    println!("Bob was back in the call {} ms after his gateway was killed", back_in.as_millis());
    assert_eq!(resumed.peer_id, bob_id, "same peer id");
    assert_eq!(resumed.peers[0].peer_id, ann_welcome.peer_id);

    // What is tested is a stretch of time: past the dead gateway's heartbeat, a sweep and the
    // resume window's remainder, when the old connection would have been taken for gone.
    let heard = heard_within(&mut ann, Duration::from_secs(16)).await;
    assert!(comings_and_goings(&heard).is_empty(), "Ann saw nothing of it: {heard:?}");
    let offer = sdp("offer", "v=0");
    ann.signal(bob_id, offer.clone()).await;
    assert_eq!(bob.recv().await, signal_from(&ann_welcome.peer_id, &offer));
    assert_eq!(world.present(&room).await, 2, "no ghost of Bob's old connection");
}

#[actix_web::test]
async fn a_gateway_restarted_under_its_old_id_lets_its_predecessors_peers_resume_or_leave() {
    let mut world = world(1);
    let first_life = world.spawn_process("gw-phoenix").await;
    let room = room();
    let capacity = 3;
    let (mut ann, _) = world.join_with(0, &world.ticket_in_room_of(capacity, &room, "Ann", &user())).await;
    let bob_user = user();
    let (_bob, bob_welcome) = world.join_with(1, &world.ticket_in_room_of(capacity, &room, "Bob", &bob_user)).await;
    let cat_user = user();
    let (_cat, cat_welcome) = world.join_with(1, &world.ticket_in_room_of(capacity, &room, "Cat", &cat_user)).await;
    joined(ann.recv().await);
    joined(ann.recv().await);

    drop(first_life);
    let _second_life = world.spawn_process("gw-phoenix").await;
    let restarted = Instant::now();
    // Bob comes back to the restarted gateway; Cat never does.
    let (_bob, resumed) = world.resume(2, &room, &bob_user, &bob_welcome.resume_token).await;
    assert_eq!(resumed.peer_id, bob_welcome.peer_id);

    let coming_or_going = |m: Kind| matches!(m, Kind::PeerLeft(_) | Kind::PeerJoined(_)).then_some(m);
    let cat_left = ann.next_of_within(Duration::from_secs(25), coming_or_going).await;
    assert_eq!(cat_left, Some(left(&cat_welcome.peer_id, "disconnected")), "Cat's ghost is cleared");
    println!("Cat's place was freed {} ms after the restart", restarted.elapsed().as_millis());
    assert!(restarted.elapsed() <= Duration::from_secs(20), "within the resume window and a sweep");
    let (_cat_again, again) = world.join_with(0, &world.ticket_in_room_of(capacity, &room, "Cat", &cat_user)).await;
    assert_ne!(again.peer_id, cat_welcome.peer_id, "Cat's place is free for her to join afresh");
    assert_eq!(joined(ann.recv().await).peer_id, again.peer_id);
}

#[actix_web::test]
async fn a_dropped_client_that_resumes_in_time_keeps_its_peer_id_and_nobody_notices() {
    let world = world(2);
    let room = room();
    let (mut ann, ann_welcome) = world.join(0, &room, "Ann").await;
    let bob_user = user();
    let (bob, bob_welcome) = world.join_as(1, &room, &bob_user).await;
    joined(ann.recv().await);
    drop(bob);
    world.parked(&room, &bob_welcome.peer_id, false).await;

    let (mut bob, resumed) = world.resume(0, &room, &bob_user, &bob_welcome.resume_token).await;
    assert_eq!(resumed.peer_id, bob_welcome.peer_id);
    assert_eq!(resumed.peers[0].peer_id, ann_welcome.peer_id);
    // No peer_left, no peer_joined: what the resumed Bob sends Ann is the first thing she hears.
    hears_nothing_before_a_signal(&mut ann, &ann_welcome.peer_id, &mut bob, &resumed.peer_id).await;
    let offer = sdp("offer", "v=0");
    ann.signal(&bob_welcome.peer_id, offer.clone()).await;
    assert_eq!(bob.recv().await, signal_from(&ann_welcome.peer_id, &offer));
}

#[actix_web::test]
async fn a_dropped_client_that_does_not_resume_leaves_and_its_token_serves_no_one_else() {
    let world = world_with(1, Limits { resume_window: Duration::from_millis(700), ..Limits::default() });
    let room = room();
    let (mut ann, _) = world.join(0, &room, "Ann").await;
    let (bob, bob_welcome) = world.join_as(0, &room, &user()).await;
    joined(ann.recv().await);
    drop(bob);
    // The window is short: on a slow machine it may have ended before this looks.
    world.parked(&room, &bob_welcome.peer_id, true).await;
    let (_eve, eve) = world.resume(0, &room, &user(), &bob_welcome.resume_token).await;
    assert_ne!(eve.peer_id, bob_welcome.peer_id, "another user's ticket cannot take the peer over");
    // Eve's arrival and Bob's departure at the window's end, in whichever order they came.
    let heard = [ann.recv().await, ann.recv().await];
    assert!(
        heard.iter().any(|m| matches!(m, Kind::PeerJoined(PeerJoined { peer: Some(p) }) if p.peer_id == eve.peer_id)),
        "Eve joins as herself: {heard:?}"
    );
    assert!(heard.contains(&left(&bob_welcome.peer_id, "disconnected")), "{heard:?}");
}

#[actix_web::test]
async fn one_user_may_hold_several_tabs_but_not_unboundedly_many() {
    let world = world_with(2, Limits { connections_per_user: 2, ..Limits::default() });
    let room = room();
    let user = user();
    let (_tab1, first) = world.join_as(0, &room, &user).await;
    let (_tab2, second) = world.join_as(1, &room, &user).await;
    assert_ne!(first.peer_id, second.peer_id, "each tab is its own peer");
    let mut tab3 = world.connect(1, &world.ticket_for(&room, "Bob", &user)).await.unwrap();
    assert_eq!(tab3.recv().await["error"]["code"], "too_many_connections");
    assert_eq!(tab3.closed().await, Some(1008));
    let (_other, other) = world.join(0, &room, "Ann").await;
    assert!(!other.peer_id.is_empty(), "other users still get in");
}

#[actix_web::test]
async fn a_client_that_stops_reading_is_disconnected_and_the_room_carries_on() {
    let limits =
        Limits { outbound_queue: 4, messages_per_second: 10_000.0, message_burst: 10_000.0, ..Limits::default() };
    let world = world_with(1, limits);
    let room = room();
    let (mut ann, _) = world.join_raw(0, &world.ticket(&room, "Ann")).await;
    let (_stalled, stalled_welcome) = world.join_raw(0, &world.ticket(&room, "Sid")).await;
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
    let (mut bob, _) = world.join_raw(0, &world.ticket(&room, "Bob")).await;
    ann.recv().await;
    ann.send(json!({"broadcast": {"data": "still here"}})).await;
    // Bob may first get the tail of the flood still in flight; the room carries on either way.
    while bob.recv().await["broadcast"]["data"] != "still here" {}
}

/// The media server instance the tests register.
const SFU_INSTANCE: &str = "sfu-test";

/// `media_changed` as participants receive it: to the seat `sfu`, or back to mesh.
fn media_changed(sfu: Option<&str>) -> Kind {
    Kind::MediaChanged(MediaChanged { sfu: sfu.map(|peer_id| Sfu { peer_id: peer_id.into() }) })
}

impl World {
    /// The media server's seat in `room`, through instance `gateway`.
    async fn join_as_sfu(&self, gateway: usize, room: &str, instance: &str) -> (Signaling, Welcome) {
        self.join_with(gateway, &self.keys.ticket_for(instance, room, "Media server", "sfu", None)).await
    }

    /// A live media server instance, `SFU_INSTANCE`, in the registry (for the registry's TTL).
    async fn register_sfu(&self) {
        let entry = confab_common::sfu_registry::Registration {
            instance_id: SFU_INSTANCE.into(),
            media_addresses: vec!["127.0.0.1:7882".into()],
            capacity: 100,
            load: Default::default(),
            draining: false,
        };
        confab_common::sfu_registry::heartbeat(&mut self.redis().await, &self.redis_prefix, &entry).await.unwrap();
    }

    /// The rooms placed on `SFU_INSTANCE`, with their settings, oldest first.
    async fn sfu_jobs(&self) -> Vec<(String, String, String)> {
        let stream = confab_domain::keys::sfu_instance_jobs(&self.redis_prefix, SFU_INSTANCE);
        let entries: Vec<(String, HashMap<String, String>)> =
            redis::cmd("XRANGE").arg(&stream).arg("-").arg("+").query_async(&mut self.redis().await).await.unwrap();
        entries
            .into_iter()
            .map(|(_, job)| (job["room_id"].clone(), job["media"].clone(), job["mode"].clone()))
            .collect()
    }
}

#[actix_web::test]
async fn the_media_server_is_hidden_takes_no_place_and_comes_and_goes_as_a_media_change() {
    let world = world(2);
    let room = room();
    let ticket = |name: &str| world.ticket_in_room_of(2, &room, name, &user());
    let (mut ann, ann_welcome) = world.join_with(0, &ticket("Ann")).await;
    let ann_id = ann_welcome.peer_id.as_str();
    assert_eq!(ann_welcome.sfu, None);

    let (mut sfu, sfu_welcome) = world.join_as_sfu(1, &room, "sfu-a").await;
    assert_eq!(sfu_welcome.peers[0].peer_id, ann_id, "the media server sees everyone");
    let sfu_id = sfu_welcome.peer_id.as_str();
    assert_eq!(ann.recv().await, media_changed(Some(sfu_id)), "across instances");

    // Bob fills the room of two (the media server does not count) and is told where media goes.
    let (mut bob, bob_welcome) = world.join_with(0, &ticket("Bob")).await;
    assert_eq!(bob_welcome.sfu, Some(Sfu { peer_id: sfu_id.into() }));
    assert_eq!(bob_welcome.peers.iter().map(|p| p.peer_id.as_str()).collect::<Vec<_>>(), [ann_id]);
    assert_eq!(joined(sfu.recv().await).display_name, "Bob", "the media server hears of Bob");
    assert_eq!(joined(ann.recv().await).display_name, "Bob");
    let mut cat = world.connect(1, &ticket("Cat")).await.expect("refused in band");
    assert_eq!(cat.recv().await["error"]["code"], "room_full");
    let bob_id = bob_welcome.peer_id.as_str();

    // Participants and the media server signal each other by peer id, `connection` kept.
    let publish = Signal {
        to: sfu_id.into(),
        connection: "publish".into(),
        payload: Some(sdp("offer", "v=0 send")),
        ..Default::default()
    };
    ann.send_signal(publish.clone()).await;
    assert_eq!(sfu.recv().await, Kind::Signal(Signal { to: String::new(), from: ann_id.into(), ..publish }));
    let subscribe = Signal {
        to: bob_id.into(),
        connection: "subscribe".into(),
        payload: Some(sdp("offer", "v=0 recv")),
        ..Default::default()
    };
    sfu.send_signal(subscribe.clone()).await;
    assert_eq!(bob.recv().await, Kind::Signal(Signal { to: String::new(), from: sfu_id.into(), ..subscribe }));
    let track = Payload::TrackRequest(TrackRequest {
        track_id: "cam-7".into(),
        max_width: 320,
        max_height: 180,
        paused: false,
    });
    bob.signal(sfu_id, track.clone()).await;
    assert_eq!(sfu.recv().await, signal_from(bob_id, &track));
    let speaker = Payload::Speaker(Speaker { peer_id: ann_id.into() });
    sfu.signal(bob_id, speaker.clone()).await;
    assert_eq!(bob.recv().await, signal_from(sfu_id, &speaker));

    // Only the media server announces speakers.
    bob.signal(ann_id, speaker).await;
    assert_eq!(error_code(bob.recv().await), "not_allowed");
    hears_nothing_before_a_signal(&mut ann, ann_id, &mut bob, bob_id).await;

    // A second seat takes over: told at once, and the first one's departure leaves the call on it.
    let (mut next_sfu, next_welcome) = world.join_as_sfu(0, &room, "sfu-b").await;
    let next_id = next_welcome.peer_id.as_str();
    for participant in [&mut ann, &mut bob] {
        assert_eq!(participant.recv().await, media_changed(Some(next_id)));
    }
    sfu.bye().await;
    for participant in [&mut ann, &mut bob] {
        assert_eq!(participant.recv().await, media_changed(Some(next_id)), "still through the second seat");
    }
    next_sfu.bye().await;
    for participant in [&mut ann, &mut bob] {
        assert_eq!(participant.recv().await, media_changed(None), "back to mesh");
    }

    // The media server is no participant for webhooks.
    let stream = confab_domain::keys::presence_events(&world.redis_prefix);
    let entries: Vec<(String, HashMap<String, String>)> =
        redis::cmd("XRANGE").arg(&stream).arg("-").arg("+").query_async(&mut world.redis().await).await.unwrap();
    let names: Vec<String> =
        entries.iter().map(|(_, fields)| presence::parse(&fields["peer"]).unwrap().display_name).collect();
    assert_eq!(names, ["Ann", "Bob"]);
}

#[actix_web::test]
async fn hostile_media_server_fields_are_malformed_and_the_connection_survives() {
    let world = world(1);
    let room = room();
    let (_bob, bob_welcome) = world.join(0, &room, "Bob").await;
    let bob_id = bob_welcome.peer_id.as_str();
    let (mut ann, _) = world.join_raw(0, &world.ticket(&room, "Ann")).await;
    let long_id = "t".repeat(65);
    for hostile in [
        json!({"signal": {"to": bob_id, "connection": "record", "sdp": {"type": "offer", "sdp": "v=0"}}}),
        json!({"signal": {"to": bob_id, "connection": 7, "sdp": {"type": "offer", "sdp": "v=0"}}}),
        json!({"signal": {"to": bob_id, "track_request": {"track_id": long_id}}}),
        json!({"signal": {"to": bob_id, "track_request": {"track_id": ""}}}),
        json!({"signal": {"to": bob_id, "track_request": {"track_id": "t", "max_width": -1}}}),
        json!({"signal": {"to": bob_id, "track_request": {"track_id": "t", "max_width": 4294967296u64}}}),
        json!({"signal": {"to": bob_id, "track_request": "cam-7"}}),
        json!({"signal": {"to": bob_id, "speaker": {"peer_id": 5}}}),
    ] {
        ann.send(hostile.clone()).await;
        assert_eq!(ann.recv().await["error"]["code"], "malformed_message", "{hostile}");
    }
    ann.send(json!({"ping": {"timestamp_ms": "1"}})).await;
    assert_eq!(ann.recv().await, json!({"pong": {"timestamp_ms": "1"}}), "still connected");
}

#[actix_web::test]
async fn an_sfu_room_is_placed_once_on_a_media_server_from_its_first_participant() {
    let world = world(2);
    world.register_sfu().await;
    let room = room();
    let ticket =
        |name: &str| support::ticket_with_settings(&world.keys, &room, name, MediaRouting::Sfu, RoomMode::Lecture);
    let (_ann, _) = world.join_with(0, &ticket("Ann")).await;
    let queued = vec![(room.clone(), "sfu".to_owned(), "lecture".to_owned())];
    assert_eq!(world.sfu_jobs().await, queued);
    let (_bob, _) = world.join_with(1, &ticket("Bob")).await;
    assert_eq!(world.sfu_jobs().await, queued, "queued once, whichever instance admits the next");
}

#[actix_web::test]
async fn an_auto_room_is_placed_at_its_third_person_and_a_mesh_room_never() {
    let world = world(2);
    world.register_sfu().await;
    let (auto, mesh) = (room(), room());
    let ticket = |room: &str, name: &str, media| {
        support::ticket_with_settings(&world.keys, room, name, media, RoomMode::Meeting)
    };
    let mut here = Vec::new();
    for (index, name) in ["Ann", "Bob"].into_iter().enumerate() {
        here.push(world.join_with(index % 2, &ticket(&auto, name, MediaRouting::Auto)).await);
    }
    // A recorder and a camera are not people.
    let recorder_ticket = world.keys.ticket_for("recorder-1", &auto, "Recorder", "recorder", Some("rec-1".into()));
    here.push(world.join_with(0, &recorder_ticket).await);
    here.push(world.join_with(1, &world.keys.ticket_for("camera-1", &auto, "Door", "camera", None)).await);
    assert_eq!(world.sfu_jobs().await, []);
    here.push(world.join_with(0, &ticket(&auto, "Cat", MediaRouting::Auto)).await);
    let queued = vec![(auto.clone(), "auto".to_owned(), "meeting".to_owned())];
    assert_eq!(world.sfu_jobs().await, queued);
    here.push(world.join_with(1, &ticket(&auto, "Dan", MediaRouting::Auto)).await);
    assert_eq!(world.sfu_jobs().await, queued);

    for name in ["Ann", "Bob", "Cat"] {
        here.push(world.join_with(0, &ticket(&mesh, name, MediaRouting::Mesh)).await);
    }
    // Tickets issued before rooms had settings are mesh (the testkit's, for a room of 4).
    here.push(world.join(1, &mesh, "Dan").await);
    assert_eq!(world.sfu_jobs().await, queued, "nothing for the mesh room");
}

#[actix_web::test]
async fn with_no_media_server_alive_an_sfu_room_stays_a_mesh_until_an_arrival_finds_one() {
    let world = world(1);
    let room = room();
    let ticket =
        |name: &str| support::ticket_with_settings(&world.keys, &room, name, MediaRouting::Sfu, RoomMode::Meeting);
    let (_ann, _) = world.join_with(0, &ticket("Ann")).await;
    assert_eq!(world.sfu_jobs().await, []);
    world.register_sfu().await;
    let (_bob, _) = world.join_with(0, &ticket("Bob")).await;
    assert_eq!(world.sfu_jobs().await, [(room.clone(), "sfu".to_owned(), "meeting".to_owned())]);
}

#[actix_web::test]
async fn the_media_server_seat_of_a_dead_instance_leaves_at_once_and_the_call_goes_back_to_mesh() {
    let world = world(1);
    let room = room();
    let (mut ann, _) = world.join(0, &room, "Ann").await;
    let ghost = PeerPresence {
        peer_id: "ghost-sfu".into(),
        user_id: "sfu-a".into(),
        role: "sfu".into(),
        instance_id: "gw-killed".into(),
        joined_at: "2026-01-01T00:00:00Z".into(),
        ..Default::default()
    };
    let key = confab_domain::keys::room_peers(&world.redis_prefix, &room);
    let _: () = redis::AsyncCommands::hset(&mut world.redis().await, &key, "ghost-sfu", presence::to_json(&ghost))
        .await
        .unwrap();
    let changed = ann.next_of_within(PATIENCE, |kind| matches!(kind, Kind::MediaChanged(_)).then_some(kind)).await;
    assert_eq!(changed, Some(media_changed(None)), "the sweep frees the seat without a resume window");
    assert_eq!(world.present(&room).await, 1);
}

#[actix_web::test]
async fn the_media_server_may_send_a_burst_no_other_seat_may() {
    let world = world(1);
    let room = room();
    let (mut sfu, _) = world.join_as_sfu(0, &room, "sfu-a").await;
    // A speaker change in a lecture is one signal to each of up to a thousand viewers; a
    // participant would be refused after 50 and cut off soon after.
    let burst = 600;
    for timestamp_ms in 0..burst {
        sfu.send(client_message::Kind::Ping(Ping { timestamp_ms })).await;
    }
    for timestamp_ms in 0..burst {
        assert_eq!(sfu.recv().await, Kind::Pong(Pong { timestamp_ms }), "none refused");
    }
}

impl World {
    /// The peers let speak in the room's call (`keys::room_speakers`), sorted.
    async fn speakers(&self, room: &str) -> Vec<String> {
        let key = confab_domain::keys::room_speakers(&self.redis_prefix, room);
        let mut speakers: Vec<String> = redis::AsyncCommands::smembers(&mut self.redis().await, key).await.unwrap();
        speakers.sort();
        speakers
    }

    /// Lets `peer_id` speak as the API does: stored in the room's grants, then commanded.
    async fn grant_speaker(&self, room: &str, peer_id: &str, request_id: &str) {
        use confab_protocol::bus::{Control, GrantSpeaker, control::Command};
        let key = confab_domain::keys::room_speakers(&self.redis_prefix, room);
        let _: i64 = redis::AsyncCommands::sadd(&mut self.redis().await, key, peer_id).await.unwrap();
        let command = Command::GrantSpeaker(GrantSpeaker { room_id: room.into(), peer_id: peer_id.into() });
        publish_control(self, Control { command: Some(command), request_id: request_id.into() }).await;
    }
}

fn speak_granted(peer_id: &str) -> Kind {
    Kind::SpeakGranted(confab_protocol::signal::SpeakGranted { peer_id: peer_id.into() })
}

fn speak_revoked(peer_id: &str) -> Kind {
    Kind::SpeakRevoked(confab_protocol::signal::SpeakRevoked { peer_id: peer_id.into() })
}

#[actix_web::test]
async fn letting_a_viewer_speak_is_told_to_everyone_in_the_room_on_every_instance_the_media_server_included() {
    use confab_protocol::bus::{Control, RevokeSpeaker, control::Command};
    let logs = captured_logs();
    let world = world(2);
    let (room, elsewhere) = (room(), room());
    let (mut mo, _) = world.join(0, &room, "Mo").await;
    let (mut vic, vic_welcome) = world.join(1, &room, "Vic").await;
    let vic_id = vic_welcome.peer_id.clone();
    joined(mo.recv().await);
    let (mut sfu, _) = world.join_as_sfu(0, &room, "sfu-a").await;
    for participant in [&mut mo, &mut vic] {
        assert!(matches!(participant.recv().await, Kind::MediaChanged(_)));
    }
    let (mut cat, _) = world.join(1, &elsewhere, "Cat").await;

    let request_id = uuid::Uuid::new_v4().simple().to_string();
    world.grant_speaker(&room, &vic_id, &request_id).await;
    for peer in [&mut mo, &mut vic, &mut sfu] {
        assert_eq!(peer.recv().await, speak_granted(&vic_id), "the viewer, the others and the media server");
    }
    let logged = logged_with(&logs, "request.id", &request_id).await;
    assert_eq!((logged["command"].as_str(), logged["room.id"].as_str()), (Some("grant_speaker"), Some(room.as_str())));

    let revoke = Command::RevokeSpeaker(RevokeSpeaker { room_id: room.clone(), peer_id: vic_id.clone() });
    publish_control(&world, Control { command: Some(revoke), request_id: String::new() }).await;
    for peer in [&mut mo, &mut vic, &mut sfu] {
        assert_eq!(peer.recv().await, speak_revoked(&vic_id));
    }
    // Nothing reached another room: Dan joining Cat's is the next thing she hears.
    let (_dan, dan_welcome) = world.join(1, &elsewhere, "Dan").await;
    assert_eq!(joined(cat.recv().await).peer_id, dan_welcome.peer_id, "other rooms are untouched");
}

#[actix_web::test]
async fn leave_to_speak_goes_with_its_peer_and_every_grant_with_the_call() {
    let world = world(2);
    let room = room();
    let (mut mo, _) = world.join(0, &room, "Mo").await;
    let (mut vic, vic_welcome) = world.join(1, &room, "Vic").await;
    let val_user = user();
    let (val, val_welcome) = world.join_as(1, &room, &val_user).await;
    let (vic_id, val_id) = (vic_welcome.peer_id.as_str(), val_welcome.peer_id.as_str());
    world.grant_speaker(&room, vic_id, "").await;
    world.grant_speaker(&room, val_id, "").await;
    mo.next_of(|kind| (kind == speak_granted(val_id)).then_some(())).await;
    assert_eq!(world.speakers(&room).await, {
        let mut both = vec![vic_id.to_owned(), val_id.to_owned()];
        both.sort();
        both
    });

    // Vic's instance frees its presence entry, grant with it, before the others hear it left.
    vic.bye().await;
    mo.next_of(|kind| (kind == left(vic_id, "left")).then_some(())).await;
    assert_eq!(world.speakers(&room).await, [val_id], "Val keeps hers");

    // A peer whose connection dropped keeps its place and its grant, and resumes with both.
    drop(val);
    let parked = eventually("Val parked", PATIENCE, || async {
        world.entry(&room, val_id).await.filter(|entry| entry.parked_until_ms > 0)
    });
    parked.await;
    assert_eq!(world.speakers(&room).await, [val_id]);
    let (mut val, resumed) = world.resume(0, &room, &val_user, &val_welcome.resume_token).await;
    assert_eq!(resumed.peer_id, val_id);
    assert_eq!(world.speakers(&room).await, [val_id]);

    val.bye().await;
    mo.bye().await;
    let key = confab_domain::keys::room_speakers(&world.redis_prefix, &room);
    eventually("the call's grants gone with its last peer", PATIENCE, || async {
        let exists: bool = redis::AsyncCommands::exists(&mut world.redis().await, &key).await.unwrap();
        (!exists).then_some(())
    })
    .await;
    assert_eq!(world.present(&room).await, 0);
}
