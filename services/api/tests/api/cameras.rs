//! IP cameras of a room: who may manage and see them, the SSRF guard on their URLs, the secrecy
//! of their credentials, the limits on input, and the status the ingest worker reports.
//!
//! DNS works here only for `localhost` and IP literals, so "public" cameras are public IP
//! literals (8.8.8.8) and names are `localhost` (resolves to loopback) and `.invalid` (never
//! resolves).

use awc::http::StatusCode;
use confab_common::secret_box::SecretBox;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Reply, TestApp, spawn_app, spawn_app_with};

/// The camera key of the apps that store credentials (32 bytes, base64).
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const PUBLIC_URL: &str = "rtsp://8.8.8.8:554/Streaming/Channels/101?transport=tcp";

async fn app_with_key() -> TestApp {
    spawn_app_with(|s| s.cameras.key = Some(SecretBox::from_base64_key(KEY).unwrap())).await
}

/// A room with an owner, a moderator and a member, and an outsider: their access tokens.
struct People {
    room: String,
    owner: String,
    moderator: String,
    member: String,
    stranger: String,
}

async fn token(app: &TestApp) -> (String, String) {
    let (email, login) = app.logged_in_user().await;
    (email, login["access_token"].as_str().unwrap().to_owned())
}

async fn people(app: &TestApp) -> People {
    let (_, owner) = token(app).await;
    let room = app.create_room(&owner, "Lobby").await;
    let mut tokens = Vec::new();
    for role in ["moderator", "member"] {
        let (email, token) = token(app).await;
        let reply =
            app.post(&format!("/v1/rooms/{room}/members"), Some(&owner), json!({"email": email, "role": role})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        tokens.push(token);
    }
    let (_, stranger) = token(app).await;
    let member = tokens.pop().unwrap();
    let moderator = tokens.pop().unwrap();
    People { room, owner, moderator, member, stranger }
}

async fn admin_token(app: &TestApp) -> String {
    let (email, token) = token(app).await;
    sqlx::query("update users set role = 'admin' where email = $1").bind(&email).execute(&app.db).await.unwrap();
    token
}

fn cameras_path(room: &str) -> String {
    format!("/v1/rooms/{room}/cameras")
}

async fn add_camera(app: &TestApp, room: &str, token: &str, body: Value) -> Reply {
    app.post(&cameras_path(room), Some(token), body).await
}

/// Adds a camera that must be accepted; returns its view.
async fn added(app: &TestApp, room: &str, token: &str, body: Value) -> Value {
    let reply = add_camera(app, room, token, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

fn id(view: &Value) -> &str {
    view["id"].as_str().unwrap()
}

async fn audit_actions(app: &TestApp) -> Vec<(String, Value)> {
    sqlx::query_as::<_, (String, Value)>(
        "select action, details from audit_log where action like 'camera.%' order by id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[actix_web::test]
async fn managers_add_list_change_and_remove_cameras_and_each_change_is_audited() {
    let app = spawn_app().await;
    let p = people(&app).await;
    let created = added(&app, &p.room, &p.owner, json!({"name": "  Front door ", "rtsp_url": PUBLIC_URL})).await;
    assert_eq!(created["name"], "Front door");
    assert_eq!(created["room_id"], p.room.as_str());
    assert_eq!(created["rtsp_url"], PUBLIC_URL);
    assert_eq!(created["has_credentials"], false);
    assert_eq!(created["status"]["state"], "idle");
    let second =
        added(&app, &p.room, &p.moderator, json!({"name": "Yard", "rtsp_url": "rtsps://[2001:4860:4860::8888]/live"}))
            .await;

    let list = app.get(&cameras_path(&p.room), Some(&p.owner)).await;
    assert_eq!(list.status, StatusCode::OK);
    let names: Vec<&str> =
        list.body["cameras"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Front door", "Yard"], "oldest first");

    let camera_path = format!("{}/{}", cameras_path(&p.room), id(&created));
    let changed = app
        .send(
            "PATCH",
            &camera_path,
            Some(&p.moderator),
            Some(json!({"name": "Entrance", "rtsp_url": "rtsp://8.8.4.4:8554/main"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(
        (changed.body["name"].as_str(), changed.body["rtsp_url"].as_str()),
        (Some("Entrance"), Some("rtsp://8.8.4.4:8554/main"))
    );
    let read = app.get(&camera_path, Some(&p.owner)).await.body;
    assert_eq!(read["name"], "Entrance");
    assert_ne!(read["updated_at"], created["updated_at"], "the worker notices a change by updated_at");

    let deleted = app.send("DELETE", &camera_path, Some(&p.owner), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&camera_path, Some(&p.owner)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.send("DELETE", &camera_path, Some(&p.owner), None).await.status, StatusCode::NOT_FOUND);
    let left = app.get(&cameras_path(&p.room), Some(&p.owner)).await.body;
    assert_eq!(left["cameras"].as_array().unwrap().len(), 1);
    assert_eq!(left["cameras"][0]["id"], second["id"]);

    let audit = audit_actions(&app).await;
    let actions: Vec<&str> = audit.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions, ["camera.create", "camera.create", "camera.update", "camera.delete"]);
    assert_eq!(audit[0].1["host"], "8.8.8.8:554");
    assert_eq!(audit[2].1["changed"], json!(["name", "rtsp_url"]));
    for (_, details) in &audit {
        let text = details.to_string();
        assert!(
            !text.contains("transport=tcp") && !text.contains("Streaming"),
            "no path or query in the audit: {text}"
        );
    }
}

#[actix_web::test]
async fn members_see_cameras_and_their_status_but_neither_url_nor_credentials_and_strangers_see_nothing() {
    let app = app_with_key().await;
    let p = people(&app).await;
    let camera = added(
        &app,
        &p.room,
        &p.owner,
        json!({"name": "Door", "rtsp_url": PUBLIC_URL, "username": "viewer", "password": "s3cret-pass"}),
    )
    .await;
    let camera_path = format!("{}/{}", cameras_path(&p.room), id(&camera));

    let as_member = app.get(&cameras_path(&p.room), Some(&p.member)).await.body;
    let seen = &as_member["cameras"][0];
    assert_eq!((seen["name"].as_str(), seen["status"]["state"].as_str()), (Some("Door"), Some("idle")));
    assert!(seen.get("rtsp_url").is_none() && seen.get("has_credentials").is_none(), "{seen}");
    let one = app.get(&camera_path, Some(&p.member)).await.body;
    assert!(one.get("rtsp_url").is_none() && one.get("has_credentials").is_none(), "{one}");
    assert_eq!(app.get(&format!("{camera_path}/status"), Some(&p.member)).await.status, StatusCode::OK);

    let as_moderator = app.get(&camera_path, Some(&p.moderator)).await.body;
    assert_eq!(
        (as_moderator["rtsp_url"].as_str(), as_moderator["has_credentials"].as_bool()),
        (Some(PUBLIC_URL), Some(true))
    );

    for path in [cameras_path(&p.room), camera_path.clone(), format!("{camera_path}/status")] {
        let reply = app.get(&path, Some(&p.stranger)).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "not_found"), "{path}");
    }
    let body = json!({"name": "Mine", "rtsp_url": PUBLIC_URL});
    assert_eq!(add_camera(&app, &p.room, &p.member, body.clone()).await.status, StatusCode::FORBIDDEN);
    assert_eq!(add_camera(&app, &p.room, &p.stranger, body).await.status, StatusCode::NOT_FOUND);
    let rename = app.send("PATCH", &camera_path, Some(&p.member), Some(json!({"name": "X"}))).await;
    assert_eq!(rename.status, StatusCode::FORBIDDEN);
    assert_eq!(app.send("DELETE", &camera_path, Some(&p.member), None).await.status, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn camera_urls_that_reach_into_the_servers_network_are_refused() {
    let app = spawn_app().await;
    let p = people(&app).await;
    for (url, code) in [
        ("rtsp://127.0.0.1/stream", "camera_host_not_allowed"),
        ("rtsp://127.0.0.1:8554/stream", "camera_host_not_allowed"),
        ("rtsp://localhost/stream", "camera_host_not_allowed"),
        ("rtsp://LOCALHOST/stream", "camera_host_not_allowed"),
        ("rtsp://10.0.0.7/stream", "camera_host_not_allowed"),
        ("rtsp://192.168.1.64/stream", "camera_host_not_allowed"),
        ("rtsp://172.16.5.5/stream", "camera_host_not_allowed"),
        ("rtsp://100.64.0.1/stream", "camera_host_not_allowed"),
        ("rtsp://169.254.169.254/latest/meta-data", "camera_host_not_allowed"),
        ("rtsp://[::1]/stream", "camera_host_not_allowed"),
        ("rtsp://[::ffff:127.0.0.1]/stream", "camera_host_not_allowed"),
        ("rtsp://[::ffff:7f00:1]/stream", "camera_host_not_allowed"),
        ("rtsp://[fd00::1]/stream", "camera_host_not_allowed"),
        ("rtsp://[fe80::1]/stream", "camera_host_not_allowed"),
        ("rtsp://0.0.0.0/stream", "camera_host_not_allowed"),
        ("rtsp://224.0.0.1/stream", "camera_host_not_allowed"),
        ("rtsp://255.255.255.255/stream", "camera_host_not_allowed"),
        ("rtsp://203.0.113.10/stream", "camera_host_not_allowed"),
        ("rtsp://2130706433/stream", "camera_host_not_allowed"),
        ("rtsp://camera.invalid/stream", "camera_host_unresolvable"),
        ("http://8.8.8.8/stream", "invalid_rtsp_url"),
        ("file:///etc/passwd", "invalid_rtsp_url"),
        ("rtsp:///stream", "invalid_rtsp_url"),
        ("not a url", "invalid_rtsp_url"),
        ("rtsp://admin:hunter2@8.8.8.8/stream", "credentials_in_url"),
        ("rtsp://admin@8.8.8.8/stream", "credentials_in_url"),
    ] {
        let reply = add_camera(&app, &p.room, &p.owner, json!({"name": "Cam", "rtsp_url": url})).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, code), "{url}: {}", reply.body);
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(!message.contains("hunter2") && !message.contains("admin@"), "{url}: {message}");
        assert!(!message.contains("8.8.8.8") && !message.contains("stream"), "the URL is not echoed: {message}");
    }
    let long = format!("rtsp://8.8.8.8/{}", "a".repeat(2048));
    let reply = add_camera(&app, &p.room, &p.owner, json!({"name": "Cam", "rtsp_url": long})).await;
    assert_eq!(reply.code(), "invalid_rtsp_url");

    // Changing the URL goes through the same guard.
    let camera = added(&app, &p.room, &p.owner, json!({"name": "Cam", "rtsp_url": PUBLIC_URL})).await;
    let path = format!("{}/{}", cameras_path(&p.room), id(&camera));
    let reply = app.send("PATCH", &path, Some(&p.owner), Some(json!({"rtsp_url": "rtsp://127.0.0.1/"}))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, "camera_host_not_allowed"));
    assert_eq!(app.get(&path, Some(&p.owner)).await.body["rtsp_url"], PUBLIC_URL);
    let count: i64 = sqlx::query_scalar("select count(*) from cameras").fetch_one(&app.db).await.unwrap();
    assert_eq!(count, 1, "nothing refused was stored");
}

#[actix_web::test]
async fn operators_can_open_private_networks_or_name_the_hosts_cameras_may_use() {
    let private = spawn_app_with(|s| s.cameras.allow_private = true).await;
    let p = people(&private).await;
    for url in [
        "rtsp://10.0.0.7/stream",
        "rtsp://192.168.1.64/",
        "rtsp://100.64.0.1/",
        "rtsp://169.254.10.10/",
        "rtsp://[fd00::1]/",
    ] {
        let reply = add_camera(&private, &p.room, &p.owner, json!({"name": "LAN", "rtsp_url": url})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{url}: {}", reply.body);
        sqlx::query("delete from cameras").execute(&private.db).await.unwrap();
    }
    // Private networks are not the server itself, nor the metadata service.
    for url in ["rtsp://127.0.0.1/", "rtsp://localhost/", "rtsp://[::1]/", "rtsp://169.254.169.254/", "rtsp://0.0.0.0/"]
    {
        let reply = add_camera(&private, &p.room, &p.owner, json!({"name": "LAN", "rtsp_url": url})).await;
        assert_eq!(reply.code(), "camera_host_not_allowed", "{url}");
    }

    let named = spawn_app_with(|s| {
        s.cameras.allowed_hosts = vec!["localhost".into(), "127.0.0.1".into(), "10.20.0.0/16".into()]
    })
    .await;
    let p = people(&named).await;
    for url in ["rtsp://localhost:8554/cam", "rtsp://127.0.0.1:8554/cam", "rtsp://10.20.30.40/cam"] {
        let reply = add_camera(&named, &p.room, &p.owner, json!({"name": "Allowed", "rtsp_url": url})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{url}: {}", reply.body);
        sqlx::query("delete from cameras").execute(&named.db).await.unwrap();
    }
    for url in ["rtsp://10.21.0.1/cam", "rtsp://127.0.0.2/cam", "rtsp://192.168.1.1/cam"] {
        let reply = add_camera(&named, &p.room, &p.owner, json!({"name": "Other", "rtsp_url": url})).await;
        assert_eq!(reply.code(), "camera_host_not_allowed", "{url}");
    }
}

#[actix_web::test]
async fn credentials_are_sealed_in_the_database_and_never_come_back() {
    let app = app_with_key().await;
    let p = people(&app).await;
    let admin = admin_token(&app).await;
    let username = format!("cam-user-{}", Uuid::new_v4().simple());
    let password = format!("cam-pass-{}", Uuid::new_v4().simple());
    let created = add_camera(
        &app,
        &p.room,
        &p.owner,
        json!({"name": "Safe", "rtsp_url": PUBLIC_URL, "username": username, "password": password}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["has_credentials"], true);
    let camera_path = format!("{}/{}", cameras_path(&p.room), id(&created.body));
    let renamed = app.send("PATCH", &camera_path, Some(&p.owner), Some(json!({"name": "Safer"}))).await;
    let mut replies = vec![created, renamed];
    for token in [&p.owner, &p.moderator, &p.member, &admin] {
        replies.push(app.get(&cameras_path(&p.room), Some(token)).await);
        replies.push(app.get(&camera_path, Some(token)).await);
        replies.push(app.get(&format!("{camera_path}/status"), Some(token)).await);
    }
    replies.push(app.get("/v1/admin/cameras", Some(&admin)).await);
    replies.push(app.get("/v1/admin/audit-log", Some(&admin)).await);
    for reply in &replies {
        assert!(reply.status.is_success(), "{}", reply.body);
        let text = String::from_utf8_lossy(&reply.raw);
        assert!(!text.contains(&password) && !text.contains(&username), "credentials in a reply: {text}");
        assert!(!text.contains("credentials\":\""), "a credentials field in a reply: {text}");
    }
    let admin_list = &replies[replies.len() - 2].body;
    assert_eq!(admin_list["cameras"][0]["has_credentials"], true);

    let sealed: Vec<u8> = sqlx::query_scalar("select credentials from cameras where id = $1")
        .bind(Uuid::parse_str(id(&replies[0].body)).unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(!sealed.windows(password.len()).any(|w| w == password.as_bytes()), "the password is stored in plaintext");
    assert!(!sealed.windows(username.len()).any(|w| w == username.as_bytes()), "the username is stored in plaintext");
    let opened = SecretBox::from_base64_key(KEY).unwrap().open(&sealed).expect("the column opens with the key");
    let opened: Value = serde_json::from_slice(&opened).unwrap();
    assert_eq!(opened, json!({"username": username, "password": password}));
}

async fn stored_credentials(app: &TestApp, camera: &str) -> Option<Value> {
    let sealed: Option<Vec<u8>> = sqlx::query_scalar("select credentials from cameras where id = $1")
        .bind(Uuid::parse_str(camera).unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    sealed.map(|s| serde_json::from_slice(&SecretBox::from_base64_key(KEY).unwrap().open(&s).unwrap()).unwrap())
}

#[actix_web::test]
async fn credentials_can_be_changed_piecewise_and_removed() {
    let app = app_with_key().await;
    let p = people(&app).await;
    let no_password =
        add_camera(&app, &p.room, &p.owner, json!({"name": "C", "rtsp_url": PUBLIC_URL, "username": "u"})).await;
    assert_eq!((no_password.status, no_password.code()), (StatusCode::BAD_REQUEST, "password_required"));
    let camera = added(&app, &p.room, &p.owner, json!({"name": "C", "rtsp_url": PUBLIC_URL})).await;
    let camera_id = id(&camera).to_owned();
    let path = format!("{}/{camera_id}", cameras_path(&p.room));
    let patch = |body: Value| app.send("PATCH", &path, Some(&p.owner), Some(body));

    let username_alone = patch(json!({"username": "u"})).await;
    assert_eq!(username_alone.code(), "password_required", "no stored password to keep");
    assert_eq!(patch(json!({"password": "first"})).await.body["has_credentials"], true);
    assert_eq!(stored_credentials(&app, &camera_id).await, Some(json!({"username": "", "password": "first"})));
    patch(json!({"username": "operator"})).await;
    assert_eq!(stored_credentials(&app, &camera_id).await, Some(json!({"username": "operator", "password": "first"})));
    patch(json!({"password": "second"})).await;
    assert_eq!(stored_credentials(&app, &camera_id).await, Some(json!({"username": "operator", "password": "second"})));
    let injected = patch(json!({"password": "x\r\nAuthorization: Basic Zm9v"})).await;
    assert_eq!((injected.status, injected.code()), (StatusCode::BAD_REQUEST, "invalid_password"));

    let cleared = patch(json!({"password": null})).await;
    assert_eq!(cleared.body["has_credentials"], false, "{}", cleared.body);
    assert_eq!(stored_credentials(&app, &camera_id).await, None);
    patch(json!({"username": "a", "password": "b"})).await;
    assert_eq!(patch(json!({"password": ""})).await.body["has_credentials"], false);
    assert_eq!(stored_credentials(&app, &camera_id).await, None);

    // Sealed under a key the server no longer has: changing only the user name cannot keep
    // the password, and says so.
    let other = SecretBox::from_base64_key("3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhs=").unwrap();
    sqlx::query("update cameras set credentials = $2 where id = $1")
        .bind(Uuid::parse_str(&camera_id).unwrap())
        .bind(other.seal(br#"{"username":"a","password":"b"}"#))
        .execute(&app.db)
        .await
        .unwrap();
    let stale = patch(json!({"username": "c"})).await;
    assert_eq!((stale.status, stale.code()), (StatusCode::CONFLICT, "camera_credentials_unreadable"));
    assert_eq!(patch(json!({"username": "c", "password": "d"})).await.status, StatusCode::OK);
    assert_eq!(stored_credentials(&app, &camera_id).await, Some(json!({"username": "c", "password": "d"})));
}

#[actix_web::test]
async fn without_a_camera_key_only_cameras_without_credentials_can_be_added() {
    let app = spawn_app().await;
    let p = people(&app).await;
    let body = json!({"name": "Locked", "rtsp_url": PUBLIC_URL, "username": "u", "password": "p"});
    let reply = add_camera(&app, &p.room, &p.owner, body).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "camera_credentials_disabled"));
    let open = added(&app, &p.room, &p.owner, json!({"name": "Open", "rtsp_url": PUBLIC_URL})).await;
    let path = format!("{}/{}", cameras_path(&p.room), id(&open));
    let reply = app.send("PATCH", &path, Some(&p.owner), Some(json!({"password": "p"}))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "camera_credentials_disabled"));
    let reply = app.send("PATCH", &path, Some(&p.owner), Some(json!({"password": null, "name": "Still open"}))).await;
    assert_eq!(reply.status, StatusCode::OK, "removing credentials needs no key");
}

#[actix_web::test]
async fn hostile_input_gets_a_clear_4xx() {
    let app = spawn_app().await;
    let p = people(&app).await;
    let path = cameras_path(&p.room);
    for (body, code) in [
        (json!({"name": "x".repeat(101), "rtsp_url": PUBLIC_URL}), "invalid_name"),
        (json!({"name": "   ", "rtsp_url": PUBLIC_URL}), "invalid_name"),
        (json!({"name": "bad\u{0}name", "rtsp_url": PUBLIC_URL}), "invalid_text"),
        (json!({"name": "bad\nname", "rtsp_url": PUBLIC_URL}), "invalid_name"),
        (json!({"name": "Cam", "rtsp_url": PUBLIC_URL, "credentials": "x"}), "invalid_field"),
        (json!({"name": "Cam", "rtsp_url": PUBLIC_URL, "room_id": p.room}), "invalid_field"),
        (json!({"name": "Cam"}), "invalid_field"),
        (json!({"name": 7, "rtsp_url": PUBLIC_URL}), "invalid_field"),
        (json!({"name": "Cam", "rtsp_url": "rtsp://8.8.8.8/\u{0}"}), "invalid_text"),
    ] {
        let reply = app.post(&path, Some(&p.owner), body.clone()).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, code), "{body}: {}", reply.body);
    }
    let malformed = app.send_raw("POST", &path, Some(&p.owner), "{\"name\": ").await;
    assert_eq!((malformed.status, malformed.code()), (StatusCode::BAD_REQUEST, "malformed_json"));

    let camera = added(&app, &p.room, &p.owner, json!({"name": "Cam", "rtsp_url": PUBLIC_URL})).await;
    let camera_path = format!("{path}/{}", id(&camera));
    let unknown = app.send("PATCH", &camera_path, Some(&p.owner), Some(json!({"created_by": Uuid::new_v4()}))).await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::BAD_REQUEST, "invalid_field"));

    let other_room = app.create_room(&p.owner, "Elsewhere").await;
    for bad in [
        format!("{path}/not-a-uuid"),
        format!("{path}/{}", Uuid::new_v4()),
        format!("{}/{}", cameras_path(&other_room), id(&camera)),
        format!("/v1/rooms/not-a-uuid/cameras/{}", id(&camera)),
        format!("{path}/'%20or%201=1--/status"),
    ] {
        for method in ["GET", "PATCH", "DELETE"] {
            let reply = app.send(method, &bad, Some(&p.owner), Some(json!({"name": "X"}))).await;
            // The status path answers only GET, whatever its ids: other methods are 405.
            let expected = if bad.ends_with("/status") && method != "GET" {
                StatusCode::METHOD_NOT_ALLOWED
            } else {
                StatusCode::NOT_FOUND
            };
            assert_eq!(reply.status, expected, "{method} {bad}: {}", reply.body);
        }
    }
    assert_eq!(
        app.get(&format!("{path}/{}/status", Uuid::new_v4()), Some(&p.owner)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn a_room_holds_at_most_eight_cameras() {
    let app = spawn_app().await;
    let p = people(&app).await;
    for n in 0..8 {
        added(&app, &p.room, &p.owner, json!({"name": format!("Cam {n}"), "rtsp_url": PUBLIC_URL})).await;
    }
    let ninth = add_camera(&app, &p.room, &p.owner, json!({"name": "Cam 8", "rtsp_url": PUBLIC_URL})).await;
    assert_eq!((ninth.status, ninth.code()), (StatusCode::CONFLICT, "too_many_cameras"));
    let other = app.create_room(&p.owner, "Second").await;
    added(&app, &other, &p.owner, json!({"name": "Cam", "rtsp_url": PUBLIC_URL})).await;
}

#[actix_web::test]
async fn the_status_shows_what_the_ingest_worker_last_reported() {
    let app = spawn_app().await;
    let p = people(&app).await;
    let camera = added(&app, &p.room, &p.owner, json!({"name": "Porch", "rtsp_url": PUBLIC_URL})).await;
    let path = format!("{}/{}/status", cameras_path(&p.room), id(&camera));
    let before = app.get(&path, Some(&p.member)).await;
    assert_eq!(before.status, StatusCode::OK);
    assert_eq!(
        before.body,
        json!({"state": "idle", "codec": null, "resolution": null, "frame_rate": null, "bitrate_kbps": null,
               "audio": null, "last_error": null, "reconnects": 0, "updated_at": null})
    );

    sqlx::query(
        "insert into camera_status (camera_id, state, codec, width, height, frame_rate, bitrate_kbps, audio,
                                    last_error, reconnects, worker_id)
         values ($1, 'connected', 'h264', 1920, 1080, 25, 4096, 'aac (not forwarded)', 'timeout reading RTP', 3, 'ingest-1')",
    )
    .bind(Uuid::parse_str(id(&camera)).unwrap())
    .execute(&app.db)
    .await
    .unwrap();
    let after = app.get(&path, Some(&p.member)).await.body;
    assert_eq!(after["state"], "connected");
    assert_eq!(after["codec"], "h264");
    assert_eq!(after["resolution"], json!({"width": 1920, "height": 1080}));
    assert_eq!((after["frame_rate"].as_f64(), after["bitrate_kbps"].as_i64()), (Some(25.0), Some(4096)));
    assert_eq!(
        (after["audio"].as_str(), after["last_error"].as_str()),
        (Some("aac (not forwarded)"), Some("timeout reading RTP"))
    );
    assert_eq!(after["reconnects"], 3);
    assert!(after["updated_at"].is_string());
    assert!(after.get("worker_id").is_none());
    let listed = app.get(&cameras_path(&p.room), Some(&p.member)).await.body;
    assert_eq!(listed["cameras"][0]["status"]["state"], "connected");
}

#[actix_web::test]
async fn admins_see_every_camera_with_its_url_and_status_and_deleting_a_room_removes_its_cameras() {
    let app = spawn_app().await;
    let p = people(&app).await;
    let admin = admin_token(&app).await;
    let other_room = app.create_room(&p.owner, "Other").await;
    let first = added(&app, &p.room, &p.owner, json!({"name": "A", "rtsp_url": PUBLIC_URL})).await;
    let second = added(&app, &other_room, &p.owner, json!({"name": "B", "rtsp_url": "rtsp://8.8.4.4/b"})).await;

    let all = app.get("/v1/admin/cameras", Some(&admin)).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    let cameras = all.body["cameras"].as_array().unwrap();
    assert_eq!(
        cameras.iter().map(|c| c["id"].clone()).collect::<Vec<_>>(),
        [second["id"].clone(), first["id"].clone()]
    );
    assert_eq!(cameras[1]["rtsp_url"], PUBLIC_URL);
    assert_eq!(cameras[1]["room_id"], p.room.as_str());
    assert_eq!(cameras[1]["status"]["state"], "idle");

    let page = app.get("/v1/admin/cameras?limit=1", Some(&admin)).await.body;
    assert_eq!(page["cameras"][0]["id"], second["id"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = app.get(&format!("/v1/admin/cameras?limit=1&cursor={cursor}"), Some(&admin)).await.body;
    assert_eq!(next["cameras"][0]["id"], first["id"]);
    let filtered = app.get(&format!("/v1/admin/cameras?room_id={}", p.room), Some(&admin)).await.body;
    assert_eq!(filtered["cameras"].as_array().unwrap().len(), 1);
    let bad = app.get("/v1/admin/cameras?room_id=nope", Some(&admin)).await;
    assert_eq!((bad.status, bad.code()), (StatusCode::BAD_REQUEST, "invalid_room_id"));
    assert_eq!(app.get("/v1/admin/cameras", Some(&p.owner)).await.status, StatusCode::FORBIDDEN);

    assert_eq!(
        app.send("DELETE", &format!("/v1/rooms/{}", p.room), Some(&p.owner), None).await.status,
        StatusCode::NO_CONTENT
    );
    let left = app.get("/v1/admin/cameras", Some(&admin)).await.body;
    assert_eq!(left["cameras"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn a_user_name_is_checked_even_when_the_password_is_being_removed() {
    let app = spawn_app().await;
    let p = people(&app).await;
    let camera = added(&app, &p.room, &p.owner, json!({"name": "Cam", "rtsp_url": PUBLIC_URL})).await;
    let path = format!("{}/{}", cameras_path(&p.room), id(&camera));
    let reply = app.send("PATCH", &path, Some(&p.owner), Some(json!({"username": "\u{84}", "password": null}))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, "invalid_username"), "{}", reply.body);
}
