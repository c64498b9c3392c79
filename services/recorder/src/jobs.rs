//! The recording job queue: the stream `{prefix}:recordings:jobs` that the API appends to, read
//! through the consumer group `recorders` so each job goes to one recorder. A recorder renews
//! its claim on the jobs it works on. When a recorder dies, the next recorder that asks for work
//! takes its jobs over as soon as its heartbeat key has expired (within 10 s of its death), rather
//! than waiting for its claims to go stale; a job whose claim was not renewed for `reclaim_after`
//! is taken over too (the fallback, e.g. for a recorder that still renews its key but is stuck).

use std::time::Duration;

use confab_common::http::RequestId;
use confab_common::recording_jobs;
use confab_domain::keys;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Value};

pub const GROUP: &str = recording_jobs::GROUP;

/// The longest a read for new jobs blocks.
pub const LONGEST_WAIT: Duration = Duration::from_secs(2);

/// A job is taken from a recorder whose heartbeat key is gone only once that recorder has not
/// renewed its claim on it for this long (a live recorder renews every 500 ms), so a take-over
/// never races a renewal.
const UNRENEWED_FOR: Duration = Duration::from_secs(2);

/// How many of the jobs being worked on one ask for work looks through for a dead recorder's.
const PENDING_LOOKED_AT: usize = 100;

/// One queued recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The stream entry id, to renew and acknowledge the claim.
    pub entry: String,
    pub recording_id: String,
    pub room_id: String,
    /// The API request that started the recording (absent for a re-queued job); only a
    /// well-formed id is kept.
    pub request_id: Option<String>,
    /// The recorder that held the job and whose heartbeat key had expired when this recorder
    /// took it over; `None` for a new job or one taken over because its claim went stale.
    pub abandoned_by: Option<String>,
}

#[derive(Clone)]
pub struct JobQueue {
    redis: ConnectionManager,
    /// A connection of its own for the blocking read: Redis serves one connection's commands in
    /// order, so a blocked `XREADGROUP` would hold up every renewal and acknowledgement.
    reader: ConnectionManager,
    stream: String,
    prefix: String,
    consumer: String,
    reclaim_after: Duration,
}

impl JobQueue {
    pub fn new(
        redis: ConnectionManager,
        redis_url: &str,
        prefix: &str,
        consumer: &str,
        reclaim_after: Duration,
    ) -> RedisResult<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(LONGEST_WAIT + Duration::from_secs(2)));
        let reader = ConnectionManager::new_lazy_with_config(redis::Client::open(redis_url)?, config)?;
        let stream = keys::recording_jobs(prefix);
        Ok(Self { redis, reader, stream, prefix: prefix.to_owned(), consumer: consumer.to_owned(), reclaim_after })
    }

    /// Creates the consumer group (from the start of the stream, so jobs queued before any
    /// recorder ran are not lost); an existing group is left as it is.
    pub async fn ensure_group(&self) -> RedisResult<()> {
        let created: RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.redis.clone())
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => counted(other),
        }
    }

    /// The next job: first one held by a recorder whose heartbeat key is gone, then one whose
    /// claim went stale, else a new one, waiting at most `wait` (up to [`LONGEST_WAIT`]) for it.
    pub async fn next(&self, wait: Duration) -> RedisResult<Option<Job>> {
        counted(self.next_unobserved(wait).await)
    }

    async fn next_unobserved(&self, wait: Duration) -> RedisResult<Option<Job>> {
        if let Some(job) = self.of_a_dead_recorder().await? {
            return Ok(Some(job));
        }
        let abandoned: Value = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(self.reclaim_after.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.redis.clone())
            .await?;
        // [next-start, [[id, [field, value, ...]], ...], [deleted ids]]
        if let Value::Array(parts) = &abandoned
            && let Some(job) = parts.get(1).and_then(first_job)
        {
            return Ok(Some(job));
        }
        let fresh: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(wait.min(LONGEST_WAIT).as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(&mut self.reader.clone())
            .await?;
        // nil, or [[stream, [[id, [field, value, ...]]]]] (RESP2) / {stream: [...]} (RESP3)
        Ok(match fresh {
            Value::Array(streams) => streams.first().and_then(|s| match s {
                Value::Array(pair) => pair.get(1).and_then(first_job),
                _ => None,
            }),
            Value::Map(streams) => streams.first().and_then(|(_, entries)| first_job(entries)),
            _ => None,
        })
    }

    /// Takes over a job held by another recorder whose heartbeat key has expired and that has not
    /// renewed its claim for [`UNRENEWED_FOR`].
    async fn of_a_dead_recorder(&self) -> RedisResult<Option<Job>> {
        let pending: Value = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(GROUP)
            .arg("IDLE")
            .arg(UNRENEWED_FOR.as_millis() as u64)
            .arg("-")
            .arg("+")
            .arg(PENDING_LOOKED_AT)
            .query_async(&mut self.redis.clone())
            .await?;
        // [[id, consumer, idle ms, deliveries], ...]
        let Value::Array(pending) = pending else { return Ok(None) };
        let mut alive = Vec::new();
        for entry in &pending {
            let Value::Array(fields) = entry else { continue };
            let (Some(entry_id), Some(holder)) = (fields.first().and_then(text), fields.get(1).and_then(text)) else {
                continue;
            };
            if holder == self.consumer || alive.contains(&holder) {
                continue;
            }
            let key = keys::recorder_alive(&self.prefix, &holder);
            if redis::cmd("EXISTS").arg(key).query_async::<bool>(&mut self.redis.clone()).await? {
                alive.push(holder);
                continue;
            }
            // Only one recorder gets it: the claim resets the idle time the others ask for.
            let claimed: Value = redis::cmd("XCLAIM")
                .arg(&self.stream)
                .arg(GROUP)
                .arg(&self.consumer)
                .arg(UNRENEWED_FOR.as_millis() as u64)
                .arg(&entry_id)
                .query_async(&mut self.redis.clone())
                .await?;
            if let Some(job) = first_job(&claimed) {
                return Ok(Some(Job { abandoned_by: Some(holder), ..job }));
            }
        }
        Ok(None)
    }

    /// Renews this recorder's claim on a job it is still working on.
    pub async fn renew(&self, job: &Job) -> RedisResult<()> {
        let renewed: RedisResult<Value> = redis::cmd("XCLAIM")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(0)
            .arg(&job.entry)
            .arg("JUSTID")
            .query_async(&mut self.redis.clone())
            .await;
        counted(renewed).map(drop)
    }

    /// Queues a job again for a recording whose job was lost.
    pub async fn requeue(&self, recording_id: &str, room_id: &str) -> RedisResult<()> {
        let add = recording_jobs::add(&self.prefix, recording_id, room_id, None);
        counted(add.query_async::<String>(&mut self.redis.clone()).await).map(drop)
    }

    /// Renews this recorder's heartbeat key ([`keys::recorder_alive`]): the API counts the
    /// recorders that take jobs by it.
    pub async fn heartbeat(&self) -> RedisResult<()> {
        let ttl = recording_jobs::RECORDER_ALIVE_TTL.as_millis() as u64;
        let mut set = redis::cmd("SET");
        set.arg(keys::recorder_alive(&self.prefix, &self.consumer)).arg(1).arg("PX").arg(ttl);
        counted(set.query_async::<()>(&mut self.redis.clone()).await)
    }

    /// The job is finished (or has nothing to do): nobody needs to take it over.
    pub async fn complete(&self, job: &Job) -> RedisResult<()> {
        let completed = redis::pipe()
            .cmd("XACK")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&job.entry)
            .ignore()
            .cmd("XDEL")
            .arg(&self.stream)
            .arg(&job.entry)
            .ignore()
            .query_async(&mut self.redis.clone())
            .await;
        counted(completed)
    }
}

/// Counts a failed job-queue command in `recorder_redis_errors_total`.
fn counted<T>(result: RedisResult<T>) -> RedisResult<T> {
    if result.is_err() {
        metrics::counter!("recorder_redis_errors_total").increment(1);
    }
    result
}

/// The first entry of a list of `[id, [field, value, ...]]`, if it has the job's fields.
fn first_job(entries: &Value) -> Option<Job> {
    let Value::Array(entries) = entries else { return None };
    let Value::Array(entry) = entries.first()? else { return None };
    let entry_id = text(entry.first()?)?;
    let Value::Array(fields) = entry.get(1)? else { return None };
    let field = |name: &str| {
        fields
            .chunks(2)
            .find(|pair| pair.first().and_then(text).as_deref() == Some(name))
            .and_then(|pair| text(pair.get(1)?))
    };
    let request_id = field("request_id").and_then(|raw| RequestId::parse(&raw)).map(|RequestId(id)| id);
    Some(Job {
        entry: entry_id,
        recording_id: field("recording_id")?,
        room_id: field("room_id")?,
        request_id,
        abandoned_by: None,
    })
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}
