//! Join tickets, verified the way the gateway will verify them.

use std::time::Duration;

use awc::http::StatusCode;
use confab_domain::{MediaRouting, RoomMode};
use confab_tickets::{JwksCache, TicketError, TicketVerifier};
use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[actix_web::test]
async fn members_get_a_single_use_60_second_ticket_the_gateway_library_accepts() {
    let app = spawn_app().await;
    let (_, owner) = app.logged_in_user().await;
    let token = owner["access_token"].as_str().unwrap();
    let room = app.create_room(token, "Call").await;
    let reply = app.post(&format!("/v1/rooms/{room}/join"), Some(token), Value::Null).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["expires_in"], 60);
    let ticket = reply.body["ticket"].as_str().unwrap();

    let jwks = JwksCache::new(&app.url("/.well-known/jwks.json"), "confab", Duration::from_secs(10));
    let redis = confab_common::redis::connect_lazy(&app.settings.redis_url).unwrap();
    let verifier = TicketVerifier::new(jwks, redis, &app.settings.redis_prefix);
    let claims = verifier.verify(ticket).await.unwrap();
    assert_eq!(claims.room_id, room);
    assert_eq!(claims.sub, owner["user"]["id"].as_str().unwrap());
    assert_eq!(claims.room_role, "owner");
    assert_eq!(claims.display_name, "Ann");
    assert_eq!(claims.max_participants, 8);
    assert_eq!(claims.exp - claims.iat, 60);
    assert!(matches!(verifier.verify(ticket).await, Err(TicketError::Reused)));

    let access = verifier.verify(token).await;
    assert!(matches!(access, Err(TicketError::Rejected(_))), "an access token is no ticket");
    assert_eq!(app.get("/v1/me", Some(ticket)).await.status, StatusCode::UNAUTHORIZED, "a ticket is no access token");
}

#[actix_web::test]
async fn a_ticket_carries_the_rooms_media_settings_as_stored_when_it_is_issued() {
    let app = spawn_app().await;
    let token = app.logged_in_user().await.1["access_token"].as_str().unwrap().to_owned();
    let room = app.create_room(&token, "Call").await;
    let jwks = JwksCache::new(&app.url("/.well-known/jwks.json"), "confab", Duration::from_secs(10));
    let redis = confab_common::redis::connect_lazy(&app.settings.redis_url).unwrap();
    let verifier = TicketVerifier::new(jwks, redis, &app.settings.redis_prefix);
    let claims_now = || async {
        let reply = app.post(&format!("/v1/rooms/{room}/join"), Some(&token), Value::Null).await;
        verifier.verify(reply.body["ticket"].as_str().unwrap()).await.unwrap()
    };

    let defaults = claims_now().await;
    assert_eq!((defaults.media, defaults.mode), (Some(MediaRouting::Auto), Some(RoomMode::Meeting)));

    let change = json!({"media": "sfu", "mode": "lecture"});
    let changed = app.send("PATCH", &format!("/v1/rooms/{room}"), Some(&token), Some(change)).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let lecture = claims_now().await;
    assert_eq!((lecture.media, lecture.mode), (Some(MediaRouting::Sfu), Some(RoomMode::Lecture)));
}

#[actix_web::test]
async fn gateways_are_handed_out_in_turn() {
    let app = spawn_app().await;
    let token = app.logged_in_user().await.1["access_token"].as_str().unwrap().to_owned();
    let room = app.create_room(&token, "Call").await;
    let mut urls = Vec::new();
    for _ in 0..4 {
        let reply = app.post(&format!("/v1/rooms/{room}/join"), Some(&token), Value::Null).await;
        urls.push(reply.body["gateway_url"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        urls,
        ["ws://gw1.test/v1/signal", "ws://gw2.test/v1/signal", "ws://gw1.test/v1/signal", "ws://gw2.test/v1/signal"]
    );
}

#[actix_web::test]
async fn participants_come_from_gateway_presence() {
    let app = spawn_app().await;
    let (_, owner) = app.logged_in_user().await;
    let token = owner["access_token"].as_str().unwrap();
    let room = app.create_room(token, "Call").await;
    let empty = app.get(&format!("/v1/rooms/{room}/participants"), Some(token)).await;
    assert_eq!(empty.body, json!({"participants": []}));
    let user = uuid::Uuid::parse_str(owner["user"]["id"].as_str().unwrap()).unwrap();
    app.put_presence(uuid::Uuid::parse_str(&room).unwrap(), "p-1", user).await;
    let listed = app.get(&format!("/v1/rooms/{room}/participants"), Some(token)).await;
    assert_eq!(listed.body["participants"][0]["peer_id"], "p-1");
    assert_eq!(listed.body["participants"][0]["instance_id"], "gw-test");
}
