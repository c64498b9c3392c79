//! How much room the recordings directory has left. A recording that fills the disk ends
//! `partial` at that moment, so the recorder starts none while the free space is below its floor
//! (`CONFAB_RECORDER_MIN_FREE_BYTES`) and leaves it to a recorder with room.

use std::io;
use std::path::Path;

/// The bytes an unprivileged process may still write on the filesystem holding `dir` (created if
/// missing).
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    std::fs::create_dir_all(dir)?;
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}
