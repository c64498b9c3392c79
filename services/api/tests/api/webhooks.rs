//! Webhooks against a real receiver on loopback: the outbox commits with the change, deliveries
//! are signed (Standard Webhooks) and retried until accepted or given up, every attempt can be
//! read through the admin API, and bad registrations are refused.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use awc::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use confab_testkit::eventually;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// The one secret the tests register, in `whsec_` form, and its key.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How long a test waits for deliveries and their outcomes.
const PATIENCE: Duration = Duration::from_secs(10);

struct Received {
    headers: std::collections::HashMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// An HTTP server recording every request and answering with `status`.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    async fn start() -> Self {
        let got = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let (got_, status_) = (got.clone(), status.clone());
        let server = HttpServer::new(move || {
            let (got, status) = (got_.clone(), status_.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (got, status) = (got.clone(), status.clone());
                async move {
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                        .collect();
                    got.lock().unwrap().push(Received { headers, body: body.to_vec() });
                    HttpResponse::build(StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap()).finish()
                }
            }))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let url = format!("http://{}/hooks/confab", server.addrs()[0]);
        actix_web::rt::spawn(server.run());
        Self { url, got, status }
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// The bodies received so far whose type is `event_type`.
    fn events(&self, event_type: &str) -> Vec<Value> {
        self.got.lock().unwrap().iter().map(Received::json).filter(|e| e["type"] == event_type).collect()
    }

    async fn wait_for(&self, event_type: &str, count: usize) -> Vec<Value> {
        let what = format!("{count} {event_type} event(s) at the receiver");
        eventually(&what, PATIENCE, || async {
            let events = self.events(event_type);
            (events.len() >= count).then_some(events)
        })
        .await
    }
}

/// A receiver that hangs: it reads what comes and never answers, counting the requests that
/// arrived and the connections their sender hung up on (an attempt that timed out).
struct Hanging {
    url: String,
    requests: Arc<AtomicUsize>,
    hung_up: Arc<AtomicUsize>,
}

impl Hanging {
    async fn start() -> Self {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/confab", listener.local_addr().unwrap());
        let (requests, hung_up) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (requests_, hung_up_) = (requests.clone(), hung_up.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (requests, hung_up) = (requests_.clone(), hung_up_.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let mut arrived = false;
                    while matches!(socket.read(&mut buf).await, Ok(1..)) {
                        if !arrived {
                            arrived = true;
                            requests.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    hung_up.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Self { url, requests, hung_up }
    }

    /// Waits until `count` requests have arrived and `hung_up` of them were given up by their sender.
    async fn wait_for(&self, count: usize, hung_up: usize) {
        let what = format!("{count} requests hanging, {hung_up} of them given up");
        eventually(&what, PATIENCE, || async {
            let counts = (self.requests.load(Ordering::SeqCst), self.hung_up.load(Ordering::SeqCst));
            (counts.0 >= count && counts.1 >= hung_up).then_some(())
        })
        .await;
    }
}

/// Waits until `deliveries` of `webhook` (filtered by `query`) number `count`.
async fn wait_for_deliveries(app: &TestApp, admin: &str, webhook: &Value, query: &str, count: usize) {
    let what = format!("{count} deliveries{query}");
    eventually(&what, PATIENCE, || async {
        (deliveries(app, admin, webhook, query).await.len() == count).then_some(())
    })
    .await;
}

async fn register(app: &TestApp, admin: &str, body: Value) -> Value {
    let reply = app.post("/v1/admin/webhooks", Some(admin), body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

async fn deliveries(app: &TestApp, admin: &str, webhook: &Value, query: &str) -> Vec<Value> {
    let path = format!("/v1/admin/webhooks/{}/deliveries{query}", webhook["id"].as_str().unwrap());
    let reply = app.get(&path, Some(admin)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["deliveries"].as_array().unwrap().clone()
}

/// What a receiver computes to check a request (Standard Webhooks), done here with `ring`
/// directly rather than through the server's code.
fn expected_signature(id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = STANDARD.decode(SECRET.trim_start_matches("whsec_")).unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let signed = [format!("{id}.{timestamp}.").as_bytes(), body].concat();
    format!("v1,{}", STANDARD.encode(ring::hmac::sign(&key, &signed).as_ref()))
}

#[actix_web::test]
async fn events_arrive_signed_with_an_id_and_a_per_room_sequence() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let admin = app.admin_token().await.1;
    let webhook = register(&app, &admin, json!({"url": receiver.url, "secret": SECRET})).await;
    assert_eq!(webhook["secret"], SECRET);
    assert_eq!(webhook["events"], json!([]), "no filter: every event");

    let (_, owner) = app.logged_in_user().await;
    let token = owner["access_token"].as_str().unwrap();
    let room = app.create_room(token, "Standup").await;
    app.send("PATCH", &format!("/v1/rooms/{room}"), Some(token), Some(json!({"name": "Daily"}))).await;
    assert_eq!(
        app.send("DELETE", &format!("/v1/rooms/{room}"), Some(token), None).await.status,
        StatusCode::NO_CONTENT
    );

    let deleted = receiver.wait_for("room.deleted", 1).await;
    let created = receiver.events("room.created");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["room_id"], room.as_str());
    assert_eq!(created[0]["data"]["room"]["name"], "Standup");
    assert_eq!((created[0]["room_seq"].as_i64(), deleted[0]["room_seq"].as_i64()), (Some(1), Some(2)));
    assert_eq!(deleted[0]["data"]["room"]["name"], "Daily");
    let users = receiver.events("user.created");
    assert!(users.iter().any(|u| u["data"]["user"]["id"] == owner["user"]["id"]), "{users:?}");
    assert!(users.iter().all(|u| u["room_seq"].is_null() && u["data"]["user"].get("password_hash").is_none()));

    for request in receiver.got.lock().unwrap().iter() {
        let (id, timestamp) = (&request.headers["webhook-id"], &request.headers["webhook-timestamp"]);
        assert_eq!(request.json()["id"].as_str(), Some(id.as_str()), "webhook-id is the event id");
        let sent_at: i64 = timestamp.parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 60);
        assert_eq!(request.headers["webhook-signature"], expected_signature(id, timestamp, &request.body));
        assert_eq!(request.headers["content-type"], "application/json");
    }
    let listed = deliveries(&app, &admin, &webhook, "").await;
    assert!(listed.iter().all(|d| d["status"] == "delivered" && d["attempts"] == 1));
    assert_eq!(listed[0]["attempt_log"][0]["status_code"], 200);
}

#[actix_web::test]
async fn a_receiver_that_was_down_gets_every_event_once_it_is_back() {
    let app = spawn_app_with(|s| {
        s.webhooks.retry_base = Duration::from_millis(100);
        s.webhooks.retry_max = Duration::from_millis(300);
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let admin = app.admin_token().await.1;
    let webhook = register(&app, &admin, json!({"url": receiver.url, "events": ["room.created"]})).await;
    let (_, owner) = app.logged_in_user().await;
    let token = owner["access_token"].as_str().unwrap();
    let mut rooms = Vec::new();
    for name in ["R0", "R1", "R2"] {
        rooms.push(app.create_room(token, name).await);
    }

    eventually("three pending deliveries attempted three times each", PATIENCE, || async {
        let listed = deliveries(&app, &admin, &webhook, "?status=pending").await;
        (listed.len() == 3 && listed.iter().all(|d| d["attempts"].as_i64() >= Some(3))).then_some(())
    })
    .await;
    let pending = deliveries(&app, &admin, &webhook, "").await;
    assert_eq!(pending[0]["attempt_log"][0]["status_code"], 503);
    assert_eq!(pending[0]["last_error"], "HTTP 503 Service Unavailable");
    assert!(pending[0]["next_attempt_at"].is_string());

    receiver.answer(204);
    wait_for_deliveries(&app, &admin, &webhook, "?status=delivered", 3).await;
    let delivered = deliveries(&app, &admin, &webhook, "").await;
    for delivery in &delivered {
        let log = delivery["attempt_log"].as_array().unwrap();
        assert_eq!(log.last().unwrap()["status_code"], 204);
        assert_eq!(log.len() as i64, delivery["attempts"].as_i64().unwrap());
        assert!(delivery["next_attempt_at"].is_null());
    }
    let accepted: Vec<Value> = {
        let got = receiver.got.lock().unwrap();
        got.iter().map(Received::json).collect()
    };
    for room in rooms {
        let copies: Vec<&Value> = accepted.iter().filter(|e| e["room_id"] == room.as_str()).collect();
        assert!(copies.len() >= 2, "retried: {copies:?}");
        assert!(copies.windows(2).all(|w| w[0]["id"] == w[1]["id"]), "every copy has the same event id");
    }
    let hook = app.get(&format!("/v1/admin/webhooks/{}", webhook["id"].as_str().unwrap()), Some(&admin)).await;
    assert_eq!(hook.body["deliveries"], json!({"pending": 0, "delivered": 3, "failed": 0}));
    assert!(hook.body.get("secret").is_none(), "the secret is shown once");
}

#[actix_web::test]
async fn deliveries_still_failing_after_the_retry_window_are_given_up() {
    let app = spawn_app_with(|s| {
        s.webhooks.retry_base = Duration::from_millis(100);
        s.webhooks.retry_max = Duration::from_millis(200);
        s.webhooks.retry_window = Duration::from_secs(1);
    })
    .await;
    // Nothing listens there: every attempt is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/gone?token=abc", closed.local_addr().unwrap());
    drop(closed);
    let admin = app.admin_token().await.1;
    let webhook = register(&app, &admin, json!({"url": url, "events": ["user.created"]})).await;
    app.logged_in_user().await;
    wait_for_deliveries(&app, &admin, &webhook, "?status=failed", 1).await;
    let failed = &deliveries(&app, &admin, &webhook, "").await[0];
    assert!(failed["attempts"].as_i64() >= Some(2), "{failed}");
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.contains("connect") || error.contains("refused"), "{error}");
    assert!(!error.contains("token=abc"), "errors never repeat the URL: {error}");
    assert!(failed["attempt_log"].as_array().unwrap().iter().all(|a| a["status_code"].is_null()));
}

#[actix_web::test]
async fn a_hanging_receiver_gets_one_probe_at_a_time_and_holds_up_no_other_endpoint() {
    let timeout = Duration::from_secs(1);
    let app = spawn_app_with(|s| {
        s.webhooks.timeout = timeout;
        s.webhooks.retry_base = Duration::from_millis(100);
        s.webhooks.retry_max = Duration::from_millis(200);
    })
    .await;
    let (slow, fast) = (Hanging::start().await, Receiver::start().await);
    let admin = app.admin_token().await.1;
    let hanging = register(&app, &admin, json!({"url": slow.url, "events": ["room.created"]})).await;
    register(&app, &admin, json!({"url": fast.url, "events": ["room.created"]})).await;
    let (_, owner) = app.logged_in_user().await;
    let token = owner["access_token"].as_str().unwrap();
    for name in ["A", "B", "C", "D", "E", "F"] {
        app.create_room(token, name).await;
    }
    fast.wait_for("room.created", 6).await;
    let attempts_at = || async {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
            "select a.at from webhook_attempts a join webhook_deliveries d on d.id = a.delivery_id
              where d.endpoint_id = $1 order by a.at",
        )
        .bind(Uuid::parse_str(hanging["id"].as_str().unwrap()).unwrap())
        .fetch_all(&app.db)
        .await
        .unwrap()
    };
    assert!(attempts_at().await.is_empty(), "the other endpoint got everything while the first attempts still hung");

    // The first attempts all time out; from then on the endpoint gets one delivery at a time.
    eventually("nine attempts at the hanging endpoint", PATIENCE, || async {
        (attempts_at().await.len() >= 9).then_some(())
    })
    .await;
    let ended = attempts_at().await;
    let probes = &ended[6..];
    for pair in probes.windows(2) {
        let gap = (pair[1] - pair[0]).to_std().unwrap();
        assert!(gap >= timeout.mul_f64(0.9), "probes overlap: {ended:?}");
    }
    let hook = app.get(&format!("/v1/admin/webhooks/{}", hanging["id"].as_str().unwrap()), Some(&admin)).await;
    assert!(hook.body["consecutive_failures"].as_i64() >= Some(9), "{}", hook.body);
    assert!(hook.body["next_probe_at"].is_string());
    assert_eq!(fast.events("room.created").len(), 6, "nothing twice to the healthy endpoint");
}

#[actix_web::test]
async fn an_endpoint_deleted_while_its_attempts_are_under_way_goes_cleanly() {
    let app = spawn_app_with(|s| s.webhooks.timeout = Duration::from_secs(1)).await;
    let (slow, next) = (Hanging::start().await, Receiver::start().await);
    let admin = app.admin_token().await.1;
    let doomed = register(&app, &admin, json!({"url": slow.url, "events": ["room.created"]})).await;
    let (_, owner) = app.logged_in_user().await;
    let token = owner["access_token"].as_str().unwrap();
    for name in ["A", "B", "C"] {
        app.create_room(token, name).await;
    }
    slow.wait_for(3, 0).await;
    let path = format!("/v1/admin/webhooks/{}", doomed["id"].as_str().unwrap());
    assert_eq!(app.send("DELETE", &path, Some(&admin), None).await.status, StatusCode::NO_CONTENT);

    // The attempts time out against a deleted endpoint; the worker carries on with the others.
    register(&app, &admin, json!({"url": next.url, "events": ["room.created"]})).await;
    slow.wait_for(3, 3).await;
    app.create_room(token, "D").await;
    assert_eq!(next.wait_for("room.created", 1).await[0]["data"]["room"]["name"], "D");
    // The receiver has D; its outcome is recorded just after, and then nothing is left pending.
    eventually("no delivery left pending", PATIENCE, || async {
        let left: i64 = sqlx::query_scalar("select count(*) from webhook_deliveries where status = 'pending'")
            .fetch_one(&app.db)
            .await
            .unwrap();
        (left == 0).then_some(())
    })
    .await;
}

#[actix_web::test]
async fn filters_pauses_and_deletion_decide_what_an_endpoint_gets() {
    let app = spawn_app().await;
    let (receiver, witness) = (Receiver::start().await, Receiver::start().await);
    let admin = app.admin_token().await.1;
    let webhook =
        register(&app, &admin, json!({"url": receiver.url, "events": ["room.deleted", "room.deleted"]})).await;
    register(&app, &admin, json!({"url": witness.url, "events": ["room.deleted"]})).await;
    assert_eq!(webhook["events"], json!(["room.deleted"]), "duplicates are dropped");
    let id = webhook["id"].as_str().unwrap();
    let paused =
        app.send("PATCH", &format!("/v1/admin/webhooks/{id}"), Some(&admin), Some(json!({"active": false}))).await;
    assert_eq!(paused.body["active"], false);

    let (_, owner) = app.logged_in_user().await;
    let token = owner["access_token"].as_str().unwrap();
    let room = app.create_room(token, "Lab").await;
    app.send("DELETE", &format!("/v1/rooms/{room}"), Some(token), None).await;
    // The same event reached an active endpoint: the worker has taken what was due.
    witness.wait_for("room.deleted", 1).await;
    assert!(receiver.got.lock().unwrap().is_empty(), "a paused endpoint gets nothing");
    assert_eq!(deliveries(&app, &admin, &webhook, "?status=pending").await.len(), 1, "but its deliveries wait");

    app.send("PATCH", &format!("/v1/admin/webhooks/{id}"), Some(&admin), Some(json!({"active": true}))).await;
    let got = receiver.wait_for("room.deleted", 1).await;
    assert_eq!(got[0]["room_id"], room.as_str());
    assert!(receiver.events("room.created").is_empty(), "filtered out");

    assert_eq!(
        app.send("DELETE", &format!("/v1/admin/webhooks/{id}"), Some(&admin), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(&format!("/v1/admin/webhooks/{id}"), Some(&admin)).await.status, StatusCode::NOT_FOUND);
    let audit = app.get("/v1/admin/audit-log", Some(&admin)).await;
    let actions: Vec<&str> =
        audit.body["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["webhook.create", "webhook.update", "webhook.delete"] {
        assert!(actions.contains(&action), "{action} audited: {actions:?}");
    }
}

#[actix_web::test]
async fn events_commit_with_their_change_or_not_at_all() {
    let app = spawn_app().await;
    let admin = app.admin_token().await.1;
    register(&app, &admin, json!({"url": "https://hooks.example.org/confab"})).await;
    let (_, owner) = app.logged_in_user().await;
    let owner_id = Uuid::parse_str(owner["user"]["id"].as_str().unwrap()).unwrap();
    let count = |event_type: &'static str| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("select count(*) from webhook_events where type = $1")
                .bind(event_type)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let rolled_back = app.db.begin().await.unwrap();
    let mut rolled_back = rolled_back;
    sqlx::query("insert into rooms (id, name, owner_id, max_participants) values ($1, 'Gone', $2, 4)")
        .bind(Uuid::new_v4())
        .bind(owner_id)
        .execute(&mut *rolled_back)
        .await
        .unwrap();
    rolled_back.rollback().await.unwrap();
    assert_eq!(count("room.created").await, 0, "a rolled-back change leaves no event");
    let refused = app.post("/v1/rooms", owner["access_token"].as_str(), json!({"name": ""})).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(count("room.created").await, 0);

    let room = Uuid::parse_str(&app.create_room(owner["access_token"].as_str().unwrap(), "Kept").await).unwrap();
    assert_eq!(count("room.created").await, 1);
    let queued: i64 = sqlx::query_scalar(
        "select count(*) from webhook_deliveries d join webhook_events e on e.id = d.event_id where e.room_id = $1",
    )
    .bind(room)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(queued, 1, "queued for the endpoint in the same transaction");

    // A recording's life as the recorder writes it: started once (a take-over does not repeat
    // it), then ready with its files.
    let recording = app.insert_recording(room, "starting").await;
    let set = |status: &'static str| {
        let db = app.db.clone();
        async move {
            sqlx::query("update recordings set status = $2, started_at = coalesce(started_at, now()) where id = $1")
                .bind(recording)
                .bind(status)
                .execute(&db)
                .await
                .unwrap();
        }
    };
    sqlx::query("update recordings set status = 'recording' where id = $1")
        .bind(recording)
        .execute(&app.db)
        .await
        .unwrap();
    set("starting").await;
    set("recording").await;
    app.insert_recording_file(recording, b"webm").await;
    set("ready").await;
    assert_eq!(count("recording.started").await, 1);
    let ready: Value = sqlx::query_scalar("select payload from webhook_events where type = 'recording.ready'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(ready["recording"]["status"], "ready");
    assert_eq!(ready["files"][0]["participant"], "Ann Lee");
    let seqs: Vec<i64> = sqlx::query_scalar("select room_seq from webhook_events where room_id = $1 order by room_seq")
        .bind(room)
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(seqs, [1, 2, 3], "room.created, recording.started, recording.ready");
}

#[actix_web::test]
async fn participant_events_come_from_the_gateways_stream_once_each() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let admin = app.admin_token().await.1;
    register(&app, &admin, json!({"url": receiver.url, "events": ["participant.joined", "participant.left"]})).await;
    let room = Uuid::new_v4();
    let mut redis =
        redis::Client::open(app.settings.redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let stream = confab_domain::keys::presence_events(&app.settings.redis_prefix);
    let peer = json!({"peer_id": "p1", "user_id": "u1", "display_name": "Ann", "role": "member",
                      "instance_id": "gw-1", "joined_at": "2026-11-24T08:00:00Z", "recording_id": ""})
    .to_string();
    let room_id = room.to_string();
    let _: String = redis::AsyncCommands::xadd(
        &mut redis,
        &stream,
        "*",
        &[("type", "participant.joined"), ("room_id", room_id.as_str()), ("peer", peer.as_str())],
    )
    .await
    .unwrap();
    let _: String = redis::AsyncCommands::xadd(&mut redis, &stream, "*", &[("type", "nonsense")]).await.unwrap();
    let _: String = redis::AsyncCommands::xadd(
        &mut redis,
        &stream,
        "*",
        &[("type", "participant.left"), ("room_id", room_id.as_str()), ("peer", peer.as_str()), ("reason", "kicked")],
    )
    .await
    .unwrap();
    let left = receiver.wait_for("participant.left", 1).await;
    let joined = receiver.events("participant.joined");
    assert_eq!(joined[0]["data"]["participant"]["display_name"], "Ann");
    assert_eq!((joined[0]["room_seq"].as_i64(), left[0]["room_seq"].as_i64()), (Some(1), Some(2)));
    assert_eq!(left[0]["data"]["reason"], "kicked");

    // Handled twice (a consumer that died before acknowledging): still one event.
    let entry: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg(&stream).arg("-").arg("+").arg("COUNT").arg(1).query_async(&mut redis).await.unwrap();
    let again: Option<Uuid> = sqlx::query_scalar("select confab_emit_event('participant.joined', $1, '{}', $2)")
        .bind(room)
        .bind(format!("presence:{}", entry[0].0))
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(again, None);
    let pending: i64 = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("webhooks")
        .query_async::<Vec<redis::Value>>(&mut redis)
        .await
        .map(|v| match v.first() {
            Some(redis::Value::Int(n)) => *n,
            _ => -1,
        })
        .unwrap();
    assert_eq!(pending, 0, "every entry, the unreadable one included, is acknowledged");
}

#[actix_web::test]
async fn registrations_are_checked_and_only_admins_may_manage_webhooks() {
    let app = spawn_app().await;
    let admin = app.admin_token().await.1;
    let (_, user) = app.logged_in_user().await;
    let user = user["access_token"].as_str();
    let ok = json!({"url": "https://hooks.example.org/x"});
    assert_eq!(app.post("/v1/admin/webhooks", None, ok.clone()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.post("/v1/admin/webhooks", user, ok.clone()).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/v1/admin/webhooks", user).await.status, StatusCode::FORBIDDEN);

    let long = format!("https://hooks.example.org/{}", "a".repeat(2100));
    for (body, code) in [
        (json!({"url": "ftp://hooks.example.org/x"}), "invalid_url"),
        (json!({"url": "https://user:pw@hooks.example.org/x"}), "invalid_url"),
        (json!({"url": "not a url"}), "invalid_url"),
        (json!({"url": "file:///etc/passwd"}), "invalid_url"),
        (json!({"url": "http://h*.example.org/"}), "invalid_url"),
        (json!({"url": "https://h.example.org/caf\u{e9}"}), "invalid_url"),
        (json!({"url": long}), "invalid_url"),
        (json!({"url": "https://h.example.org", "events": ["room.exploded"]}), "invalid_events"),
        (json!({"url": "https://h.example.org", "secret": "hunter2"}), "invalid_secret"),
        (json!({"url": "https://h.example.org", "secret": "whsec_c2hvcnQ="}), "invalid_secret"),
        (json!({"url": "https://h.example.org", "description": "x".repeat(201)}), "invalid_description"),
        (json!({"url": "https://h.example.org", "description": "a\u{0}b"}), "invalid_text"),
        (json!({"url": "https://h.example.org", "surprise": 1}), "invalid_field"),
        (json!({"url": 5}), "invalid_field"),
        (json!({}), "invalid_field"),
    ] {
        let reply = app.post("/v1/admin/webhooks", Some(&admin), body.clone()).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, code), "{body}");
    }
    let malformed = app.send_raw("POST", "/v1/admin/webhooks", Some(&admin), "{\"url\":").await;
    assert_eq!(malformed.code(), "malformed_json");

    let created = register(&app, &admin, ok).await;
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"), "a secret is generated");
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1/admin/webhooks/{id}");
    let patch = |body: Value| app.send("PATCH", &path, Some(&admin), Some(body));
    assert_eq!(patch(json!({"url": "gopher://x"})).await.code(), "invalid_url");
    assert_eq!(patch(json!({"events": ["nope"]})).await.code(), "invalid_events");
    assert_eq!(patch(json!({"secret": SECRET})).await.code(), "invalid_field", "secrets are not changed by PATCH");
    assert_eq!(patch(json!({"events": ["room.created"]})).await.body["events"], json!(["room.created"]));
    assert_eq!(
        app.send("PATCH", &format!("/v1/admin/webhooks/{id}"), user, Some(json!({"active": false}))).await.status,
        StatusCode::FORBIDDEN
    );
    for path in [format!("/v1/admin/webhooks/{}", Uuid::new_v4()), "/v1/admin/webhooks/not-a-uuid".into()] {
        assert_eq!(app.get(&path, Some(&admin)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.send("DELETE", &path, Some(&admin), None).await.status, StatusCode::NOT_FOUND);
    }
    let bad_status = app.get(&format!("/v1/admin/webhooks/{id}/deliveries?status=lost"), Some(&admin)).await;
    assert_eq!(bad_status.code(), "invalid_status");
    let bad_cursor = app.get(&format!("/v1/admin/webhooks/{id}/deliveries?cursor=zzz"), Some(&admin)).await;
    assert_eq!(bad_cursor.code(), "invalid_cursor");
    let listed = app.get("/v1/admin/webhooks", Some(&admin)).await;
    assert_eq!(listed.body["webhooks"].as_array().unwrap().len(), 1);
    assert!(listed.body["webhooks"][0].get("secret").is_none());
}
