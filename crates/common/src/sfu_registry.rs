//! The media servers' registry in Redis, so that rooms go to an SFU that is alive and has room
//! ([`crate::sfu_jobs`] places them) and an operator sees every instance and what it carries
//! (`GET /v1/admin/sfus`). Each instance writes its entry, `confab_domain::keys::sfu_instance`
//! (where participants reach it, its capacity, its load), every [`HEARTBEAT_EVERY`] with a TTL of
//! [`REGISTRY_TTL`], and its id into `confab_domain::keys::sfu_instances`: an instance that stops
//! renewing drops out by itself, as the gateways' and recorders' `*_alive` keys do. An entry
//! marked `draining` (the instance is stopping, or an admin said so) stays listed but is given no
//! new room.

use std::collections::HashMap;
use std::time::Duration;

use confab_domain::keys;
use redis::RedisResult;
use redis::aio::ConnectionLike;

/// How often an instance renews its entry.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How long an entry lives without a renewal: an instance silent this long gets no new room.
pub const REGISTRY_TTL: Duration = Duration::from_secs(5);
/// How long an instance's job stream outlives its last heartbeat: long enough for a Redis hiccup
/// not to take its consumer group, short enough that a dead instance's stream goes by itself.
pub const JOBS_TTL: Duration = Duration::from_secs(60);

/// Marks an entry draining if it exists: 1 marked, 0 no such instance.
const MARK_DRAINING: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'draining', '1')
return 1
";

/// What an instance carries now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// People in the rooms it serves (each receives the room's media from it).
    pub subscribers: u64,
    /// Rooms it serves.
    pub rooms: u64,
    /// What it sends, over its last heartbeat interval.
    pub forwarded_bits_per_second: u64,
    /// Its busiest media thread's share of one core, over its last heartbeat interval.
    pub media_cpu_percent: u64,
}

/// One instance's entry, as it writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub instance_id: String,
    /// The `ip:port` each of its media threads advertises to participants.
    pub media_addresses: Vec<String>,
    /// Subscribers it takes before it counts as full (`CONFAB_SFU_CAPACITY`).
    pub capacity: u64,
    pub load: Load,
    /// It is stopping: it takes no new room. (An admin's mark is kept when this is false.)
    pub draining: bool,
}

/// One instance as the registry shows it, with the rooms placed on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub media_addresses: Vec<String>,
    pub capacity: u64,
    pub load: Load,
    pub draining: bool,
    /// The rooms whose `sfu_room` key names it (placed on it, or served by it), sorted.
    pub rooms: Vec<String>,
}

/// Writes the instance's entry and renews it for [`REGISTRY_TTL`] (its job stream for
/// [`JOBS_TTL`]), in one transaction.
pub async fn heartbeat(redis: &mut impl ConnectionLike, prefix: &str, entry: &Registration) -> RedisResult<()> {
    let key = keys::sfu_instance(prefix, &entry.instance_id);
    let load = &entry.load;
    let mut pipe = redis::pipe();
    pipe.atomic()
        .hset_multiple(
            &key,
            &[
                ("media_addresses", entry.media_addresses.join(",")),
                ("capacity", entry.capacity.to_string()),
                ("subscribers", load.subscribers.to_string()),
                ("rooms", load.rooms.to_string()),
                ("forwarded_bits_per_second", load.forwarded_bits_per_second.to_string()),
                ("media_cpu_percent", load.media_cpu_percent.to_string()),
            ],
        )
        .ignore();
    if entry.draining {
        pipe.hset(&key, "draining", "1").ignore();
    }
    pipe.pexpire(&key, REGISTRY_TTL.as_millis() as i64)
        .ignore()
        .sadd(keys::sfu_instances(prefix), &entry.instance_id)
        .ignore()
        .pexpire(keys::sfu_instance_jobs(prefix, &entry.instance_id), JOBS_TTL.as_millis() as i64)
        .ignore();
    pipe.query_async(redis).await
}

/// A new process of the instance starts undrained: a mark left for the process before it under
/// the same id (whose entry has not expired yet) is taken off.
pub async fn clear_draining(redis: &mut impl ConnectionLike, prefix: &str, instance_id: &str) -> RedisResult<()> {
    redis::cmd("HDEL").arg(keys::sfu_instance(prefix, instance_id)).arg("draining").query_async(redis).await
}

/// The instance leaves the registry (a clean shutdown, once its rooms are handed over).
pub async fn deregister(redis: &mut impl ConnectionLike, prefix: &str, instance_id: &str) -> RedisResult<()> {
    redis::pipe()
        .atomic()
        .del(keys::sfu_instance(prefix, instance_id))
        .ignore()
        .del(keys::sfu_instance_jobs(prefix, instance_id))
        .ignore()
        .srem(keys::sfu_instances(prefix), instance_id)
        .ignore()
        .query_async(redis)
        .await
}

/// Marks a live instance draining: no new room is placed on it; the rooms it serves stay until
/// their calls end or it stops. False if no live instance has that id.
pub async fn mark_draining(redis: &mut impl ConnectionLike, prefix: &str, instance_id: &str) -> RedisResult<bool> {
    let marked: i64 =
        redis::Script::new(MARK_DRAINING).key(keys::sfu_instance(prefix, instance_id)).invoke_async(redis).await?;
    Ok(marked == 1)
}

/// The ids in the registry's set: live instances, and dead ones not yet dropped.
pub async fn registered_ids(redis: &mut impl ConnectionLike, prefix: &str) -> RedisResult<Vec<String>> {
    redis::cmd("SMEMBERS").arg(keys::sfu_instances(prefix)).query_async(redis).await
}

/// Every live instance, by id, with the rooms placed on it.
pub async fn instances(redis: &mut impl ConnectionLike, prefix: &str) -> RedisResult<Vec<Instance>> {
    let mut ids = registered_ids(redis, prefix).await?;
    ids.sort();
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.hgetall(keys::sfu_instance(prefix, id));
    }
    let entries: Vec<HashMap<String, String>> =
        if ids.is_empty() { Vec::new() } else { pipe.query_async(redis).await? };
    let mut placed = rooms_by_instance(redis, prefix).await?;
    Ok(ids
        .into_iter()
        .zip(entries)
        .filter_map(|(id, fields)| {
            let rooms = placed.remove(&id).unwrap_or_default();
            read_entry(id, &fields, rooms)
        })
        .collect())
}

/// Every placed room by the instance its key names (`SCAN`, so Redis is never blocked).
async fn rooms_by_instance(redis: &mut impl ConnectionLike, prefix: &str) -> RedisResult<HashMap<String, Vec<String>>> {
    let mut room_keys = std::collections::BTreeSet::new();
    let mut cursor = 0u64;
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor).arg("MATCH").arg(keys::sfu_room_pattern(prefix)).arg("COUNT").arg(1000);
        let (next, batch): (u64, Vec<String>) = scan.query_async(redis).await?;
        room_keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut placed: HashMap<String, Vec<String>> = HashMap::new();
    if room_keys.is_empty() {
        return Ok(placed);
    }
    let room_keys: Vec<String> = room_keys.into_iter().collect();
    // A key that expired since the scan reads as nil.
    let holders: Vec<Option<String>> = redis::cmd("MGET").arg(&room_keys).query_async(redis).await?;
    for (key, holder) in room_keys.iter().zip(holders) {
        if let (Some(room), Some(holder)) = (keys::room_of_sfu_room(prefix, key), holder) {
            placed.entry(holder).or_default().push(room.to_owned());
        }
    }
    Ok(placed)
}

/// An entry's fields as an [`Instance`]; `None` for an entry that has expired (no fields).
fn read_entry(id: String, fields: &HashMap<String, String>, rooms: Vec<String>) -> Option<Instance> {
    let number = |name: &str| fields.get(name).and_then(|value| value.parse::<u64>().ok()).unwrap_or(0);
    let addresses = fields.get("media_addresses")?;
    Some(Instance {
        media_addresses: addresses.split(',').filter(|a| !a.is_empty()).map(str::to_owned).collect(),
        capacity: number("capacity"),
        load: Load {
            subscribers: number("subscribers"),
            rooms: number("rooms"),
            forwarded_bits_per_second: number("forwarded_bits_per_second"),
            media_cpu_percent: number("media_cpu_percent"),
        },
        draining: fields.get("draining").is_some_and(|flag| flag == "1"),
        id,
        rooms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn an_entry_reads_back_as_written_and_an_expired_one_not_at_all() {
        let entry = fields(&[
            ("media_addresses", "10.0.0.1:7882,10.0.0.1:7883"),
            ("capacity", "250"),
            ("subscribers", "12"),
            ("rooms", "3"),
            ("forwarded_bits_per_second", "4000000"),
            ("media_cpu_percent", "17"),
            ("draining", "1"),
        ]);
        let instance = read_entry("sfu-1".into(), &entry, vec!["r1".into()]).unwrap();
        assert_eq!(instance.media_addresses, ["10.0.0.1:7882", "10.0.0.1:7883"]);
        assert_eq!(
            (instance.capacity, instance.draining, instance.rooms.as_slice()),
            (250, true, &["r1".to_owned()][..])
        );
        let load = Load { subscribers: 12, rooms: 3, forwarded_bits_per_second: 4_000_000, media_cpu_percent: 17 };
        assert_eq!(instance.load, load);
        assert_eq!(read_entry("sfu-2".into(), &HashMap::new(), Vec::new()), None);
    }

    #[test]
    fn unreadable_figures_read_as_zero_and_only_1_means_draining() {
        let entry = fields(&[("media_addresses", ""), ("capacity", "lots"), ("draining", "yes")]);
        let instance = read_entry("sfu-1".into(), &entry, Vec::new()).unwrap();
        assert!(instance.media_addresses.is_empty());
        assert_eq!((instance.capacity, instance.draining, instance.load), (0, false, Load::default()));
    }
}
