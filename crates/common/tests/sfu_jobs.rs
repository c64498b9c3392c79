//! The SFUs' work queue against a real Redis: a room is queued once, read by one SFU with its
//! settings, held while served, and queued again only once nobody holds it.

use std::time::Duration;

use confab_common::sfu_jobs::{self, SfuJob};
use confab_domain::{MediaRouting, RoomMode, keys};
use redis::aio::ConnectionManager;

async fn redis() -> ConnectionManager {
    let url = std::env::var("REDIS_URL").expect("REDIS_URL must be set: run the tests with deploy/local/test");
    ConnectionManager::new(redis::Client::open(url).unwrap()).await.unwrap()
}

fn prefix() -> String {
    format!("confab-test:{}", uuid::Uuid::new_v4().simple())
}

#[actix_web::test]
async fn a_room_is_queued_once_and_read_with_its_settings() {
    let (mut redis, prefix) = (redis().await, prefix());
    sfu_jobs::ensure_group(&mut redis, &prefix).await.unwrap();
    sfu_jobs::ensure_group(&mut redis, &prefix).await.expect("an existing group is fine");
    assert!(sfu_jobs::queue(&mut redis, &prefix, "r1", MediaRouting::Sfu, RoomMode::Lecture).await.unwrap());
    assert!(!sfu_jobs::queue(&mut redis, &prefix, "r1", MediaRouting::Sfu, RoomMode::Lecture).await.unwrap());

    let job = sfu_jobs::next(&mut redis, &prefix, "sfu-a", Duration::from_millis(100)).await.unwrap().unwrap();
    let SfuJob { room_id, media, mode, .. } = job.clone();
    assert_eq!((room_id.as_str(), media, mode), ("r1", MediaRouting::Sfu, RoomMode::Lecture));
    let again = sfu_jobs::next(&mut redis, &prefix, "sfu-b", Duration::from_millis(100)).await.unwrap();
    assert_eq!(again, None, "one job, one SFU");
    sfu_jobs::ack(&mut redis, &prefix, &job.entry).await.unwrap();
    let left: u64 = redis::cmd("XLEN").arg(keys::sfu_jobs(&prefix)).query_async(&mut redis).await.unwrap();
    assert_eq!(left, 0);
}

#[actix_web::test]
async fn a_served_room_is_not_queued_until_its_sfu_lets_it_go() {
    let (mut redis, prefix) = (redis().await, prefix());
    let ttl = Duration::from_secs(10);
    sfu_jobs::serve_room(&mut redis, &prefix, "r1", "sfu-a", ttl).await.unwrap();
    assert!(!sfu_jobs::queue(&mut redis, &prefix, "r1", MediaRouting::Auto, RoomMode::Meeting).await.unwrap());
    assert!(!sfu_jobs::release_room(&mut redis, &prefix, "r1", "sfu-b").await.unwrap(), "not another SFU's to free");
    assert!(sfu_jobs::release_room(&mut redis, &prefix, "r1", "sfu-a").await.unwrap());
    assert!(sfu_jobs::queue(&mut redis, &prefix, "r1", MediaRouting::Auto, RoomMode::Meeting).await.unwrap());
}

#[actix_web::test]
async fn an_unreadable_entry_is_skipped_not_served() {
    let (mut redis, prefix) = (redis().await, prefix());
    sfu_jobs::ensure_group(&mut redis, &prefix).await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(keys::sfu_jobs(&prefix))
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
        redis::cmd("XPENDING").arg(keys::sfu_jobs(&prefix)).arg(sfu_jobs::GROUP).query_async(&mut redis).await.unwrap();
    assert!(
        matches!(pending, redis::Value::Array(ref summary) if summary.first() == Some(&redis::Value::Int(0))),
        "{pending:?}"
    );
}
