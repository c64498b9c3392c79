//! The recording job stream shared by the API (which adds a job per started recording) and the
//! recorders (which read it through the consumer group `recorders`, and re-queue a recording
//! whose job was lost): `{prefix}:recordings:jobs`, entries `recording_id`, `room_id`.

/// Jobs kept in the stream (approximately): far more than can ever be waiting.
const STREAM_LENGTH: usize = 10_000;

pub fn stream_key(prefix: &str) -> String {
    format!("{prefix}:recordings:jobs")
}

/// The command that queues a job for `recording_id` (returns the entry id).
pub fn add(prefix: &str, recording_id: &str, room_id: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream_key(prefix))
        .arg("MAXLEN")
        .arg("~")
        .arg(STREAM_LENGTH)
        .arg("*")
        .arg("recording_id")
        .arg(recording_id)
        .arg("room_id")
        .arg(room_id);
    cmd
}
