//! Ticket verification against a real JWKS endpoint and a real Redis: rotation, refetch limits,
//! single use, and every way a ticket is refused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use confab_common::tokens::SigningKeys;
use confab_domain::{MediaRouting, RoomMode};
use confab_tickets::{JwksCache, TICKET_AUDIENCE, TicketClaims, TicketError, TicketVerifier};
use ed25519_dalek::SigningKey;

/// A stand-in for the API's JWKS endpoint whose keys a test can rotate, counting fetches.
struct KeyServer {
    keys: Arc<Mutex<SigningKeys>>,
    fetches: Arc<AtomicUsize>,
    url: String,
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

async fn key_server(seeds: &[u8]) -> KeyServer {
    key_server_at(seeds, 0).await
}

/// A key server on `port` (0: any free port).
async fn key_server_at(seeds: &[u8], port: u16) -> KeyServer {
    let keys = Arc::new(Mutex::new(
        SigningKeys::from_signing_keys(&seeds.iter().map(|s| key(*s)).collect::<Vec<_>>()).unwrap(),
    ));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (k, f) = (keys.clone(), fetches.clone());
    let server = HttpServer::new(move || {
        let (k, f) = (k.clone(), f.clone());
        App::new().route(
            "/.well-known/jwks.json",
            web::get().to(move || {
                let (k, f) = (k.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    HttpResponse::Ok().json(k.lock().unwrap().jwks())
                }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", port))
    .unwrap();
    let url = format!("http://127.0.0.1:{}/.well-known/jwks.json", server.addrs()[0].port());
    actix_web::rt::spawn(server.run());
    KeyServer { keys, fetches, url }
}

fn claims(lifetime: i64) -> TicketClaims {
    let now = chrono::Utc::now().timestamp();
    TicketClaims {
        iss: "confab".into(),
        aud: TICKET_AUDIENCE.into(),
        sub: uuid::Uuid::new_v4().to_string(),
        exp: now + lifetime,
        iat: now,
        jti: uuid::Uuid::new_v4().simple().to_string(),
        room_id: uuid::Uuid::new_v4().to_string(),
        display_name: "Ann".into(),
        room_role: "member".into(),
        max_participants: 8,
        recording_id: None,
        media: None,
        mode: None,
    }
}

/// The shortest time between two fetches of the JWKS for an unknown key id, in [`verifier`].
const MIN_REFETCH: Duration = Duration::from_millis(300);

fn verifier(url: &str, redis_url: &str) -> TicketVerifier {
    let prefix = format!("confab-test:{}", uuid::Uuid::new_v4().simple());
    let redis = confab_common::redis::connect_lazy(redis_url).unwrap();
    TicketVerifier::new(JwksCache::new(url, "confab", MIN_REFETCH), redis, &prefix)
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").expect("REDIS_URL must be set: run the tests with deploy/local/test")
}

#[actix_web::test]
async fn a_valid_ticket_passes_once_and_only_once() {
    let server = key_server(&[1]).await;
    let verifier = verifier(&server.url, &redis_url());
    let ticket = server.keys.lock().unwrap().sign(&claims(60)).unwrap();
    let verified = verifier.verify(&ticket).await.unwrap();
    assert_eq!(verified.display_name, "Ann");
    assert!(matches!(verifier.verify(&ticket).await, Err(TicketError::Reused)));
}

#[actix_web::test]
async fn a_ticket_keeps_its_room_settings_and_one_without_them_is_a_mesh_meeting() {
    let server = key_server(&[1]).await;
    let verifier = verifier(&server.url, &redis_url());
    let sign = |c: &TicketClaims| server.keys.lock().unwrap().sign(c).unwrap();
    let lecture = claims(60).with_room_settings(MediaRouting::Auto, RoomMode::Lecture);
    let verified = verifier.verify(&sign(&lecture)).await.unwrap();
    assert_eq!((verified.media(), verified.mode()), (MediaRouting::Auto, RoomMode::Lecture));
    let old = verifier.verify(&sign(&claims(60))).await.unwrap();
    assert_eq!((old.media(), old.mode()), (MediaRouting::Mesh, RoomMode::Meeting));
}

#[actix_web::test]
async fn wrong_audience_issuer_expiry_and_lifetime_are_rejected() {
    let server = key_server(&[1]).await;
    let verifier = verifier(&server.url, &redis_url());
    let sign = |c: &TicketClaims| server.keys.lock().unwrap().sign(c).unwrap();
    let mut access_token = claims(60);
    access_token.aud = "confab-api".into();
    let mut foreign = claims(60);
    foreign.iss = "someone-else".into();
    let mut expired = claims(60);
    expired.exp -= 200;
    expired.iat -= 200;
    let mut no_jti = claims(60);
    no_jti.jti = String::new();
    for (what, ticket) in [
        ("access token", sign(&access_token)),
        ("foreign issuer", sign(&foreign)),
        ("expired", sign(&expired)),
        ("lives 10 minutes", sign(&claims(600))),
        ("no jti", sign(&no_jti)),
        ("garbage", "not.a.jwt".to_owned()),
    ] {
        assert!(matches!(verifier.verify(&ticket).await, Err(TicketError::Rejected(_))), "{what}");
    }
}

#[actix_web::test]
async fn a_rotated_key_is_fetched_on_first_sight_but_forged_key_ids_cannot_force_fetches() {
    let server = key_server(&[1]).await;
    let verifier = verifier(&server.url, &redis_url());
    let first = server.keys.lock().unwrap().sign(&claims(60)).unwrap();
    verifier.verify(&first).await.unwrap();
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);

    // Only time opens the refetch window again: this is the API rotating its keys later.
    tokio::time::sleep(MIN_REFETCH + Duration::from_millis(50)).await;
    *server.keys.lock().unwrap() = SigningKeys::from_signing_keys(&[key(1), key(2)]).unwrap();
    let rotated = server.keys.lock().unwrap().sign(&claims(60)).unwrap();
    verifier.verify(&rotated).await.expect("the new key is fetched");
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2);

    let rogue = SigningKeys::from_signing_keys(&[key(9)]).unwrap();
    for _ in 0..20 {
        let forged = rogue.sign(&claims(60)).unwrap();
        assert!(matches!(verifier.verify(&forged).await, Err(TicketError::Rejected(_))));
    }
    assert!(server.fetches.load(Ordering::SeqCst) <= 3, "at most one refetch per interval");
}

#[actix_web::test]
async fn tickets_are_refused_when_redis_or_the_jwks_cannot_be_reached() {
    let server = key_server(&[1]).await;
    let ticket = server.keys.lock().unwrap().sign(&claims(60)).unwrap();
    let no_redis = verifier(&server.url, "redis://127.0.0.1:1/");
    assert!(matches!(no_redis.verify(&ticket).await, Err(TicketError::Unavailable(_))));
    let no_jwks = verifier("http://127.0.0.1:1/.well-known/jwks.json", &redis_url());
    assert!(matches!(no_jwks.verify(&ticket).await, Err(TicketError::Unavailable(_))));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[actix_web::test]
async fn keys_missing_at_start_are_fetched_as_soon_as_the_api_answers_not_a_refetch_window_later() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/.well-known/jwks.json");
    let redis = confab_common::redis::connect_lazy(&redis_url()).unwrap();
    let prefix = format!("confab-test:{}", uuid::Uuid::new_v4().simple());
    // A refetch window far longer than the test: only the retry backoff can let it pass.
    let verifier = TicketVerifier::new(JwksCache::new(&url, "confab", Duration::from_secs(600)), redis, &prefix);
    let keys = SigningKeys::from_signing_keys(&[key(1)]).unwrap();
    let early = keys.sign(&claims(60)).unwrap();
    assert!(matches!(verifier.verify(&early).await, Err(TicketError::Unavailable(_))));
    assert!(!verifier.keys().has_keys().await);

    let _server = key_server_at(&[1], port).await;
    let started = std::time::Instant::now();
    let verified = loop {
        let ticket = keys.sign(&claims(60)).unwrap();
        match verifier.verify(&ticket).await {
            Ok(_) => break true,
            Err(TicketError::Unavailable(_)) if started.elapsed() < Duration::from_secs(3) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(_) => break false,
        }
    };
    assert!(verified, "a ticket is verified within 3 s of the key server answering");
    assert!(verifier.keys().has_keys().await);
}

#[actix_web::test]
async fn warming_up_waits_for_the_api_and_then_has_the_keys() {
    // Before the API answers, its port takes each connection and closes it at once: the test
    // sees the warm-up fail and try again instead of hoping it did within a quiet spell.
    let not_yet = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = not_yet.local_addr().unwrap().port();
    let cache = Arc::new(JwksCache::new(
        &format!("http://127.0.0.1:{port}/.well-known/jwks.json"),
        "confab",
        Duration::from_secs(600),
    ));
    let warming = actix_web::rt::spawn({
        let cache = cache.clone();
        async move { cache.fetch_until_ready().await }
    });
    let (tried_twice, told) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        for _ in 0..2 {
            drop(not_yet.accept().unwrap());
        }
        drop(not_yet);
        let _ = tried_twice.send(());
    });
    tokio::time::timeout(Duration::from_secs(3), told).await.expect("the warm-up tries twice within 3 s").unwrap();
    assert!(!cache.has_keys().await, "nothing to fetch yet");
    let server = key_server_at(&[1], port).await;
    tokio::time::timeout(Duration::from_secs(3), warming).await.expect("keys fetched within 3 s").unwrap();
    assert!(cache.has_keys().await);
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);
}
