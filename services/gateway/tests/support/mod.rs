//! What the gateway tests need beyond confab-testkit: gateways with the settings a test chooses
//! (allowed origins, ICE servers, limits, a Redis of its own), tickets for rooms of a chosen
//! capacity, a JWKS endpoint on a port fixed before it serves, a fence that shows a peer heard
//! nothing it should not have, and what a peer hears over a stretch of time.

#![allow(dead_code)] // each test binary uses its own part

use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use confab_common::tokens::{JwkSet, SigningKeys};
use confab_domain::RoomRole;
use confab_domain::ticket::{TicketClaims, TicketHolder};
use confab_gateway::settings::Limits;
use confab_gateway::{Application, Settings};
use confab_protocol::signal::signal::Payload;
use confab_protocol::signal::{SessionDescription, Signal};
use confab_testkit::{Gateway, Kind, Signaling, TestKeys};

/// How long a test waits for something the gateway does in the background (a sweep, a park).
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A gateway's settings with test defaults: any free port, Redis `redis_url` under `prefix`,
/// tickets verified with the JWKS at `jwks_url`, no origin allowed, no ICE servers.
pub fn settings(redis_url: &str, prefix: &str, jwks_url: &str, instance_id: &str) -> Settings {
    Settings {
        bind: "127.0.0.1:0".into(),
        redis_url: redis_url.to_owned(),
        redis_prefix: prefix.to_owned(),
        jwks_url: jwks_url.to_owned(),
        jwt_issuer: "confab".into(),
        allowed_origins: vec![],
        instance_id: instance_id.to_owned(),
        ice: Default::default(),
        limits: Limits::default(),
    }
}

/// Starts a gateway in the test's process: its WebSocket URL and what stops it.
pub fn start(settings: Settings) -> Gateway {
    let gateway = Application::build(settings).unwrap();
    let url = format!("ws://127.0.0.1:{}/v1/signal", gateway.port());
    let stopper = gateway.stopper();
    actix_web::rt::spawn(gateway.run_until_stopped());
    Gateway { url, stopper }
}

/// A member's ticket for a room of `capacity`, as the API issues it (the testkit's are for rooms
/// of 4).
pub fn member_ticket(keys: &TestKeys, room: &str, name: &str, user: &str, capacity: u32) -> String {
    let holder = TicketHolder {
        user_id: user.to_owned(),
        display_name: name.to_owned(),
        room_id: room.to_owned(),
        role: RoomRole::Member.into(),
        max_participants: capacity,
        recording_id: None,
    };
    keys.keys.sign(&TicketClaims::issue("confab", holder, chrono::Utc::now().timestamp())).unwrap()
}

/// Serves `keys`' JWKS on `port`, chosen before: for a gateway configured before its API is up.
/// (The testkit's `jwks_server` takes any free port.)
pub fn jwks_server_at(keys: &SigningKeys, port: u16) {
    async fn document(jwks: web::Data<JwkSet>) -> HttpResponse {
        HttpResponse::Ok().json(jwks.get_ref())
    }
    let jwks = web::Data::new(keys.jwks());
    let app = move || App::new().app_data(jwks.clone()).route("/jwks", web::get().to(document));
    let server = HttpServer::new(app).workers(1).bind(("127.0.0.1", port)).unwrap();
    actix_web::rt::spawn(server.run());
}

/// Shows that `to` heard nothing since its last message, without waiting out a quiet window:
/// `from` signals it now, and that signal must be the next thing `to` hears. Whatever the gateway
/// had queued for `to` before would come first, so `from`'s signal must be queued after what is
/// being ruled out: send it once the gateway has visibly acted on that.
pub async fn hears_nothing_before_a_signal(to: &mut Signaling, to_id: &str, from: &mut Signaling, from_id: &str) {
    let fence = Payload::Sdp(SessionDescription { r#type: "offer".into(), sdp: "v=0 fence".into() });
    from.signal(to_id, fence.clone()).await;
    let expected = Kind::Signal(Signal { to: String::new(), from: from_id.to_owned(), payload: Some(fence) });
    assert_eq!(to.recv().await, expected, "the first thing heard since is the fence");
}

/// Everything `peer` hears within `watch`: for what only a stretch of time can show.
pub async fn heard_within(peer: &mut Signaling, watch: Duration) -> Vec<Kind> {
    let deadline = Instant::now() + watch;
    let mut heard = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now())
        && let Some(message) = peer.recv_within(left).await
    {
        heard.push(message);
    }
    heard
}
