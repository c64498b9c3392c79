//! The media servers' work queue, shared by the gateways (which queue a room when its call needs
//! an SFU and none serves it) and the SFUs (which read it through the consumer group `sfus`, so
//! each room goes to one of them): the stream `confab_domain::keys::sfu_jobs`, entries `room_id`,
//! `media` and `mode` (the room's settings from the participant's ticket).
//!
//! A room is queued once: beside the stream, `confab_domain::keys::sfu_room` holds `queued`
//! for [`QUEUED_TTL`], set in the same step as the entry. The SFU that takes the job overwrites
//! it with its instance id and renews it while it serves the room ([`serve_room`]), and deletes it
//! when it leaves ([`release_room`]). A job lost with an SFU that died before joining, or an SFU
//! that stopped renewing, frees the key when it expires, and the room's next arrival queues it
//! again.

use std::time::Duration;

use confab_domain::{MediaRouting, RoomMode, keys};
use redis::RedisResult;
use redis::aio::ConnectionLike;
use redis::streams::StreamReadReply;

/// The SFUs' consumer group.
pub const GROUP: &str = "sfus";

/// How long a queued room waits for an SFU before another arrival may queue it again.
pub const QUEUED_TTL: Duration = Duration::from_secs(30);

/// Jobs kept in the stream (approximately): far more than can ever be waiting.
const STREAM_LENGTH: usize = 10_000;

/// Adds the job unless the room is queued or served already: 1 queued, 0 not.
const QUEUE: &str = r"
if not redis.call('SET', KEYS[2], 'queued', 'NX', 'PX', ARGV[1]) then return 0 end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'room_id', ARGV[3], 'media', ARGV[4], 'mode', ARGV[5])
return 1
";

/// Deletes the room's key if it still names this SFU: 1 deleted, 0 not.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
";

/// One room for an SFU to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfuJob {
    /// The stream entry id, to acknowledge the job with [`ack`].
    pub entry: String,
    pub room_id: String,
    pub media: MediaRouting,
    pub mode: RoomMode,
}

/// Queues `room_id` for the SFUs unless it is queued or served already; true if this call queued
/// it.
pub async fn queue(
    redis: &mut impl ConnectionLike,
    prefix: &str,
    room_id: &str,
    media: MediaRouting,
    mode: RoomMode,
) -> RedisResult<bool> {
    let queued: i64 = redis::Script::new(QUEUE)
        .key(keys::sfu_jobs(prefix))
        .key(keys::sfu_room(prefix, room_id))
        .arg(QUEUED_TTL.as_millis() as u64)
        .arg(STREAM_LENGTH)
        .arg(room_id)
        .arg(media.as_str())
        .arg(mode.as_str())
        .invoke_async(redis)
        .await?;
    Ok(queued == 1)
}

/// Creates the consumer group (from the start of the stream, so rooms queued before any SFU ran
/// are served); an existing group is left as it is.
pub async fn ensure_group(redis: &mut impl ConnectionLike, prefix: &str) -> RedisResult<()> {
    let created: RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(keys::sfu_jobs(prefix))
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

/// The next job for the SFU `consumer`, waiting at most `wait` (at least 1 ms) for one. The read
/// blocks its connection: give it one of its own whose response timeout is longer than `wait`,
/// or every other command on it waits too. An entry whose fields cannot be read is acknowledged
/// and skipped (`Ok(None)`).
pub async fn next(
    redis: &mut impl ConnectionLike,
    prefix: &str,
    consumer: &str,
    wait: Duration,
) -> RedisResult<Option<SfuJob>> {
    let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(1)
        .arg("BLOCK")
        // BLOCK 0 would wait forever.
        .arg(wait.as_millis().max(1) as u64)
        .arg("STREAMS")
        .arg(keys::sfu_jobs(prefix))
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
        ack(redis, prefix, &entry.id).await?;
    }
    Ok(job)
}

/// The job is taken care of (the SFU serves the room, or the room needs it no more).
pub async fn ack(redis: &mut impl ConnectionLike, prefix: &str, entry: &str) -> RedisResult<()> {
    let stream = keys::sfu_jobs(prefix);
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
/// then well within every `ttl`, so no gateway queues the room meanwhile.
pub async fn serve_room(
    redis: &mut impl ConnectionLike,
    prefix: &str,
    room_id: &str,
    instance_id: &str,
    ttl: Duration,
) -> RedisResult<()> {
    redis::cmd("SET")
        .arg(keys::sfu_room(prefix, room_id))
        .arg(instance_id)
        .arg("PX")
        .arg(ttl.as_millis() as u64)
        .query_async(redis)
        .await
}

/// The SFU `instance_id` no longer serves the room: its key goes, if it still names that SFU, so
/// the room's next arrival may queue it again. True if it was deleted.
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
