//! A directory of a test's own that is gone when the test ends, and the external tools
//! (ffmpeg, ffprobe) that judge the media files tests produce.

use std::path::PathBuf;
use std::process::Command;

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory whose name starts with `confab-{name}`.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("confab-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `program` with `args`; its stdout and stderr. A missing tool fails the test: the
/// provisioning scripts install ffmpeg, so its absence is a broken setup, not a reason to skip.
pub fn run_tool(program: &str, args: &[&str]) -> (String, String) {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {program} ({e}): install ffmpeg (deploy/local/lib.sh's ensure_packages does, with apt-get)")
    });
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{program} {args:?} failed: {stderr}");
    (stdout.into_owned(), stderr.into_owned())
}
