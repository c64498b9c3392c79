//! Placing rooms on the SFUs against a real Redis: a room goes once to the least-loaded live
//! instance that is not draining, onto that instance's own stream, with its settings; it is held
//! while served, placed again only once nobody holds it, handed to another instance by one that
//! stops, and failed over to another when its instance dies. The registry lists the live instances with the rooms placed on each.

use std::time::Duration;

use confab_common::sfu_jobs::{self, Placement, SfuJob};
use confab_common::sfu_registry::{self, Load, Registration};
use confab_domain::{MediaRouting, RoomMode, keys};
use redis::aio::ConnectionManager;

async fn redis() -> ConnectionManager {
    let url = std::env::var("REDIS_URL").expect("REDIS_URL must be set: run the tests with deploy/local/test");
    ConnectionManager::new(redis::Client::open(url).unwrap()).await.unwrap()
}

fn prefix() -> String {
    format!("confab-test:{}", uuid::Uuid::new_v4().simple())
}

/// Registers `instance` as alive with `subscribers` of `capacity`.
async fn register(redis: &mut ConnectionManager, prefix: &str, instance: &str, subscribers: u64, capacity: u64) {
    let entry = Registration {
        instance_id: instance.into(),
        media_addresses: vec!["127.0.0.1:7882".into()],
        capacity,
        load: Load { subscribers, ..Load::default() },
        draining: false,
    };
    sfu_registry::heartbeat(redis, prefix, &entry).await.unwrap();
}

async fn place(redis: &mut ConnectionManager, prefix: &str, room: &str) -> Placement {
    sfu_jobs::place(redis, prefix, room, MediaRouting::Sfu, RoomMode::Meeting).await.unwrap()
}

fn placed_on(instance: &str) -> Placement {
    Placement::Placed { instance_id: instance.into() }
}

async fn holder(redis: &mut ConnectionManager, prefix: &str, room: &str) -> Option<String> {
    redis::cmd("GET").arg(keys::sfu_room(prefix, room)).query_async(redis).await.unwrap()
}

async fn jobs_of(redis: &mut ConnectionManager, prefix: &str, instance: &str) -> u64 {
    redis::cmd("XLEN").arg(keys::sfu_instance_jobs(prefix, instance)).query_async(redis).await.unwrap()
}

#[actix_web::test]
async fn a_room_is_placed_once_and_read_with_its_settings_by_its_instance_only() {
    let (mut redis, prefix) = (redis().await, prefix());
    register(&mut redis, &prefix, "sfu-a", 0, 100).await;
    sfu_jobs::ensure_group(&mut redis, &prefix, "sfu-a").await.unwrap();
    sfu_jobs::ensure_group(&mut redis, &prefix, "sfu-a").await.expect("an existing group is fine");
    let queue = |redis: &mut ConnectionManager| {
        let (mut redis, prefix) = (redis.clone(), prefix.clone());
        async move { sfu_jobs::place(&mut redis, &prefix, "r1", MediaRouting::Sfu, RoomMode::Lecture).await.unwrap() }
    };
    assert_eq!(queue(&mut redis).await, placed_on("sfu-a"));
    assert_eq!(queue(&mut redis).await, Placement::Held);
    assert_eq!(holder(&mut redis, &prefix, "r1").await.as_deref(), Some("sfu-a"), "the key names the instance");

    register(&mut redis, &prefix, "sfu-b", 0, 100).await;
    sfu_jobs::ensure_group(&mut redis, &prefix, "sfu-b").await.unwrap();
    let other = sfu_jobs::next(&mut redis, &prefix, "sfu-b", Duration::from_millis(50)).await.unwrap();
    assert_eq!(other, None, "another instance's stream holds nothing");
    let job = sfu_jobs::next(&mut redis, &prefix, "sfu-a", Duration::from_millis(100)).await.unwrap().unwrap();
    let SfuJob { room_id, media, mode, .. } = job.clone();
    assert_eq!((room_id.as_str(), media, mode), ("r1", MediaRouting::Sfu, RoomMode::Lecture));
    sfu_jobs::ack(&mut redis, &prefix, "sfu-a", &job.entry).await.unwrap();
    assert_eq!(jobs_of(&mut redis, &prefix, "sfu-a").await, 0);
}

#[actix_web::test]
async fn a_room_goes_to_the_instance_with_the_fewest_subscribers_for_its_capacity() {
    let (mut redis, prefix) = (redis().await, prefix());
    register(&mut redis, &prefix, "sfu-a", 50, 100).await;
    register(&mut redis, &prefix, "sfu-b", 2, 10).await;
    assert_eq!(place(&mut redis, &prefix, "r1").await, placed_on("sfu-b"), "2 of 10 before 50 of 100");
    register(&mut redis, &prefix, "sfu-b", 8, 10).await;
    assert_eq!(place(&mut redis, &prefix, "r2").await, placed_on("sfu-a"), "50 of 100 before 8 of 10");
    register(&mut redis, &prefix, "sfu-a", 300, 100).await;
    register(&mut redis, &prefix, "sfu-b", 12, 10).await;
    assert_eq!(place(&mut redis, &prefix, "r3").await, placed_on("sfu-b"), "both full: still the least loaded");
    assert_eq!((jobs_of(&mut redis, &prefix, "sfu-a").await, jobs_of(&mut redis, &prefix, "sfu-b").await), (1, 2));
}

#[actix_web::test]
async fn rooms_placed_within_one_heartbeat_spread_over_equal_instances() {
    let (mut redis, prefix) = (redis().await, prefix());
    register(&mut redis, &prefix, "sfu-a", 0, 100).await;
    register(&mut redis, &prefix, "sfu-b", 0, 100).await;
    assert_eq!(place(&mut redis, &prefix, "r1").await, placed_on("sfu-a"), "a tie goes to the smaller id");
    assert_eq!(place(&mut redis, &prefix, "r2").await, placed_on("sfu-b"), "sfu-a counts r1 already");
}

#[actix_web::test]
async fn a_draining_instance_gets_no_new_room_and_keeps_the_mark_through_its_heartbeats() {
    let (mut redis, prefix) = (redis().await, prefix());
    register(&mut redis, &prefix, "sfu-a", 0, 100).await;
    register(&mut redis, &prefix, "sfu-b", 90, 100).await;
    assert!(sfu_registry::mark_draining(&mut redis, &prefix, "sfu-a").await.unwrap());
    assert!(!sfu_registry::mark_draining(&mut redis, &prefix, "sfu-gone").await.unwrap(), "no such instance");
    register(&mut redis, &prefix, "sfu-a", 0, 100).await;
    assert_eq!(place(&mut redis, &prefix, "r1").await, placed_on("sfu-b"));
    let listed = sfu_registry::instances(&mut redis, &prefix).await.unwrap();
    assert_eq!(
        listed.iter().map(|i| (i.id.as_str(), i.draining)).collect::<Vec<_>>(),
        [("sfu-a", true), ("sfu-b", false)]
    );
    // A new process under the same id starts undrained.
    sfu_registry::clear_draining(&mut redis, &prefix, "sfu-a").await.unwrap();
    assert_eq!(place(&mut redis, &prefix, "r0").await, placed_on("sfu-a"));
    sfu_registry::mark_draining(&mut redis, &prefix, "sfu-a").await.unwrap();
    // An instance that says it is stopping is draining too; with nobody else, the room waits.
    let stopping = Registration {
        instance_id: "sfu-b".into(),
        media_addresses: Vec::new(),
        capacity: 100,
        load: Load::default(),
        draining: true,
    };
    sfu_registry::heartbeat(&mut redis, &prefix, &stopping).await.unwrap();
    assert_eq!(place(&mut redis, &prefix, "r2").await, Placement::NoInstance);
    assert_eq!(holder(&mut redis, &prefix, "r2").await, None, "not placed: the next arrival tries again");
}

#[actix_web::test]
async fn an_instance_whose_heartbeat_expired_gets_no_room_and_leaves_the_registry() {
    let (mut redis, prefix) = (redis().await, prefix());
    register(&mut redis, &prefix, "sfu-a", 0, 100).await;
    register(&mut redis, &prefix, "sfu-b", 90, 100).await;
    let _: () =
        redis::cmd("PEXPIRE").arg(keys::sfu_instance(&prefix, "sfu-a")).arg(1).query_async(&mut redis).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(place(&mut redis, &prefix, "r1").await, placed_on("sfu-b"));
    assert_eq!(sfu_registry::registered_ids(&mut redis, &prefix).await.unwrap(), ["sfu-b"], "dropped by the step");
    sfu_registry::deregister(&mut redis, &prefix, "sfu-b").await.unwrap();
    assert_eq!(place(&mut redis, &prefix, "r2").await, Placement::NoInstance);
    assert!(sfu_registry::instances(&mut redis, &prefix).await.unwrap().is_empty());
}

#[actix_web::test]
async fn gateways_racing_to_place_one_room_place_it_once() {
    let prefix = prefix();
    let mut redis = redis().await;
    register(&mut redis, &prefix, "sfu-a", 0, 100).await;
    register(&mut redis, &prefix, "sfu-b", 0, 100).await;
    // Each gateway on a connection of its own.
    let mut racers = Vec::new();
    for _ in 0..8 {
        let (mut redis, prefix) = (self::redis().await, prefix.clone());
        racers.push(tokio::spawn(async move { place(&mut redis, &prefix, "r1").await }));
    }
    let mut placed = Vec::new();
    for racer in racers {
        placed.push(racer.await.unwrap());
    }
    assert_eq!(placed.iter().filter(|p| matches!(p, Placement::Placed { .. })).count(), 1, "{placed:?}");
    assert_eq!(placed.iter().filter(|p| **p == Placement::Held).count(), 7);
    let jobs = jobs_of(&mut redis, &prefix, "sfu-a").await + jobs_of(&mut redis, &prefix, "sfu-b").await;
    assert_eq!(jobs, 1, "one job");
}

#[actix_web::test]
async fn a_served_room_is_not_placed_until_its_sfu_lets_it_go() {
    let (mut redis, prefix) = (redis().await, prefix());
    register(&mut redis, &prefix, "sfu-a", 0, 100).await;
    let ttl = Duration::from_secs(10);
    sfu_jobs::serve_room(&mut redis, &prefix, "r1", "sfu-a", ttl).await.unwrap();
    assert_eq!(place(&mut redis, &prefix, "r1").await, Placement::Held);
    assert!(!sfu_jobs::release_room(&mut redis, &prefix, "r1", "sfu-b").await.unwrap(), "not another SFU's to free");
    assert!(sfu_jobs::release_room(&mut redis, &prefix, "r1", "sfu-a").await.unwrap());
    assert_eq!(place(&mut redis, &prefix, "r1").await, placed_on("sfu-a"));
}

#[actix_web::test]
async fn a_stopping_instance_hands_its_room_to_another_in_one_step() {
    let (mut redis, prefix) = (redis().await, prefix());
    register(&mut redis, &prefix, "sfu-a", 0, 100).await;
    register(&mut redis, &prefix, "sfu-b", 40, 100).await;
    sfu_jobs::serve_room(&mut redis, &prefix, "r1", "sfu-a", Duration::from_secs(10)).await.unwrap();
    let job = SfuJob { entry: String::new(), room_id: "r1".into(), media: MediaRouting::Auto, mode: RoomMode::Lecture };
    assert_eq!(sfu_jobs::hand_over(&mut redis, &prefix, &job, "sfu-b").await.unwrap(), Placement::Held, "not B's");
    assert_eq!(sfu_jobs::hand_over(&mut redis, &prefix, &job, "sfu-a").await.unwrap(), placed_on("sfu-b"));
    assert_eq!(holder(&mut redis, &prefix, "r1").await.as_deref(), Some("sfu-b"));
    sfu_jobs::ensure_group(&mut redis, &prefix, "sfu-b").await.unwrap();
    let taken = sfu_jobs::next(&mut redis, &prefix, "sfu-b", Duration::from_millis(100)).await.unwrap().unwrap();
    assert_eq!((taken.room_id.as_str(), taken.media, taken.mode), ("r1", MediaRouting::Auto, RoomMode::Lecture));

    // The last instance stopping frees the room: its next arrival places it when one is back.
    sfu_registry::deregister(&mut redis, &prefix, "sfu-a").await.unwrap();
    assert_eq!(sfu_jobs::hand_over(&mut redis, &prefix, &job, "sfu-b").await.unwrap(), Placement::NoInstance);
    assert_eq!(holder(&mut redis, &prefix, "r1").await, None);
}

#[actix_web::test]
async fn a_room_whose_instance_died_goes_to_another_which_the_dead_one_cannot_take_back() {
    let (mut redis, prefix) = (redis().await, prefix());
    // A is the lighter, and its entry lives on for seconds after its death.
    register(&mut redis, &prefix, "sfu-a", 0, 100).await;
    register(&mut redis, &prefix, "sfu-b", 40, 100).await;
    let ttl = Duration::from_secs(10);
    assert!(sfu_jobs::serve_room(&mut redis, &prefix, "r1", "sfu-a", ttl).await.unwrap());
    let failer = (redis.clone(), prefix.clone());
    let fail_over = |dead: &'static str| {
        let (mut redis, prefix) = failer.clone();
        async move {
            sfu_jobs::fail_over(&mut redis, &prefix, "r1", MediaRouting::Sfu, RoomMode::Lecture, dead).await.unwrap()
        }
    };
    assert_eq!(fail_over("sfu-b").await, Placement::Held, "the room is not B's");
    // That took B out of the registry until its next heartbeat, which comes.
    register(&mut redis, &prefix, "sfu-b", 40, 100).await;
    assert_eq!(fail_over("sfu-a").await, placed_on("sfu-b"));
    assert_eq!(holder(&mut redis, &prefix, "r1").await.as_deref(), Some("sfu-b"));
    assert_eq!(place(&mut redis, &prefix, "r2").await, placed_on("sfu-b"), "the dead A gets no new room");
    sfu_jobs::ensure_group(&mut redis, &prefix, "sfu-b").await.unwrap();
    let taken = sfu_jobs::next(&mut redis, &prefix, "sfu-b", Duration::from_millis(100)).await.unwrap().unwrap();
    assert_eq!((taken.room_id.as_str(), taken.media, taken.mode), ("r1", MediaRouting::Sfu, RoomMode::Lecture));

    // A was alive after all (only its link dropped): its heartbeat brings it back, but its seat's
    // renewal finds the room B's, and it leaves; B's renewal holds.
    register(&mut redis, &prefix, "sfu-a", 0, 100).await;
    assert!(!sfu_jobs::serve_room(&mut redis, &prefix, "r1", "sfu-a", ttl).await.unwrap());
    assert!(sfu_jobs::serve_room(&mut redis, &prefix, "r1", "sfu-b", ttl).await.unwrap());
    assert_eq!(holder(&mut redis, &prefix, "r1").await.as_deref(), Some("sfu-b"));

    // With no other live instance the room is freed: its next arrival places it.
    sfu_registry::deregister(&mut redis, &prefix, "sfu-a").await.unwrap();
    assert_eq!(fail_over("sfu-b").await, Placement::NoInstance);
    assert_eq!(holder(&mut redis, &prefix, "r1").await, None);
    // A room nobody holds any more (its mark expired) is placed afresh.
    register(&mut redis, &prefix, "sfu-c", 0, 100).await;
    assert_eq!(fail_over("sfu-b").await, placed_on("sfu-c"));
}

#[actix_web::test]
async fn a_stopping_instance_hands_on_the_rooms_placed_on_it_that_it_has_not_read() {
    let (mut redis, prefix) = (redis().await, prefix());
    register(&mut redis, &prefix, "sfu-a", 0, 100).await;
    register(&mut redis, &prefix, "sfu-b", 50, 100).await;
    sfu_jobs::ensure_group(&mut redis, &prefix, "sfu-a").await.unwrap();
    for room in ["r1", "r2"] {
        assert_eq!(place(&mut redis, &prefix, room).await, placed_on("sfu-a"));
    }
    sfu_registry::mark_draining(&mut redis, &prefix, "sfu-a").await.unwrap();
    let handed_over = sfu_jobs::hand_over_unread(&mut redis, &prefix, "sfu-a").await.unwrap();
    assert_eq!(handed_over, [("r1".to_owned(), placed_on("sfu-b")), ("r2".to_owned(), placed_on("sfu-b"))]);
    assert_eq!((jobs_of(&mut redis, &prefix, "sfu-a").await, jobs_of(&mut redis, &prefix, "sfu-b").await), (0, 2));
    assert_eq!(holder(&mut redis, &prefix, "r2").await.as_deref(), Some("sfu-b"));
    assert!(sfu_jobs::hand_over_unread(&mut redis, &prefix, "sfu-a").await.unwrap().is_empty(), "nothing left");
}

#[actix_web::test]
async fn the_registry_lists_live_instances_with_their_load_and_rooms() {
    let (mut redis, prefix) = (redis().await, prefix());
    let entry = Registration {
        instance_id: "sfu-a".into(),
        media_addresses: vec!["10.0.0.1:7882".into(), "10.0.0.1:7883".into()],
        capacity: 250,
        load: Load { subscribers: 7, rooms: 2, forwarded_bits_per_second: 9_000_000, media_cpu_percent: 12 },
        draining: false,
    };
    sfu_registry::heartbeat(&mut redis, &prefix, &entry).await.unwrap();
    register(&mut redis, &prefix, "sfu-b", 90, 100).await;
    let ttl: i64 = redis::cmd("PTTL").arg(keys::sfu_instance(&prefix, "sfu-a")).query_async(&mut redis).await.unwrap();
    assert!(ttl > 0 && ttl <= sfu_registry::REGISTRY_TTL.as_millis() as i64, "{ttl}");
    for room in ["r2", "r1"] {
        sfu_jobs::serve_room(&mut redis, &prefix, room, "sfu-a", Duration::from_secs(10)).await.unwrap();
    }
    let listed = sfu_registry::instances(&mut redis, &prefix).await.unwrap();
    assert_eq!(listed.len(), 2);
    let a = &listed[0];
    assert_eq!(
        (a.id.as_str(), a.media_addresses.clone(), a.capacity, a.load),
        ("sfu-a", entry.media_addresses, 250, entry.load)
    );
    assert_eq!(a.rooms, ["r1", "r2"]);
    assert!(listed[1].rooms.is_empty());
}

#[actix_web::test]
async fn an_unreadable_entry_is_skipped_not_served() {
    let (mut redis, prefix) = (redis().await, prefix());
    sfu_jobs::ensure_group(&mut redis, &prefix, "sfu-a").await.unwrap();
    let stream = keys::sfu_instance_jobs(&prefix, "sfu-a");
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("room_id")
        .arg("r1")
        .arg("media")
        .arg("carrier-pigeon")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(sfu_jobs::next(&mut redis, &prefix, "sfu-a", Duration::from_millis(100)).await.unwrap(), None);
    let pending: redis::Value =
        redis::cmd("XPENDING").arg(&stream).arg(sfu_jobs::GROUP).query_async(&mut redis).await.unwrap();
    assert!(
        matches!(pending, redis::Value::Array(ref summary) if summary.first() == Some(&redis::Value::Int(0))),
        "{pending:?}"
    );
}
