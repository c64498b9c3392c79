//! The recording job stream shared by the API (which adds a job per started recording) and the
//! recorders (which read it through the consumer group `recorders`, and re-queue a recording
//! whose job was lost): `confab_domain::keys::recording_jobs`, entries `recording_id`, `room_id` and, for a
//! job queued by a request, `request_id` (the id of the request that started the recording, so
//! the recorder's logs of it can be matched with the API's). Each recorder also renews a heartbeat
//! key, `confab_domain::keys::recorder_alive`, while it takes jobs, so the API can tell how many run and
//! other recorders take over the jobs of one whose key has expired.

use std::time::Duration;

use confab_domain::keys;

/// The recorders' consumer group.
pub const GROUP: &str = "recorders";

/// Jobs kept in the stream (approximately): far more than can ever be waiting.
const STREAM_LENGTH: usize = 10_000;

/// A recorder that has not renewed its heartbeat key for this long is gone.
pub const RECORDER_ALIVE_TTL: Duration = Duration::from_secs(10);

/// The command that queues a job for `recording_id` (returns the entry id); `request_id` is the
/// request that asked for it, if any.
pub fn add(prefix: &str, recording_id: &str, room_id: &str, request_id: Option<&str>) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(keys::recording_jobs(prefix))
        .arg("MAXLEN")
        .arg("~")
        .arg(STREAM_LENGTH)
        .arg("*")
        .arg("recording_id")
        .arg(recording_id)
        .arg("room_id")
        .arg(room_id);
    if let Some(request_id) = request_id.filter(|id| !id.is_empty()) {
        cmd.arg("request_id").arg(request_id);
    }
    cmd
}
