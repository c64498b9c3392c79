//! Every route × every kind of caller, with the expected status. The table's keys must equal
//! the routes in the OpenAPI document, so a new route without a row fails this test.

use std::collections::BTreeSet;

use awc::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{PASSWORD, TestApp, spawn_app_with, unique_email};

/// Callers, in the order of the status columns below.
const CALLERS: [&str; 6] = ["anonymous", "stranger", "member", "moderator", "owner", "admin"];

/// Which user a `{user_id}` in the path names.
#[derive(Clone, Copy)]
enum Target {
    /// A plain member of the fixture room.
    Member,
    /// A user banned from the fixture room.
    Banned,
}

struct Row {
    method: &'static str,
    path: &'static str,
    body: fn(&Fixture) -> Value,
    target: Target,
    statuses: [u16; 6],
}

const fn row(method: &'static str, path: &'static str, body: fn(&Fixture) -> Value, statuses: [u16; 6]) -> Row {
    Row { method, path, body, target: Target::Member, statuses }
}

fn none(_: &Fixture) -> Value {
    Value::Null
}

const PUBLIC_200: [u16; 6] = [200; 6];
const USER: fn(u16) -> [u16; 6] = |ok| [401, ok, ok, ok, ok, ok];
const ROOM_READ: [u16; 6] = [401, 404, 200, 200, 200, 200];
const ROOM_MANAGE: fn(u16) -> [u16; 6] = |ok| [401, 404, 403, ok, ok, ok];
const ADMIN: fn(u16) -> [u16; 6] = |ok| [401, 403, 403, 403, 403, ok];

fn table() -> Vec<Row> {
    vec![
        row("get", "/healthz", none, PUBLIC_200),
        row("get", "/readyz", none, PUBLIC_200),
        row("get", "/metrics", none, PUBLIC_200),
        row("get", "/.well-known/jwks.json", none, PUBLIC_200),
        row("get", "/openapi.json", none, PUBLIC_200),
        row(
            "post",
            "/v1/auth/signup",
            |_| json!({"email": unique_email(), "password": PASSWORD, "display_name": "N"}),
            [201; 6],
        ),
        row(
            "post",
            "/v1/auth/login",
            |_| json!({"email": "nobody@example.org", "password": "wrong password"}),
            [401; 6],
        ),
        row("post", "/v1/auth/refresh", |_| json!({"refresh_token": "not a token"}), [401; 6]),
        row("post", "/v1/auth/logout", none, USER(204)),
        row("get", "/v1/me", none, USER(200)),
        row("patch", "/v1/me", |_| json!({"display_name": "Renamed"}), USER(200)),
        row("post", "/v1/rooms", |_| json!({"name": "Another room"}), USER(201)),
        row("get", "/v1/rooms", none, USER(200)),
        row("get", "/v1/rooms/{id}", none, ROOM_READ),
        row("patch", "/v1/rooms/{id}", |_| json!({"name": "Renamed room"}), ROOM_MANAGE(200)),
        row("delete", "/v1/rooms/{id}", none, [401, 404, 403, 403, 204, 204]),
        row("get", "/v1/rooms/{id}/members", none, ROOM_READ),
        row("post", "/v1/rooms/{id}/members", |f| json!({"email": f.outsider_email}), ROOM_MANAGE(201)),
        row("patch", "/v1/rooms/{id}/members/{user_id}", |_| json!({"role": "member"}), ROOM_MANAGE(200)),
        row("delete", "/v1/rooms/{id}/members/{user_id}", none, ROOM_MANAGE(204)),
        row("post", "/v1/rooms/{id}/bans", |f| json!({"user_id": f.target}), ROOM_MANAGE(201)),
        row("get", "/v1/rooms/{id}/bans", none, ROOM_MANAGE(200)),
        Row { target: Target::Banned, ..row("delete", "/v1/rooms/{id}/bans/{user_id}", none, ROOM_MANAGE(204)) },
        row(
            "post",
            "/v1/rooms/{id}/cameras",
            |_| json!({"name": "Gate", "rtsp_url": "rtsp://8.8.8.8:554/stream"}),
            ROOM_MANAGE(201),
        ),
        row("get", "/v1/rooms/{id}/cameras", none, ROOM_READ),
        row("get", "/v1/rooms/{id}/cameras/{camera_id}", none, ROOM_READ),
        row("patch", "/v1/rooms/{id}/cameras/{camera_id}", |_| json!({"name": "Renamed camera"}), ROOM_MANAGE(200)),
        row("delete", "/v1/rooms/{id}/cameras/{camera_id}", none, ROOM_MANAGE(204)),
        row("get", "/v1/rooms/{id}/cameras/{camera_id}/status", none, ROOM_READ),
        row("post", "/v1/rooms/{id}/invites", |_| json!({}), ROOM_MANAGE(201)),
        row("get", "/v1/rooms/{id}/invites", none, ROOM_MANAGE(200)),
        row("delete", "/v1/rooms/{id}/invites/{invite_id}", none, ROOM_MANAGE(204)),
        row("post", "/v1/invites/{token}/accept", none, USER(200)),
        row("post", "/v1/rooms/{id}/join", none, [401, 404, 200, 200, 200, 403]),
        row("get", "/v1/rooms/{id}/participants", none, ROOM_READ),
        row("post", "/v1/rooms/{id}/speakers", |_| json!({"peer_id": "peer-1"}), ROOM_MANAGE(204)),
        row("delete", "/v1/rooms/{id}/speakers/{peer_id}", none, ROOM_MANAGE(204)),
        row("post", "/v1/rooms/{id}/recordings", none, ROOM_MANAGE(202)),
        row("post", "/v1/recordings/{id}/stop", none, ROOM_MANAGE(200)),
        row("get", "/v1/recordings", none, USER(200)),
        row("get", "/v1/recordings/{id}", none, ROOM_READ),
        row("delete", "/v1/recordings/{id}", none, ROOM_MANAGE(204)),
        row("get", "/v1/recordings/{id}/files/{file_id}", none, ROOM_READ),
        row("get", "/v1/admin/users", none, ADMIN(200)),
        row("get", "/v1/admin/users/{id}", none, ADMIN(200)),
        row("patch", "/v1/admin/users/{id}", |_| json!({"disabled": true}), ADMIN(200)),
        row("delete", "/v1/admin/users/{id}", none, ADMIN(204)),
        row("get", "/v1/admin/rooms", none, ADMIN(200)),
        row("delete", "/v1/admin/rooms/{id}", none, ADMIN(204)),
        row("get", "/v1/admin/rooms/{id}/participants", none, ADMIN(200)),
        row("post", "/v1/admin/rooms/{id}/participants/{peer_id}/kick", none, ADMIN(202)),
        row("get", "/v1/admin/recordings", none, ADMIN(200)),
        row("get", "/v1/admin/audit-log", none, ADMIN(200)),
        row("get", "/v1/admin/cameras", none, ADMIN(200)),
        row("get", "/v1/admin/sfus", none, ADMIN(200)),
        row("post", "/v1/admin/sfus/{id}/drain", none, ADMIN(204)),
        row("get", "/v1/admin/stats", none, ADMIN(200)),
        row("post", "/v1/admin/webhooks", |_| json!({"url": "https://hooks.example.org/confab"}), ADMIN(201)),
        row("get", "/v1/admin/webhooks", none, ADMIN(200)),
        row("get", "/v1/admin/webhooks/{id}", none, ADMIN(200)),
        row("patch", "/v1/admin/webhooks/{id}", |_| json!({"active": false}), ADMIN(200)),
        row("delete", "/v1/admin/webhooks/{id}", none, ADMIN(204)),
        row("get", "/v1/admin/webhooks/{id}/deliveries", none, ADMIN(200)),
    ]
}

/// A fresh room with an owner, a moderator, a member, a target member, a banned user, an invite,
/// a camera and one live participant, so destructive requests never depend on each other.
pub struct Fixture {
    room: Uuid,
    target: Uuid,
    banned: Uuid,
    throwaway_user: Uuid,
    invite_id: Uuid,
    invite_token: String,
    outsider_email: String,
    /// A recording in progress, and a finished one with a file.
    running: Uuid,
    finished: Uuid,
    file: Uuid,
    webhook: Uuid,
    camera: Uuid,
    /// A live media server instance.
    sfu: String,
}

/// The signed-in callers: tokens by caller name (none for anonymous).
struct Callers {
    ids: Vec<Uuid>,
    tokens: Vec<Option<String>>,
}

async fn insert_user(db: &PgPool, role: &str) -> (Uuid, String) {
    let (id, email) = (Uuid::new_v4(), unique_email());
    sqlx::query("insert into users (id, email, display_name, password_hash, role) values ($1, $2, 'U', 'x', $3)")
        .bind(id)
        .bind(&email)
        .bind(role)
        .execute(db)
        .await
        .unwrap();
    (id, email)
}

async fn fixture(app: &TestApp, callers: &Callers) -> Fixture {
    let db = &app.db;
    let [_, _, member, moderator, owner, _] = callers.ids[..] else { unreachable!() };
    let room = Uuid::new_v4();
    // A lecture, so that its viewers can be let speak.
    sqlx::query(
        "insert into rooms (id, name, owner_id, max_participants, mode) values ($1, 'Fixture', $2, 8, 'lecture')",
    )
    .bind(room)
    .bind(owner)
    .execute(db)
    .await
    .unwrap();
    let (target, _) = insert_user(db, "user").await;
    let (banned, _) = insert_user(db, "user").await;
    let (throwaway_user, _) = insert_user(db, "user").await;
    let (_, outsider_email) = insert_user(db, "user").await;
    for (user, role) in [(owner, "owner"), (moderator, "moderator"), (member, "member"), (target, "member")] {
        sqlx::query("insert into room_members (room_id, user_id, role) values ($1, $2, $3)")
            .bind(room)
            .bind(user)
            .bind(role)
            .execute(db)
            .await
            .unwrap();
    }
    sqlx::query("insert into room_bans (room_id, user_id) values ($1, $2)")
        .bind(room)
        .bind(banned)
        .execute(db)
        .await
        .unwrap();
    let invite_token = format!("fixture-{}", Uuid::new_v4().simple());
    let invite_id = Uuid::new_v4();
    sqlx::query(
        "insert into invites (id, room_id, token_hash, max_uses, expires_at) values ($1, $2, sha256($3::bytea), 10, now() + interval '1 day')",
    )
    .bind(invite_id)
    .bind(room)
    .bind(invite_token.as_bytes())
    .execute(db)
    .await
    .unwrap();
    app.put_presence(room, "peer-1", target).await;
    let running = app.insert_recording(room, "recording").await;
    let finished = app.insert_recording(room, "ready").await;
    let file = app.insert_recording_file(finished, b"webm bytes").await;
    let webhook = Uuid::new_v4();
    sqlx::query("insert into webhook_endpoints (id, url, secret) values ($1, 'https://hooks.example.org/f', $2)")
        .bind(webhook)
        .bind(format!("whsec_{}", "A".repeat(32)))
        .execute(db)
        .await
        .unwrap();
    let camera = Uuid::new_v4();
    sqlx::query("insert into cameras (id, room_id, name, rtsp_url) values ($1, $2, 'Door', 'rtsp://8.8.4.4/live')")
        .bind(camera)
        .bind(room)
        .execute(db)
        .await
        .unwrap();
    let sfu = format!("sfu-{}", Uuid::new_v4().simple());
    app.register_sfu(&sfu, 0).await;
    Fixture {
        room,
        target,
        banned,
        throwaway_user,
        invite_id,
        invite_token,
        outsider_email,
        running,
        finished,
        file,
        webhook,
        camera,
        sfu,
    }
}

fn fill(path: &str, fixture: &Fixture, target: Target) -> String {
    let user = match target {
        Target::Member => fixture.target,
        Target::Banned => fixture.banned,
    };
    let id = if path.starts_with("/v1/admin/users/") {
        fixture.throwaway_user.to_string()
    } else if path.starts_with("/v1/admin/webhooks/") {
        fixture.webhook.to_string()
    } else if path.starts_with("/v1/admin/sfus/") {
        fixture.sfu.clone()
    } else if path.ends_with("/stop") {
        fixture.running.to_string()
    } else if path.starts_with("/v1/recordings/") {
        fixture.finished.to_string()
    } else {
        fixture.room.to_string()
    };
    path.replace("{id}", &id)
        .replace("{user_id}", &user.to_string())
        .replace("{invite_id}", &fixture.invite_id.to_string())
        .replace("{token}", &fixture.invite_token)
        .replace("{peer_id}", "peer-1")
        .replace("{file_id}", &fixture.file.to_string())
        .replace("{camera_id}", &fixture.camera.to_string())
}

async fn sign_in_callers(app: &TestApp) -> Callers {
    let mut ids = vec![Uuid::nil()];
    let mut tokens = vec![None];
    for caller in &CALLERS[1..] {
        let email = unique_email();
        app.signup(&email, PASSWORD).await;
        if *caller == "admin" {
            sqlx::query("update users set role = 'admin' where email = $1")
                .bind(&email)
                .execute(&app.db)
                .await
                .unwrap();
        }
        let login = app.login(&email, PASSWORD).await.body;
        ids.push(Uuid::parse_str(login["user"]["id"].as_str().unwrap()).unwrap());
        tokens.push(Some(login["access_token"].as_str().unwrap().to_owned()));
    }
    Callers { ids, tokens }
}

#[actix_web::test]
async fn every_route_answers_every_caller_as_the_table_says() {
    let app = spawn_app_with(|s| {
        s.limits.signup_per_ip.max = 1000;
        s.limits.login_per_ip.max = 1000;
    })
    .await;
    let mut callers = sign_in_callers(&app).await;

    let documented: BTreeSet<(String, String)> = app.documented_routes().await.into_iter().collect();
    let rows = table();
    let tabled: BTreeSet<(String, String)> = rows.iter().map(|r| (r.method.to_owned(), r.path.to_owned())).collect();
    assert_eq!(documented, tabled, "every documented route needs a row, and every row a documented route");

    let mut failures = Vec::new();
    for row in &rows {
        for (index, caller) in CALLERS.iter().enumerate() {
            let fixture = fixture(&app, &callers).await;
            let path = fill(row.path, &fixture, row.target);
            let body = (row.body)(&fixture);
            let token = callers.tokens[index].clone();
            let reply = app.send(&row.method.to_uppercase(), &path, token.as_deref(), Some(body)).await;
            if row.path == "/v1/auth/logout" && index > 0 {
                // Logging out ended every session of the caller: sign in again.
                callers.tokens[index] = Some(app.fresh_token_for(callers.ids[index]).await);
            }
            if reply.status.as_u16() != row.statuses[index] {
                failures.push(format!(
                    "{} {} as {caller}: expected {}, got {} {}",
                    row.method, row.path, row.statuses[index], reply.status, reply.body
                ));
            }
            assert!(reply.status != StatusCode::INTERNAL_SERVER_ERROR, "{} {path}: 500", row.method);
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
