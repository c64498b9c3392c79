//! Two media server instances in one deployment ([`Deployment`]: the API, a gateway and the SFUs
//! on real Postgres and Redis): both register, and the admin API lists them; two `sfu` rooms
//! land on different instances; once an admin drains one, a new room goes to the other; and an
//! instance that stops hands its room to the other, whose seat the room's participant is told
//! to use without anyone arriving; and the room of an instance that dies goes to the other,
//! without its participant being sent back to mesh meanwhile.

use std::time::Duration;

use awc::http::StatusCode;
use confab_stack::Deployment;
use confab_testkit::{Kind, Signaling, eventually};
use serde_json::{Value, json};

/// A participant alone in an `sfu` room of their own, once the SFU has taken its seat there.
struct Room {
    id: String,
    signaling: Signaling,
    sfu_peer: String,
}

async fn room_through_an_sfu(deployment: &Deployment, name: &str) -> Room {
    let token = deployment.signed_up_user().await;
    let room = deployment.post("/v1/rooms", Some(&token), json!({"name": name, "media": "sfu"}), StatusCode::CREATED);
    let id = room.await["id"].as_str().unwrap().to_owned();
    let join = deployment.post(&format!("/v1/rooms/{id}/join"), Some(&token), json!({}), StatusCode::OK).await;
    let (mut signaling, _) =
        Signaling::join(join["gateway_url"].as_str().unwrap(), join["ticket"].as_str().unwrap()).await;
    let sfu_peer = next_sfu(&mut signaling, None).await;
    Room { id, signaling, sfu_peer }
}

/// The next SFU seat the participant is told to use other than `not`; `None` for a move back to
/// mesh.
async fn next_media_change(signaling: &mut Signaling, not: &str) -> Option<String> {
    signaling
        .next_of_within(Duration::from_secs(15), |kind| match kind {
            Kind::MediaChanged(changed) => match changed.sfu {
                Some(sfu) if sfu.peer_id == not => None,
                sfu => Some(sfu.map(|sfu| sfu.peer_id)),
            },
            _ => None,
        })
        .await
        .expect("the room is told where its media goes now")
}

/// The next SFU seat the participant is told to use other than `not`.
async fn next_sfu(signaling: &mut Signaling, not: Option<&str>) -> String {
    signaling
        .next_of_within(Duration::from_secs(15), |kind| match kind {
            Kind::MediaChanged(changed) => changed.sfu.map(|sfu| sfu.peer_id).filter(|peer| Some(peer.as_str()) != not),
            _ => None,
        })
        .await
        .expect("an SFU takes its seat in the room")
}

/// `GET /v1/admin/sfus` once it lists exactly `instances`.
async fn sfus_listed(deployment: &Deployment, admin: &str, instances: &[&str]) -> Value {
    eventually("the listed SFU instances", Duration::from_secs(10), || async {
        let listed = deployment.get("/v1/admin/sfus", admin).await;
        let ids: Vec<&str> = listed["sfus"].as_array()?.iter().filter_map(|sfu| sfu["id"].as_str()).collect();
        (ids == instances).then_some(listed.clone())
    })
    .await
}

/// The instance the admin API shows `room` placed on.
async fn instance_of(deployment: &Deployment, admin: &str, room: &str) -> String {
    let listed = deployment.get("/v1/admin/sfus", admin).await;
    let sfus = listed["sfus"].as_array().unwrap();
    let holding = sfus.iter().filter(|sfu| sfu["rooms"].as_array().unwrap().iter().any(|r| r == room));
    let holding: Vec<&str> = holding.filter_map(|sfu| sfu["id"].as_str()).collect();
    assert_eq!(holding.len(), 1, "one instance holds {room}: {listed}");
    holding[0].to_owned()
}

#[actix_web::test]
async fn rooms_spread_over_two_media_servers_a_drained_one_gets_none_and_a_stopping_one_hands_its_room_over() {
    let mut deployment = Deployment::start().await;
    deployment.start_sfu("sfu-second").await;
    let admin = deployment.admin().await;
    let listed = sfus_listed(&deployment, &admin, &["sfu-second", "sfu-stack"]).await;
    for sfu in listed["sfus"].as_array().unwrap() {
        assert_eq!((sfu["capacity"].clone(), sfu["draining"].clone()), (json!(250), json!(false)), "{sfu}");
        assert_eq!(sfu["media_addresses"].as_array().unwrap().len(), 2, "two media threads: {sfu}");
    }

    // Two rooms: one on each instance, the second once the first one's load is in the registry.
    let mut first = room_through_an_sfu(&deployment, "First").await;
    let first_on = instance_of(&deployment, &admin, &first.id).await;
    eventually("the first room's participant in its instance's load", Duration::from_secs(5), || async {
        let listed = deployment.get("/v1/admin/sfus", &admin).await;
        let sfus = listed["sfus"].as_array()?.clone();
        sfus.iter().any(|sfu| sfu["id"] == first_on.as_str() && sfu["load"]["subscribers"] == 1).then_some(())
    })
    .await;
    let second = room_through_an_sfu(&deployment, "Second").await;
    let second_on = instance_of(&deployment, &admin, &second.id).await;
    assert_ne!(first_on, second_on, "the second room goes to the instance without one");

    // The instance serving the first room is drained: a third room goes to the other.
    let drain = format!("/v1/admin/sfus/{first_on}/drain");
    deployment.post(&drain, Some(&admin), Value::Null, StatusCode::NO_CONTENT).await;
    let third = room_through_an_sfu(&deployment, "Third").await;
    assert_eq!(instance_of(&deployment, &admin, &third.id).await, second_on);
    assert_eq!(instance_of(&deployment, &admin, &first.id).await, first_on, "a drained instance keeps its rooms");

    // It stops: its room moves to the other instance, and its participant is told to use that
    // one's seat, with nobody arriving.
    deployment.stop_sfu(&first_on);
    let successor = next_sfu(&mut first.signaling, Some(&first.sfu_peer)).await;
    assert_ne!(successor, first.sfu_peer);
    sfus_listed(&deployment, &admin, &[second_on.as_str()]).await;
    assert_eq!(instance_of(&deployment, &admin, &first.id).await, second_on);
}

#[actix_web::test]
async fn the_room_of_a_media_server_that_dies_goes_to_the_other_and_its_participant_is_told_at_once() {
    let mut deployment = Deployment::start().await;
    deployment.start_sfu("sfu-second").await;
    let admin = deployment.admin().await;
    sfus_listed(&deployment, &admin, &["sfu-second", "sfu-stack"]).await;
    let mut room = room_through_an_sfu(&deployment, "Doomed").await;
    let serving = instance_of(&deployment, &admin, &room.id).await;
    let other = if serving == "sfu-stack" { "sfu-second" } else { "sfu-stack" };

    // kill -9: the seat's connection to the gateway closes without a goodbye, nothing is handed
    // over. The gateway that saw it go places the room on the other instance, and the
    // participant hears of the new seat next: not of a move back to mesh first.
    deployment.kill_sfu(&serving);
    let died = std::time::Instant::now();
    let next = next_media_change(&mut room.signaling, &room.sfu_peer).await;
    let successor = next.expect("the room goes to the other SFU, not back to mesh");
    assert_ne!(successor, room.sfu_peer);
    println!("the successor's seat announced {} ms after the death", died.elapsed().as_millis());
    assert_eq!(instance_of(&deployment, &admin, &room.id).await, other);
    // The dead instance leaves the registry at once, not when its entry would have expired.
    sfus_listed(&deployment, &admin, &[other]).await;
}
