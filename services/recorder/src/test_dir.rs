//! A temporary directory for the crate's unit tests, removed when dropped.

use std::fs;
use std::path::PathBuf;

pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory whose name starts with `confab-{name}`.
    pub fn new(name: &str) -> Self {
        let nanos = std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("confab-{name}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
