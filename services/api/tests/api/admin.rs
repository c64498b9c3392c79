//! Administration: accounts, rooms, live participants, the audit log and statistics.

use std::time::Duration;

use awc::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, spawn_app};

#[actix_web::test]
async fn disabling_a_user_ends_their_sessions_and_connections_at_once() {
    let app = spawn_app().await;
    let (_, admin) = app.admin_token().await;
    let (email, user) = app.logged_in_user().await;
    let (id, token) = (user["user"]["id"].as_str().unwrap(), user["access_token"].as_str());
    let mut control = app.control_listener().await;
    let reply =
        app.send("PATCH", &format!("/v1/admin/users/{id}"), Some(&admin), Some(json!({"disabled": true}))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["disabled"], true);
    assert_eq!(control.next().await, json!({"disconnect_user": {"user_id": id, "reason": "disabled"}}));
    assert_eq!(app.get("/v1/me", token).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(user["refresh_token"].as_str().unwrap()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login(&email, PASSWORD).await.code(), "account_disabled");
    app.send("PATCH", &format!("/v1/admin/users/{id}"), Some(&admin), Some(json!({"disabled": false}))).await;
    assert_eq!(app.login(&email, PASSWORD).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_demoted_admin_loses_admin_routes_on_the_next_request() {
    let app = spawn_app().await;
    let (_, admin) = app.admin_token().await;
    let (other_id, other) = app.admin_token().await;
    assert_eq!(app.get("/v1/admin/stats", Some(&other)).await.status, StatusCode::OK);
    let demote =
        app.send("PATCH", &format!("/v1/admin/users/{other_id}"), Some(&admin), Some(json!({"role": "user"}))).await;
    assert_eq!(demote.status, StatusCode::OK);
    assert_eq!(app.get("/v1/admin/stats", Some(&other)).await.status, StatusCode::FORBIDDEN, "same token, new role");
}

#[actix_web::test]
async fn admins_cannot_demote_disable_or_delete_themselves() {
    let app = spawn_app().await;
    let (id, admin) = app.admin_token().await;
    let path = format!("/v1/admin/users/{id}");
    for (method, body) in
        [("PATCH", Some(json!({"role": "user"}))), ("PATCH", Some(json!({"disabled": true}))), ("DELETE", None)]
    {
        let reply = app.send(method, &path, Some(&admin), body).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "cannot_modify_self"));
    }
}

#[actix_web::test]
async fn deleting_a_user_deletes_the_rooms_they_own_and_ends_those_calls() {
    let app = spawn_app().await;
    let (_, admin) = app.admin_token().await;
    let (_, owner) = app.logged_in_user().await;
    let room = app.create_room(owner["access_token"].as_str().unwrap(), "Theirs").await;
    let id = owner["user"]["id"].as_str().unwrap();
    let mut control = app.control_listener().await;
    assert_eq!(
        app.send("DELETE", &format!("/v1/admin/users/{id}"), Some(&admin), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(control.next().await, json!({"disconnect_user": {"user_id": id, "reason": "deleted"}}));
    assert_eq!(control.next().await, json!({"close_room": {"room_id": room}}));
    assert_eq!(app.get(&format!("/v1/admin/users/{id}"), Some(&admin)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.send("DELETE", &format!("/v1/admin/rooms/{room}"), Some(&admin), None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn user_search_matches_email_and_name_literally_and_pages() {
    let app = spawn_app().await;
    let (_, admin) = app.admin_token().await;
    for name in ["Zed 100%", "Zed one", "Zed two"] {
        let email = format!("{}@example.org", uuid::Uuid::new_v4().simple());
        app.post("/v1/auth/signup", None, json!({"email": email, "password": PASSWORD, "display_name": name})).await;
    }
    let found = app.get("/v1/admin/users?q=zed", Some(&admin)).await;
    assert_eq!(found.body["users"].as_array().unwrap().len(), 3);
    let literal = app.get("/v1/admin/users?q=100%25", Some(&admin)).await;
    assert_eq!(literal.body["users"].as_array().unwrap().len(), 1, "% is matched literally");
    let wildcard = app.get("/v1/admin/users?q=%25", Some(&admin)).await;
    assert_eq!(wildcard.body["users"].as_array().unwrap().len(), 1);
    let first = app.get("/v1/admin/users?q=zed&limit=2", Some(&admin)).await.body;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app.get(&format!("/v1/admin/users?q=zed&limit=2&cursor={cursor}"), Some(&admin)).await.body;
    assert_eq!(second["users"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());
    assert_eq!(app.get("/v1/admin/users/not-a-uuid", Some(&admin)).await.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn kicking_a_live_participant_tells_the_gateways_and_is_audited() {
    let app = spawn_app().await;
    let (admin_id, admin) = app.admin_token().await;
    let (_, owner) = app.logged_in_user().await;
    let room = app.create_room(owner["access_token"].as_str().unwrap(), "Call").await;
    let user = uuid::Uuid::parse_str(owner["user"]["id"].as_str().unwrap()).unwrap();
    app.put_presence(uuid::Uuid::parse_str(&room).unwrap(), "p-7", user).await;
    let listed = app.get(&format!("/v1/admin/rooms/{room}/participants"), Some(&admin)).await;
    assert_eq!(listed.body["participants"][0]["peer_id"], "p-7");
    let unknown = app.post(&format!("/v1/admin/rooms/{room}/participants/p-8/kick"), Some(&admin), Value::Null).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let mut control = app.control_listener().await;
    let kick = app.post(&format!("/v1/admin/rooms/{room}/participants/p-7/kick"), Some(&admin), Value::Null).await;
    assert_eq!(kick.status, StatusCode::ACCEPTED);
    assert_eq!(control.next().await, json!({"kick_peer": {"room_id": room, "peer_id": "p-7"}}));
    let log = app.get("/v1/admin/audit-log", Some(&admin)).await.body;
    assert_eq!(log["entries"][0]["action"], "participant.kick");
    assert_eq!(log["entries"][0]["actor_id"], admin_id);
}

#[actix_web::test]
async fn stats_give_the_live_figures_an_operator_checks_first() {
    let app = spawn_app().await;
    let (_, admin) = app.admin_token().await;
    let owner = app.logged_in_user().await.1;
    let (token, user) = (owner["access_token"].as_str().unwrap(), owner["user"]["id"].as_str().unwrap());
    let user = uuid::Uuid::parse_str(user).unwrap();
    let (first, second) = (app.create_room(token, "Live").await, app.create_room(token, "Also live").await);
    let (first, second) = (uuid::Uuid::parse_str(&first).unwrap(), uuid::Uuid::parse_str(&second).unwrap());
    let prefix = &app.settings.redis_prefix;
    let mut redis =
        redis::Client::open(app.settings.redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    // Calls as the gateways record them: three people, a recorder and an SFU in two rooms.
    app.put_presence(first, "p-1", user).await;
    app.put_presence(first, "p-2", user).await;
    app.put_presence(second, "p-3", user).await;
    let recorder = json!({"peer_id": "r-1", "user_id": "recorder", "display_name": "Recorder", "role": "recorder",
        "instance_id": "gw-a", "joined_at": "2026-11-24T01:00:00Z"});
    let sfu = json!({"peer_id": "s-1", "user_id": "sfu-a", "display_name": "Media server", "role": "sfu",
        "instance_id": "gw-a", "joined_at": "2026-11-24T01:00:00Z"});
    let peers = confab_domain::keys::room_peers(prefix, first);
    let _: () = redis::AsyncCommands::hset(&mut redis, &peers, "r-1", recorder.to_string()).await.unwrap();
    let _: () = redis::AsyncCommands::hset(&mut redis, &peers, "s-1", sfu.to_string()).await.unwrap();
    let listed = app.get(&format!("/v1/rooms/{first}/participants"), Some(token)).await.body;
    let mut listed: Vec<&str> =
        listed["participants"].as_array().unwrap().iter().map(|p| p["peer_id"].as_str().unwrap()).collect();
    listed.sort();
    assert_eq!(listed, ["p-1", "p-2"], "the recorder and the SFU are no participants");
    let live = confab_domain::keys::live_rooms(prefix);
    let _: () = redis::AsyncCommands::sadd(&mut redis, live, &[first.to_string(), second.to_string()]).await.unwrap();
    // Two gateways with a current heartbeat; one whose heartbeat ran out.
    for (instance, ttl) in [("gw-a", 10_000), ("gw-b", 10_000), ("gw-dead", 1)] {
        let key = confab_domain::keys::gateway_alive(prefix, instance);
        let _: () = redis::cmd("SET").arg(key).arg(1).arg("PX").arg(ttl).query_async(&mut redis).await.unwrap();
    }
    // Two recorders taking jobs; one that stopped (its heartbeat ran out).
    for (recorder, ttl) in [("rec-1", 10_000), ("rec-2", 10_000), ("rec-gone", 1)] {
        let key = confab_domain::keys::recorder_alive(prefix, recorder);
        let _: () = redis::cmd("SET").arg(key).arg(1).arg("PX").arg(ttl).query_async(&mut redis).await.unwrap();
    }
    // Recordings in every state; one failure from yesterday, one from two days ago.
    for status in ["pending", "finalizing", "ready", "partial", "failed", "failed"] {
        app.insert_recording(first, status).await;
    }
    app.insert_recording(second, "recording").await;
    let old = app.insert_recording(second, "failed").await;
    sqlx::query("update recordings set ended_at = now() - interval '2 days' where id = $1")
        .bind(old)
        .execute(&app.db)
        .await
        .unwrap();

    // Webhooks: a failing endpoint (paused, so nothing is sent) with the two rooms' events
    // waiting, one of them given up today and one two days ago.
    sqlx::query(
        "insert into webhook_endpoints (id, url, secret, active, failures) values ($1, 'https://h.example.org', 'x', false, 3)",
    )
    .bind(uuid::Uuid::new_v4())
    .execute(&app.db)
    .await
    .unwrap();
    for (room, status, last) in [(first, "pending", "now()"), (second, "failed", "now()"), (second, "failed", "old")] {
        let event: uuid::Uuid = sqlx::query_scalar("select confab_emit_event('test.event', $1, '{}')")
            .bind(room)
            .fetch_one(&app.db)
            .await
            .unwrap();
        let at = if last == "old" { "now() - interval '2 days'" } else { "now()" };
        let update = format!("update webhook_deliveries set status = $2, next_attempt_at = {at} where event_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(update)).bind(event).bind(status).execute(&app.db).await.unwrap();
    }

    let stats = app.get("/v1/admin/stats", Some(&admin)).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    let expected = json!({
        "users": 2, "rooms": 2, "live_calls": 2, "participants": 3, "gateways_alive": 2, "recorders_alive": 2,
        "recordings": {"pending": 1, "starting": 0, "recording": 1, "finalizing": 1, "failed_last_24h": 2},
        "webhooks": {"pending": 1, "failed_last_24h": 1, "failing_endpoints": 1},
    });
    assert_eq!(stats.body, expected);
    // The OpenAPI document describes exactly these fields.
    let doc = app.get("/openapi.json", None).await.body;
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(keys(&schemas["Stats"]["properties"]), keys(&stats.body));
    assert_eq!(keys(&schemas["RecordingCounts"]["properties"]), keys(&stats.body["recordings"]));
    assert_eq!(keys(&schemas["WebhookCounts"]["properties"]), keys(&stats.body["webhooks"]));
    let recordings = app.get("/v1/admin/recordings", Some(&admin)).await.body;
    assert_eq!(recordings["recordings"].as_array().unwrap().len(), 8);
}

#[actix_web::test]
async fn the_audit_log_pages_newest_first() {
    let app = spawn_app().await;
    let (_, admin) = app.admin_token().await;
    let owner = app.logged_in_user().await.1["access_token"].as_str().unwrap().to_owned();
    let room = app.create_room(&owner, "Audited").await;
    for _ in 0..3 {
        app.post(&format!("/v1/rooms/{room}/invites"), Some(&owner), json!({})).await;
    }
    let first = app.get("/v1/admin/audit-log?limit=2", Some(&admin)).await.body;
    assert_eq!(first["entries"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = app.get(&format!("/v1/admin/audit-log?limit=2&cursor={cursor}"), Some(&admin)).await.body;
    assert_eq!(rest["entries"].as_array().unwrap().len(), 1);
    assert!(first["entries"][0]["id"].as_i64() > first["entries"][1]["id"].as_i64());
    assert_eq!(app.get("/v1/admin/audit-log?cursor=x", Some(&admin)).await.status, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn media_servers_are_listed_with_their_load_and_the_rooms_placed_on_each() {
    let app = spawn_app().await;
    let (_, admin) = app.admin_token().await;
    assert_eq!(app.get("/v1/admin/sfus", Some(&admin)).await.body, json!({"sfus": []}));
    app.register_sfu("sfu-b", 3).await;
    app.register_sfu("sfu-a", 12).await;
    let mut redis =
        redis::Client::open(app.settings.redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let prefix = &app.settings.redis_prefix;
    for room in ["room-2", "room-1"] {
        confab_common::sfu_jobs::serve_room(&mut redis, prefix, room, "sfu-a", Duration::from_secs(10)).await.unwrap();
    }
    let listed = app.get("/v1/admin/sfus", Some(&admin)).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let instance = |id: &str, subscribers: u64, rooms: &[&str]| {
        json!({
            "id": id, "media_addresses": ["192.0.2.1:7882", "192.0.2.1:7883"], "capacity": 250, "draining": false,
            "load": {"subscribers": subscribers, "rooms": 1, "forwarded_bits_per_second": 0, "media_cpu_percent": 0},
            "rooms": rooms,
        })
    };
    assert_eq!(listed.body, json!({"sfus": [instance("sfu-a", 12, &["room-1", "room-2"]), instance("sfu-b", 3, &[])]}));
    // The OpenAPI document describes exactly these fields.
    let doc = app.get("/openapi.json", None).await.body;
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(keys(&schemas["SfuView"]["properties"]), keys(&listed.body["sfus"][0]));
    assert_eq!(keys(&schemas["SfuLoad"]["properties"]), keys(&listed.body["sfus"][0]["load"]));
}

#[actix_web::test]
async fn a_drained_media_server_gets_no_new_room_and_the_drain_is_audited() {
    let app = spawn_app().await;
    let (admin_id, admin) = app.admin_token().await;
    app.register_sfu("sfu-a", 0).await;
    app.register_sfu("sfu-b", 100).await;
    let drained = app.post("/v1/admin/sfus/sfu-a/drain", Some(&admin), Value::Null).await;
    assert_eq!(drained.status, StatusCode::NO_CONTENT, "{}", drained.body);
    let listed = app.get("/v1/admin/sfus", Some(&admin)).await.body;
    assert_eq!((listed["sfus"][0]["id"].clone(), listed["sfus"][0]["draining"].clone()), (json!("sfu-a"), json!(true)));
    assert_eq!(listed["sfus"][1]["draining"], false);
    let mut redis =
        redis::Client::open(app.settings.redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let (media, mode) = (confab_domain::MediaRouting::Sfu, confab_domain::RoomMode::Meeting);
    let placed =
        confab_common::sfu_jobs::place(&mut redis, &app.settings.redis_prefix, "room-1", media, mode).await.unwrap();
    assert_eq!(
        placed,
        confab_common::sfu_jobs::Placement::Placed { instance_id: "sfu-b".into() },
        "the less loaded is draining"
    );
    let log = app.get("/v1/admin/audit-log", Some(&admin)).await.body;
    assert_eq!(log["entries"][0]["action"], "sfu.drain");
    assert_eq!(log["entries"][0]["actor_id"], admin_id);
    assert_eq!(log["entries"][0]["details"], json!({"instance_id": "sfu-a"}));
}

#[actix_web::test]
async fn only_admins_drain_live_media_servers_named_by_a_well_formed_id() {
    let app = spawn_app().await;
    let (_, admin) = app.admin_token().await;
    let user = app.logged_in_user().await.1;
    let user = user["access_token"].as_str().unwrap();
    app.register_sfu("sfu-a", 0).await;
    for (token, status) in [(None, StatusCode::UNAUTHORIZED), (Some(user), StatusCode::FORBIDDEN)] {
        assert_eq!(app.get("/v1/admin/sfus", token).await.status, status);
        assert_eq!(app.post("/v1/admin/sfus/sfu-a/drain", token, Value::Null).await.status, status);
    }
    let too_long = format!("/v1/admin/sfus/{}/drain", "a".repeat(65));
    for path in
        ["/v1/admin/sfus/sfu-gone/drain", "/v1/admin/sfus/sfu%3Aa/drain", "/v1/admin/sfus/sfu%20a/drain", &too_long]
    {
        let reply = app.post(path, Some(&admin), Value::Null).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "not_found"), "{path}");
    }
    let listed = app.get("/v1/admin/sfus", Some(&admin)).await.body;
    assert_eq!(listed["sfus"][0]["draining"], false, "nobody drained it");
    let log = app.get("/v1/admin/audit-log", Some(&admin)).await.body;
    assert!(log["entries"].as_array().unwrap().iter().all(|e| e["action"] != "sfu.drain"), "nothing audited: {log}");
}
