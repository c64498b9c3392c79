//! Placing rooms on the media servers, shared by the gateways (which place a room when its call
//! needs an SFU and none serves it) and the SFUs (which read the rooms placed on them, and hand
//! theirs over when they stop). A room goes to the least-loaded live instance that is not
//! draining in the registry ([`crate::sfu_registry`]): fewest subscribers per unit of capacity,
//! then fewest rooms, then the smaller id. One Lua step reads the candidates' entries, picks one,
//! sets `confab_domain::keys::sfu_room` to its instance id (`SET NX`, [`PLACED_TTL`]) and appends
//! the job to that instance's own stream (`confab_domain::keys::sfu_instance_jobs`: `room_id`,
//! `media`, `mode`, the room's settings from the participant's ticket), so two gateways racing
//! for one room place it once, and every gateway and service reads the same answer from the key.
//! Capacity weighs the choice but does not refuse: when every instance is past it the room still
//! goes to the least loaded, as a big call in mesh would be worse. With no live instance the room
//! is not placed (its call stays a mesh) and its next arrival tries again.
//!
//! Each instance reads only its stream, through the consumer group [`GROUP`]. It renews the key
//! while it serves the room ([`serve_room`]) and deletes it when it leaves ([`release_room`]), or,
//! when it is stopping, places the room on another instance in the same step ([`hand_over`]).
//! When an instance's seat drops out of a call (the instance died), the gateway that saw it go
//! places the room on another instance at once ([`fail_over`]). A job lost with an instance that
//! died before joining, or an instance that stopped renewing, frees the key when it expires, and
//! the room's next arrival places it again.

use std::time::Duration;

use confab_domain::{MediaRouting, RoomMode, keys};
use redis::RedisResult;
use redis::aio::ConnectionLike;
use redis::streams::StreamReadReply;

use crate::sfu_registry;

/// The consumer group on each instance's job stream.
pub const GROUP: &str = "sfus";

/// How long a placed room waits for its instance to take it before another arrival may place it
/// again.
pub const PLACED_TTL: Duration = Duration::from_secs(30);

/// Jobs kept in a stream (approximately): far more than can ever be waiting.
const STREAM_LENGTH: usize = 10_000;

/// Places a room: `KEYS` the room's key, the registry's set, then each candidate's entry and job
/// stream; `ARGV` who must hold the room now (`''`: nobody), the key's TTL, the stream length, the
/// room id, media and mode, then the candidates' ids. Returns `{1, id}` placed on `id`, `{0, ''}`
/// the room is held by another (or no longer by the one handing it over), `{2, ''}` no live
/// instance takes rooms (a room handed over is then freed). An id whose entry has expired leaves
/// the set. The chosen entry counts one more subscriber at once, so rooms placed within one
/// heartbeat spread; its next heartbeat writes the true figure.
const PLACE: &str = r"
local holder = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if holder then return {0, ''} end
elseif holder ~= ARGV[1] then
  return {0, ''}
end
local function lighter(a, b)
  if a.subscribers * b.capacity ~= b.subscribers * a.capacity then
    return a.subscribers * b.capacity < b.subscribers * a.capacity
  end
  if a.rooms ~= b.rooms then return a.rooms < b.rooms end
  return a.id < b.id
end
local best
for i = 7, #ARGV do
  local entry, stream, id = KEYS[2 * i - 11], KEYS[2 * i - 10], ARGV[i]
  local fields = redis.call('HMGET', entry, 'capacity', 'subscribers', 'rooms', 'draining')
  local capacity = tonumber(fields[1])
  if not capacity then
    redis.call('SREM', KEYS[2], id)
  elseif capacity > 0 and fields[4] ~= '1' and id ~= ARGV[1] then
    local candidate = {id = id, entry = entry, stream = stream, capacity = capacity,
      subscribers = tonumber(fields[2]) or 0, rooms = tonumber(fields[3]) or 0}
    if not best or lighter(candidate, best) then best = candidate end
  end
end
if not best then
  if holder then redis.call('DEL', KEYS[1]) end
  return {2, ''}
end
redis.call('SET', KEYS[1], best.id, 'PX', ARGV[2])
redis.call('HINCRBY', best.entry, 'subscribers', 1)
redis.call('XADD', best.stream, 'MAXLEN', '~', ARGV[3], '*', 'room_id', ARGV[4], 'media', ARGV[5], 'mode', ARGV[6])
return {1, best.id}
";

/// Renews the room's key for this SFU unless it names another (the room was placed elsewhere
/// while this one was away): 1 renewed, 0 not.
const SERVE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Deletes the room's key if it still names this SFU: 1 deleted, 0 not.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
";

/// What became of a room to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Placed on this instance: the job is on its stream.
    Placed { instance_id: String },
    /// Another placement holds the room (placed already, or served).
    Held,
    /// No live instance takes rooms: the room is not placed.
    NoInstance,
}

/// One room for an SFU to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfuJob {
    /// The stream entry id, to acknowledge the job with [`ack`].
    pub entry: String,
    pub room_id: String,
    pub media: MediaRouting,
    pub mode: RoomMode,
}

/// Places `room_id` on the least-loaded live instance unless it is placed or served already.
pub async fn place(
    redis: &mut impl ConnectionLike,
    prefix: &str,
    room_id: &str,
    media: MediaRouting,
    mode: RoomMode,
) -> RedisResult<Placement> {
    place_on_least_loaded(redis, prefix, room_id, media, mode, "").await
}

/// The instance `instance_id` is stopping: the room it serves goes to another live instance
/// (its key renamed and the job on that instance's stream, in one step), or is freed if none
/// takes rooms. [`Placement::Held`] if the key no longer names `instance_id`.
pub async fn hand_over(
    redis: &mut impl ConnectionLike,
    prefix: &str,
    job: &SfuJob,
    instance_id: &str,
) -> RedisResult<Placement> {
    place_on_least_loaded(redis, prefix, &job.room_id, job.media, job.mode, instance_id).await
}

/// The seat of `dead_instance` dropped out of the room's call without leaving it (the process died,
/// or its link did): the instance is taken out of the registry until its next heartbeat says it
/// lives (so that no other room is placed on a dead instance meanwhile), and the room goes to
/// another live instance as in [`hand_over`] — or as in [`place`] if nobody holds it any more.
/// [`Placement::Held`] if another instance holds it.
pub async fn fail_over(
    redis: &mut impl ConnectionLike,
    prefix: &str,
    room_id: &str,
    media: MediaRouting,
    mode: RoomMode,
    dead_instance: &str,
) -> RedisResult<Placement> {
    redis::cmd("DEL").arg(keys::sfu_instance(prefix, dead_instance)).query_async::<()>(redis).await?;
    match place_on_least_loaded(redis, prefix, room_id, media, mode, dead_instance).await? {
        Placement::Held => place(redis, prefix, room_id, media, mode).await,
        placement => Ok(placement),
    }
}

/// Every room placed on `instance_id` and not yet read goes to another instance ([`hand_over`]),
/// its job acknowledged: for an instance that is stopping, once it is marked draining (so that
/// nothing more is placed on it). What became of each room, by id.
pub async fn hand_over_unread(
    redis: &mut impl ConnectionLike,
    prefix: &str,
    instance_id: &str,
) -> RedisResult<Vec<(String, Placement)>> {
    let mut handed_over = Vec::new();
    // They are in the stream already, or not at all: the shortest wait.
    while let Some(job) = next(redis, prefix, instance_id, Duration::from_millis(1)).await? {
        let placement = hand_over(redis, prefix, &job, instance_id).await?;
        ack(redis, prefix, instance_id, &job.entry).await?;
        handed_over.push((job.room_id, placement));
    }
    Ok(handed_over)
}

async fn place_on_least_loaded(
    redis: &mut impl ConnectionLike,
    prefix: &str,
    room_id: &str,
    media: MediaRouting,
    mode: RoomMode,
    holder: &str,
) -> RedisResult<Placement> {
    // Read before the step: an instance that registers meanwhile is a candidate next time; one
    // that expires meanwhile has no entry left for the step to read.
    let candidates = sfu_registry::registered_ids(redis, prefix).await?;
    let place = redis::Script::new(PLACE);
    let mut script = place.key(keys::sfu_room(prefix, room_id));
    script.key(keys::sfu_instances(prefix));
    for id in &candidates {
        script.key(keys::sfu_instance(prefix, id)).key(keys::sfu_instance_jobs(prefix, id));
    }
    script
        .arg(holder)
        .arg(PLACED_TTL.as_millis() as u64)
        .arg(STREAM_LENGTH)
        .arg(room_id)
        .arg(media.as_str())
        .arg(mode.as_str());
    for id in &candidates {
        script.arg(id);
    }
    let (outcome, instance_id): (i64, String) = script.invoke_async(redis).await?;
    Ok(match outcome {
        1 => Placement::Placed { instance_id },
        2 => Placement::NoInstance,
        _ => Placement::Held,
    })
}

/// Creates the consumer group of `instance_id`'s stream (from its start, so rooms placed before
/// the instance read are served); an existing group is left as it is.
pub async fn ensure_group(redis: &mut impl ConnectionLike, prefix: &str, instance_id: &str) -> RedisResult<()> {
    let created: RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(keys::sfu_instance_jobs(prefix, instance_id))
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(redis)
        .await;
    match created {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// The next job placed on the SFU `instance_id`, waiting at most `wait` (at least 1 ms) for one. The read
/// blocks its connection: give it one of its own whose response timeout is longer than `wait`,
/// or every other command on it waits too. An entry whose fields cannot be read is acknowledged
/// and skipped (`Ok(None)`).
pub async fn next(
    redis: &mut impl ConnectionLike,
    prefix: &str,
    instance_id: &str,
    wait: Duration,
) -> RedisResult<Option<SfuJob>> {
    let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg(instance_id)
        .arg("COUNT")
        .arg(1)
        .arg("BLOCK")
        // BLOCK 0 would wait forever.
        .arg(wait.as_millis().max(1) as u64)
        .arg("STREAMS")
        .arg(keys::sfu_instance_jobs(prefix, instance_id))
        .arg(">")
        .query_async(redis)
        .await?;
    let Some(entry) = reply.and_then(|reply| reply.keys.into_iter().next()).and_then(|key| key.ids.into_iter().next())
    else {
        return Ok(None);
    };
    let field = |name: &str| entry.get::<String>(name);
    let job = (|| {
        Some(SfuJob {
            entry: entry.id.clone(),
            room_id: field("room_id").filter(|id| !id.is_empty())?,
            media: field("media")?.parse().ok()?,
            mode: field("mode")?.parse().ok()?,
        })
    })();
    if job.is_none() {
        tracing::warn!(entry = %entry.id, "unreadable SFU job skipped");
        ack(redis, prefix, instance_id, &entry.id).await?;
    }
    Ok(job)
}

/// The job placed on `instance_id` is taken care of (the SFU serves the room, or handed it over).
pub async fn ack(redis: &mut impl ConnectionLike, prefix: &str, instance_id: &str, entry: &str) -> RedisResult<()> {
    let stream = keys::sfu_instance_jobs(prefix, instance_id);
    redis::pipe()
        .cmd("XACK")
        .arg(&stream)
        .arg(GROUP)
        .arg(entry)
        .ignore()
        .cmd("XDEL")
        .arg(&stream)
        .arg(entry)
        .ignore()
        .query_async(redis)
        .await
}

/// Marks the room as served by the SFU `instance_id` for `ttl`: call it on taking the job and
/// then well within every `ttl`, so no gateway places the room meanwhile. False if the room is
/// another instance's now (a gateway failed it over while this one's seat was gone: [`fail_over`]),
/// and this one must leave it.
pub async fn serve_room(
    redis: &mut impl ConnectionLike,
    prefix: &str,
    room_id: &str,
    instance_id: &str,
    ttl: Duration,
) -> RedisResult<bool> {
    let renewed: i64 = redis::Script::new(SERVE)
        .key(keys::sfu_room(prefix, room_id))
        .arg(instance_id)
        .arg(ttl.as_millis() as u64)
        .invoke_async(redis)
        .await?;
    Ok(renewed == 1)
}

/// The SFU `instance_id` no longer serves the room: its key goes, if it still names that SFU, so
/// the room's next arrival may place it again. True if it was deleted.
pub async fn release_room(
    redis: &mut impl ConnectionLike,
    prefix: &str,
    room_id: &str,
    instance_id: &str,
) -> RedisResult<bool> {
    let released: i64 =
        redis::Script::new(RELEASE).key(keys::sfu_room(prefix, room_id)).arg(instance_id).invoke_async(redis).await?;
    Ok(released == 1)
}
