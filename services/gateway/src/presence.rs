//! The room's presence in Redis, shared by every gateway instance: who is in each call, on which
//! gateway process, and whether their connection is live or parked for a resume. Every change is
//! one Lua step, so racing instances never double-count a place, free a place twice, or undo a
//! resume that happened on another instance.
//!
//! Each entry names its connection by the hash of that connection's resume token (`resume_hash`)
//! and its gateway process by `incarnation` (the instance id survives a restart, the incarnation
//! does not; the heartbeat key holds the live one's). Removing or parking an entry names the
//! connection it expects, so a connection that was resumed elsewhere in the meantime is left
//! alone.

use std::time::Duration;

use confab_common::presence_events;
use confab_domain::presence::{self as presence_entry, PeerPresence};
use confab_domain::{CallRole, keys};
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

/// Admits a peer if the room has a free place and the user fewer than ARGV[6] connections in
/// it: 1 admitted, 0 room full, -1 too many connections of this user. The services' seats
/// (ARGV[7] = 1; `SERVICE`, see [`with_service_roles`]) take no place and are neither counted nor
/// limited. A participant's arrival goes
/// on the presence event stream (KEYS[3]) in the same step, so no join is ever left out of it.
const JOIN: &str = r"
if ARGV[7] ~= '1' then
  local present, mine = 0, 0
  for _, entry in ipairs(redis.call('HVALS', KEYS[1])) do
    local peer = cjson.decode(entry)
    if not SERVICE[peer.role] then
      present = present + 1
      if peer.user_id == ARGV[5] then mine = mine + 1 end
    end
  end
  if present >= tonumber(ARGV[1]) then return 0 end
  if mine >= tonumber(ARGV[6]) then return -1 end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
if ARGV[7] ~= '1' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*',
    'type', 'participant.joined', 'room_id', ARGV[4], 'peer', ARGV[3])
end
return 1
";

/// Removes the peer ARGV[1] if its entry is still the connection ARGV[5] (1 if this call removed
/// it), with any leave to speak a moderator gave it (KEYS[4]; the whole set with the call's last
/// peer) and, for a participant, puts its departure with the reason ARGV[3] on the presence event
/// stream in the same step.
const LEAVE: &str = r"
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if entry and (cjson.decode(entry).resume_hash or '') ~= ARGV[5] then return 0 end
if entry then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[4], ARGV[1])
end
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[2])
  redis.call('DEL', KEYS[4])
end
if not entry then return 0 end
if not SERVICE[cjson.decode(entry).role] then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*',
    'type', 'participant.left', 'room_id', ARGV[2], 'peer', entry, 'reason', ARGV[3])
end
return 1
";

/// Parks the peer ARGV[1] if its entry is still the connection ARGV[2]: it keeps its place until
/// ARGV[3] ms from now (Redis's clock, the one every instance reads), for a resume.
const PARK: &str = r"
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then return 0 end
local peer = cjson.decode(entry)
if (peer.resume_hash or '') ~= ARGV[2] then return 0 end
local now = redis.call('TIME')
peer.parked_until_ms = string.format('%.0f', now[1] * 1000 + math.floor(now[2] / 1000) + tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(peer))
return 1
";

/// Hands the entry of user ARGV[1]'s connection ARGV[2] (a resume hash) to a new connection:
/// the entry ARGV[3] with the old peer id and joining time. Returns the old entry, or nil if no
/// entry is that connection's (already resumed, departed, or never there).
const RESUME: &str = r"
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local old = cjson.decode(entries[i + 1])
  if old.resume_hash == ARGV[2] and old.user_id == ARGV[1] then
    local new = cjson.decode(ARGV[3])
    new.peer_id = old.peer_id
    new.joined_at = old.joined_at
    redis.call('HSET', KEYS[1], entries[i], cjson.encode(new))
    redis.call('SADD', KEYS[2], ARGV[4])
    return entries[i + 1]
  end
end
return false
";

/// Puts an instance's live connections of room ARGV[1] back after Redis lost them (ARGV from 2:
/// peer id, entry, resume hash). An entry that holds another connection of the peer (it was
/// resumed elsewhere meanwhile) is kept. Returns how many entries were missing and put back, and
/// the peers resumed elsewhere.
const RESTORE: &str = r"
local added, moved = 0, {}
for i = 2, #ARGV, 3 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if not current then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    added = added + 1
  elseif (cjson.decode(current).resume_hash or '') == ARGV[i + 2] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  else
    table.insert(moved, ARGV[i])
  end
end
if redis.call('HLEN', KEYS[1]) > 0 then redis.call('SADD', KEYS[2], ARGV[1]) end
return {added, moved}
";

/// `script` after a Lua table `SERVICE` whose keys are the services' roles (`CallRole::SERVICES`),
/// so the scripts never spell a role themselves.
fn with_service_roles(script: &str) -> redis::Script {
    let roles: Vec<String> = CallRole::SERVICES.iter().map(|role| format!("['{role}'] = true")).collect();
    redis::Script::new(&format!("local SERVICE = {{{}}}\n{script}", roles.join(", ")))
}

/// An instance that has not renewed its heartbeat for this long is dead.
pub const INSTANCE_TTL: Duration = Duration::from_secs(10);

/// Whether a join got a place.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    Full,
    TooManyConnections,
}

/// What putting one room's presence back found.
#[derive(Debug, Default)]
pub struct Restored {
    /// Entries Redis had lost and that were put back.
    pub added: u32,
    /// Peers whose entry now holds a connection resumed elsewhere.
    pub moved: Vec<String>,
}

/// The hash a presence entry keeps of a connection's resume token: enough to recognise the
/// token, useless to anyone reading presence.
pub fn resume_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

pub struct Presence {
    redis: ConnectionManager,
    prefix: String,
    join: redis::Script,
    leave: redis::Script,
    park: redis::Script,
    resume: redis::Script,
}

impl Presence {
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            join: with_service_roles(JOIN),
            leave: with_service_roles(LEAVE),
            park: redis::Script::new(PARK),
            resume: redis::Script::new(RESUME),
        }
    }

    fn peers_key(&self, room_id: &str) -> String {
        keys::room_peers(&self.prefix, room_id)
    }

    fn live_key(&self) -> String {
        keys::live_rooms(&self.prefix)
    }

    fn alive_key(&self, instance_id: &str) -> String {
        keys::gateway_alive(&self.prefix, instance_id)
    }

    fn redis(&self) -> ConnectionManager {
        self.redis.clone()
    }

    /// Takes a place for `entry` if the room has one (capacity and per-user limit checked across
    /// every instance at once).
    pub async fn admit(
        &self,
        room_id: &str,
        entry: &PeerPresence,
        capacity: u32,
        per_user: u32,
        placeless: bool,
    ) -> redis::RedisResult<Admission> {
        let admitted: i64 = self
            .join
            .key(self.peers_key(room_id))
            .key(self.live_key())
            .key(keys::presence_events(&self.prefix))
            .arg(capacity)
            .arg(&entry.peer_id)
            .arg(presence_entry::to_json(entry))
            .arg(room_id)
            .arg(&entry.user_id)
            .arg(per_user)
            .arg(if placeless { "1" } else { "0" })
            .arg(presence_events::MAX_LENGTH)
            .invoke_async(&mut self.redis())
            .await?;
        Ok(match admitted {
            1 => Admission::Admitted,
            0 => Admission::Full,
            _ => Admission::TooManyConnections,
        })
    }

    /// Frees the place of the connection `resume_hash` of `peer_id`, which left for `reason`;
    /// true if this call removed it (a connection resumed elsewhere is not touched).
    pub async fn free(
        &self,
        room_id: &str,
        peer_id: &str,
        resume_hash: &str,
        reason: &str,
    ) -> redis::RedisResult<bool> {
        let removed: i64 = self
            .leave
            .key(self.peers_key(room_id))
            .key(self.live_key())
            .key(keys::presence_events(&self.prefix))
            .key(keys::room_speakers(&self.prefix, room_id))
            .arg(peer_id)
            .arg(room_id)
            .arg(reason)
            .arg(presence_events::MAX_LENGTH)
            .arg(resume_hash)
            .invoke_async(&mut self.redis())
            .await?;
        Ok(removed == 1)
    }

    /// Keeps the place of the connection `resume_hash` of `peer_id` for `window` from now, for
    /// its client to resume; true if it was still that connection's.
    pub async fn park(
        &self,
        room_id: &str,
        peer_id: &str,
        resume_hash: &str,
        window: Duration,
    ) -> redis::RedisResult<bool> {
        let parked: i64 = self
            .park
            .key(self.peers_key(room_id))
            .arg(peer_id)
            .arg(resume_hash)
            .arg(window.as_millis() as u64)
            .invoke_async(&mut self.redis())
            .await?;
        Ok(parked == 1)
    }

    /// Gives the place of `user_id`'s connection `old_hash` (parked, or live on any instance,
    /// dead or not) to `entry`; returns the entry it replaced.
    pub async fn resume(
        &self,
        room_id: &str,
        user_id: &str,
        old_hash: &str,
        entry: &PeerPresence,
    ) -> redis::RedisResult<Option<PeerPresence>> {
        let old: Option<String> = self
            .resume
            .key(self.peers_key(room_id))
            .key(self.live_key())
            .arg(user_id)
            .arg(old_hash)
            .arg(presence_entry::to_json(entry))
            .arg(room_id)
            .invoke_async(&mut self.redis())
            .await?;
        Ok(old.and_then(|json| presence_entry::parse(&json).ok()))
    }

    /// Everyone in the room's presence, oldest first.
    pub async fn read(&self, room_id: &str) -> redis::RedisResult<Vec<PeerPresence>> {
        let entries: Vec<String> =
            redis::cmd("HVALS").arg(self.peers_key(room_id)).query_async(&mut self.redis()).await?;
        let mut present: Vec<PeerPresence> =
            entries.iter().filter_map(|json| presence_entry::parse(json).ok()).collect();
        present.sort_by(|a, b| a.joined_at.cmp(&b.joined_at));
        Ok(present)
    }

    pub async fn contains(&self, room_id: &str, peer_id: &str) -> redis::RedisResult<bool> {
        redis::cmd("HEXISTS").arg(self.peers_key(room_id)).arg(peer_id).query_async(&mut self.redis()).await
    }

    /// Rooms with anyone in them, on any instance.
    pub async fn live_rooms(&self) -> redis::RedisResult<Vec<String>> {
        redis::cmd("SMEMBERS").arg(self.live_key()).query_async(&mut self.redis()).await
    }

    /// Redis's clock (Unix ms), the one parked places expire by.
    pub async fn now_ms(&self) -> redis::RedisResult<i64> {
        let (seconds, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut self.redis()).await?;
        Ok(seconds * 1000 + micros / 1000)
    }

    /// Renews the heartbeat of `instance_id`, naming its live `incarnation`.
    pub async fn heartbeat(&self, instance_id: &str, incarnation: &str) -> redis::RedisResult<()> {
        self.heartbeat_command(instance_id, incarnation).query_async(&mut self.redis()).await
    }

    fn heartbeat_command(&self, instance_id: &str, incarnation: &str) -> redis::Cmd {
        let mut set = redis::cmd("SET");
        set.arg(self.alive_key(instance_id)).arg(incarnation).arg("PX").arg(INSTANCE_TTL.as_millis() as u64);
        set
    }

    /// The live incarnation of each instance (None: its heartbeat expired).
    pub async fn incarnations(&self, instance_ids: &[String]) -> redis::RedisResult<Vec<Option<String>>> {
        if instance_ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = instance_ids.iter().map(|id| self.alive_key(id)).collect();
        redis::cmd("MGET").arg(keys).query_async(&mut self.redis()).await
    }

    /// Puts an instance's live connections back into presence and renews its heartbeat, in one
    /// transaction: another instance that sees the heartbeat sees the connections too.
    pub async fn restore(
        &self,
        instance_id: &str,
        incarnation: &str,
        rooms: &[(String, Vec<PeerPresence>)],
    ) -> redis::RedisResult<Vec<Restored>> {
        let mut transaction = redis::pipe();
        transaction.atomic();
        for (room_id, entries) in rooms {
            let restore = transaction.cmd("EVAL").arg(RESTORE).arg(2).arg(self.peers_key(room_id)).arg(self.live_key());
            restore.arg(room_id);
            for entry in entries {
                restore.arg(&entry.peer_id).arg(presence_entry::to_json(entry)).arg(&entry.resume_hash);
            }
        }
        transaction.add_command(self.heartbeat_command(instance_id, incarnation)).ignore();
        let outcomes: Vec<(u32, Vec<String>)> = transaction.query_async(&mut self.redis()).await?;
        Ok(outcomes.into_iter().map(|(added, moved)| Restored { added, moved }).collect())
    }
}
