//! Storage keys, validated once so that no key can name a place outside the recordings: not in
//! the local directory, not elsewhere in the bucket.

use std::path::{Path, PathBuf};

use crate::StorageError;

/// A relative path of plain `/`-separated segments, e.g. `{recording_id}/{file}.webm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    /// Refuses absolute paths, empty segments, `.` and `..`.
    pub fn parse(raw: impl Into<String>) -> Result<Self, StorageError> {
        let raw = raw.into();
        let plain = raw.split('/').all(|segment| !matches!(segment, "" | "." | "..") && !segment.contains('\\'));
        if plain { Ok(Self(raw)) } else { Err(StorageError::BadKey(raw)) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where the file of this key lies under `dir`.
    pub fn in_dir(&self, dir: &Path) -> PathBuf {
        dir.join(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_recordings() {
        let key = Key::parse("r1/f1.webm").unwrap();
        assert_eq!(key.in_dir(Path::new("/data/recordings")), PathBuf::from("/data/recordings/r1/f1.webm"));
        for hostile in ["/etc/passwd", "../secrets", "r1/../../x", "./r1/f1.webm", "r1//f1.webm", "r1\\..\\x", ""] {
            assert!(Key::parse(hostile).is_err(), "{hostile}");
        }
    }
}
