//! Letting a viewer of a lecture speak, and taking it back: who may, which peers, what the
//! gateways are told, what Redis keeps for the media server, and what the audit log says.

use awc::http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Reply, TestApp, spawn_app};

/// A lecture owned by a fresh user, with a member who is in its call as `viewer`.
struct Lecture {
    room: String,
    owner: String,
    owner_id: String,
    member: String,
    member_id: String,
}

async fn lecture(app: &TestApp) -> Lecture {
    let (_, owner) = app.logged_in_user().await;
    let (member_email, member) = app.logged_in_user().await;
    let token = owner["access_token"].as_str().unwrap().to_owned();
    let created = app.post("/v1/rooms", Some(&token), json!({"name": "Lecture", "mode": "lecture"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let room = created.body["id"].as_str().unwrap().to_owned();
    let added = app.post(&format!("/v1/rooms/{room}/members"), Some(&token), json!({"email": member_email})).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let member_id = member["user"]["id"].as_str().unwrap().to_owned();
    app.put_presence(uuid(&room), "viewer", uuid(&member_id)).await;
    Lecture {
        room,
        owner: token,
        owner_id: owner["user"]["id"].as_str().unwrap().to_owned(),
        member: member["access_token"].as_str().unwrap().to_owned(),
        member_id,
    }
}

fn uuid(text: &str) -> Uuid {
    Uuid::parse_str(text).unwrap()
}

impl TestApp {
    async fn grant(&self, room: &str, token: &str, peer_id: &str) -> Reply {
        self.post(&format!("/v1/rooms/{room}/speakers"), Some(token), json!({"peer_id": peer_id})).await
    }

    async fn revoke(&self, room: &str, token: &str, peer_id: &str) -> Reply {
        self.send("DELETE", &format!("/v1/rooms/{room}/speakers/{peer_id}"), Some(token), None).await
    }

    /// The peers let speak in the room's call, as the media server reads them.
    async fn speakers(&self, room: &str) -> Vec<String> {
        let mut redis = self.redis().await;
        let key = confab_domain::keys::room_speakers(&self.settings.redis_prefix, room);
        let mut speakers: Vec<String> = redis::AsyncCommands::smembers(&mut redis, key).await.unwrap();
        speakers.sort();
        speakers
    }

    async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.settings.redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap()
    }

    /// Puts a service's seat (`role` recorder, camera or sfu) in the room's presence.
    async fn put_seat(&self, room: &str, peer_id: &str, role: &str) {
        let entry = json!({"peer_id": peer_id, "user_id": format!("{role}-1"), "display_name": "Seat",
            "role": role, "instance_id": "gw-test", "joined_at": "2026-12-07T10:00:00Z"});
        let key = confab_domain::keys::room_peers(&self.settings.redis_prefix, room);
        let mut redis = self.redis().await;
        let _: () = redis::AsyncCommands::hset(&mut redis, key, peer_id, entry.to_string()).await.unwrap();
    }
}

#[actix_web::test]
async fn a_moderator_lets_a_viewer_speak_and_takes_it_back_and_every_gateway_is_told() {
    let app = spawn_app().await;
    let lecture = lecture(&app).await;
    let room = &lecture.room;
    let mut control = app.control_listener().await;

    let granted = app.grant(room, &lecture.owner, "viewer").await;
    assert_eq!(granted.status, StatusCode::NO_CONTENT, "{}", granted.body);
    assert_eq!(control.next().await, json!({"grant_speaker": {"room_id": room, "peer_id": "viewer"}}));
    assert_eq!(app.speakers(room).await, ["viewer"]);

    let revoked = app.revoke(room, &lecture.owner, "viewer").await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    assert_eq!(control.next().await, json!({"revoke_speaker": {"room_id": room, "peer_id": "viewer"}}));
    assert!(app.speakers(room).await.is_empty());
}

#[actix_web::test]
async fn granting_twice_and_revoking_what_was_not_granted_are_fine() {
    let app = spawn_app().await;
    let lecture = lecture(&app).await;
    let room = &lecture.room;
    for _ in 0..2 {
        assert_eq!(app.grant(room, &lecture.owner, "viewer").await.status, StatusCode::NO_CONTENT);
    }
    assert_eq!(app.speakers(room).await, ["viewer"], "one grant");
    for _ in 0..2 {
        assert_eq!(app.revoke(room, &lecture.owner, "viewer").await.status, StatusCode::NO_CONTENT);
    }
    assert!(app.speakers(room).await.is_empty());
}

#[actix_web::test]
async fn grants_are_per_peer_so_the_media_server_reads_exactly_who_may_speak() {
    let app = spawn_app().await;
    let lecture = lecture(&app).await;
    let room = &lecture.room;
    app.put_presence(uuid(room), "second-tab", uuid(&lecture.member_id)).await;
    app.grant(room, &lecture.owner, "viewer").await;
    app.grant(room, &lecture.owner, "second-tab").await;
    app.revoke(room, &lecture.owner, "viewer").await;
    assert_eq!(app.speakers(room).await, ["second-tab"], "the other connection of the same user keeps its grant");
}

#[actix_web::test]
async fn both_calls_are_in_the_audit_log_with_the_peer_and_its_user() {
    let app = spawn_app().await;
    let (_, admin) = app.admin_token().await;
    let lecture = lecture(&app).await;
    app.grant(&lecture.room, &lecture.owner, "viewer").await;
    app.revoke(&lecture.room, &lecture.owner, "viewer").await;
    let log = app.get("/v1/admin/audit-log", Some(&admin)).await.body;
    let entries: Vec<&Value> = log["entries"].as_array().unwrap().iter().take(2).collect();
    for (entry, action) in entries.iter().zip(["speaker.revoke", "speaker.grant"]) {
        assert_eq!(entry["action"], action, "{entry}");
        assert_eq!(entry["actor_id"], lecture.owner_id.as_str());
        assert_eq!(entry["room_id"], lecture.room.as_str());
        assert_eq!(entry["target_user_id"], lecture.member_id.as_str());
        assert_eq!(entry["details"], json!({"peer_id": "viewer"}));
    }
}

#[actix_web::test]
async fn a_meeting_has_no_one_to_let_speak() {
    let app = spawn_app().await;
    let lecture = lecture(&app).await;
    let room = &lecture.room;
    let meeting = json!({"mode": "meeting"});
    let changed = app.send("PATCH", &format!("/v1/rooms/{room}"), Some(&lecture.owner), Some(meeting)).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    for reply in [app.grant(room, &lecture.owner, "viewer").await, app.revoke(room, &lecture.owner, "viewer").await] {
        assert_eq!(reply.status, StatusCode::CONFLICT);
        assert_eq!(reply.code(), "not_a_lecture");
        assert!(reply.body["error"]["message"].as_str().unwrap().contains("meeting"), "{}", reply.body);
    }
    assert!(app.speakers(room).await.is_empty());
}

#[actix_web::test]
async fn only_a_person_in_the_call_is_let_speak() {
    let app = spawn_app().await;
    let lecture = lecture(&app).await;
    let room = &lecture.room;
    app.put_seat(room, "rec-1", "recorder").await;
    app.put_seat(room, "sfu-1", "sfu").await;
    app.put_seat(room, "cam-1", "camera").await;
    // Not in the call, or a hidden seat participants never see: no such peer.
    for peer_id in ["gone", "rec-1", "sfu-1"] {
        for reply in [app.grant(room, &lecture.owner, peer_id).await, app.revoke(room, &lecture.owner, peer_id).await] {
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{peer_id}: {}", reply.body);
            assert_eq!(reply.code(), "unknown_peer");
        }
    }
    let camera = app.grant(room, &lecture.owner, "cam-1").await;
    assert_eq!((camera.status, camera.code()), (StatusCode::CONFLICT, "not_a_person"), "{}", camera.body);
    assert!(app.speakers(room).await.is_empty());
}

#[actix_web::test]
async fn a_grant_is_stored_only_while_its_peer_is_in_presence() {
    use confab_api::control::ControlBus;
    use confab_api::domain::{PeerId, RoomId};
    let app = spawn_app().await;
    let lecture = lecture(&app).await;
    let room = &lecture.room;
    // The route read presence, then the peer left before its grant was stored: the store step
    // checks presence again, in the same Lua step, so no grant is left for a peer that is gone.
    let client = redis::Client::open(app.settings.redis_url.as_str()).unwrap();
    let bus = ControlBus::new(client.get_connection_manager().await.unwrap(), &app.settings.redis_prefix);
    let (room_id, viewer) = (RoomId::parse(room).unwrap(), PeerId::parse("viewer").unwrap());
    let peers = confab_domain::keys::room_peers(&app.settings.redis_prefix, room);
    let _: () = redis::AsyncCommands::hdel(&mut app.redis().await, &peers, "viewer").await.unwrap();
    assert!(!bus.grant_speaker(room_id, &viewer).await.unwrap());
    assert!(app.speakers(room).await.is_empty());
    app.put_presence(uuid(room), "viewer", uuid(&lecture.member_id)).await;
    assert!(bus.grant_speaker(room_id, &viewer).await.unwrap());
    assert_eq!(app.speakers(room).await, ["viewer"]);
}

#[actix_web::test]
async fn viewers_cannot_let_themselves_or_others_speak_and_strangers_see_no_room() {
    let app = spawn_app().await;
    let lecture = lecture(&app).await;
    let room = &lecture.room;
    let member = app.grant(room, &lecture.member, "viewer").await;
    assert_eq!((member.status, member.code()), (StatusCode::FORBIDDEN, "forbidden"));
    let member = app.revoke(room, &lecture.member, "viewer").await;
    assert_eq!(member.status, StatusCode::FORBIDDEN);
    let (_, stranger) = app.logged_in_user().await;
    let stranger = stranger["access_token"].as_str().unwrap();
    assert_eq!(app.grant(room, stranger, "viewer").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.revoke(room, stranger, "viewer").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.post(&format!("/v1/rooms/{room}/speakers"), None, json!({"peer_id": "viewer"})).await.status, 401);
    assert!(app.speakers(room).await.is_empty());
}

#[actix_web::test]
async fn malformed_oversized_and_hostile_bodies_are_a_400_and_grant_nothing() {
    let app = spawn_app().await;
    let lecture = lecture(&app).await;
    let path = format!("/v1/rooms/{}/speakers", lecture.room);
    let token = Some(lecture.owner.as_str());
    let long = "v".repeat(65);
    let invalid_peer_ids =
        [json!(""), json!(" viewer"), json!("viewer\n"), json!("../viewer"), json!("p:1"), json!("é"), json!(long)];
    for peer_id in invalid_peer_ids {
        let reply = app.post(&path, token, json!({"peer_id": peer_id})).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, "invalid_peer_id"), "{peer_id}");
    }
    for body in ["{}", "[]", "null", r#"{"peer_id": 7}"#, r#"{"peer_id": null}"#, r#"{"peer_id": ["viewer"]}"#] {
        let reply = app.send_raw("POST", &path, token, body).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, "invalid_field"), "{body}");
    }
    for body in [&b"{"[..], b"not json", b"", b"\xff\xfe"] {
        let reply = app.send_raw("POST", &path, token, body.to_vec()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body:?}");
    }
    let nul = app.send_raw("POST", &path, token, r#"{"peer_id": "vie\u0000wer"}"#).await;
    assert_eq!((nul.status, nul.code()), (StatusCode::BAD_REQUEST, "invalid_text"));
    let huge = format!(r#"{{"peer_id": "viewer", "padding": "{}"}}"#, "a".repeat(70 * 1024));
    let reply = app.send_raw("POST", &path, token, huge).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    assert!(app.speakers(&lecture.room).await.is_empty());
}

#[actix_web::test]
async fn ids_in_the_path_that_name_nothing_are_a_404() {
    let app = spawn_app().await;
    let lecture = lecture(&app).await;
    let token = Some(lecture.owner.as_str());
    let room = &lecture.room;
    for peer_id in ["%20viewer", "a%2Fb", "..%2F..%2Fetc", &"v".repeat(65), "%C3%A9", "%27%20or%201%3D1"] {
        let reply = app.send("DELETE", &format!("/v1/rooms/{room}/speakers/{peer_id}"), token, None).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "unknown_peer"), "{peer_id}: {}", reply.body);
        assert!(!reply.body["error"]["message"].as_str().unwrap().contains(".."), "the bad id is not echoed");
    }
    for room in ["not-a-room", &Uuid::new_v4().to_string()] {
        let grant = app.post(&format!("/v1/rooms/{room}/speakers"), token, json!({"peer_id": "viewer"})).await;
        assert_eq!((grant.status, grant.code()), (StatusCode::NOT_FOUND, "not_found"), "{room}");
        let revoke = app.send("DELETE", &format!("/v1/rooms/{room}/speakers/viewer"), token, None).await;
        assert_eq!((revoke.status, revoke.code()), (StatusCode::NOT_FOUND, "not_found"), "{room}");
    }
}

#[actix_web::test]
async fn the_routes_are_in_the_api_description_with_every_answer() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json", None).await.body;
    let grant = &doc["paths"]["/v1/rooms/{id}/speakers"]["post"];
    let revoke = &doc["paths"]["/v1/rooms/{id}/speakers/{peer_id}"]["delete"];
    for (operation, statuses) in [
        (grant, ["204", "400", "401", "403", "404", "409", "413", "503"]),
        (revoke, ["204", "400", "401", "403", "404", "409", "413", "503"]),
    ] {
        for status in statuses {
            assert!(operation["responses"][status].is_object(), "{status} missing: {operation}");
        }
    }
    let schema = &doc["components"]["schemas"]["SpeakerRequest"]["properties"]["peer_id"];
    assert_eq!((schema["minLength"].as_u64(), schema["maxLength"].as_u64()), (Some(1), Some(64)), "{schema}");
    let path_param = revoke["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "peer_id").unwrap();
    assert_eq!(path_param["schema"]["pattern"], schema["pattern"], "{path_param}");
}
