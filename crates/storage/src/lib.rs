//! Where finished recordings are kept: a local directory (the default) or an S3-compatible
//! bucket, chosen by configuration. The recorder always writes into its recordings directory and
//! hands each finished file over with [`Storage::store`] (for S3 the directory is only a spool);
//! the API serves downloads and deletes through the same type. A file's key is its path relative
//! to the recordings directory, `{recording_id}/{file}.webm`, as in `recording_files.path`.

mod key;
mod s3;
mod settings;

use std::io;
use std::path::{Path, PathBuf};

pub use key::Key;
pub use object_store::ObjectMeta;
pub use s3::S3;
pub use settings::{S3Credentials, S3Settings, StorageSettings};

/// The configured storage. Cheap to clone: clones share one S3 client.
#[derive(Clone)]
pub enum Storage {
    /// Files stay where the recorder wrote them, in this directory.
    Local(PathBuf),
    S3(S3),
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0:?} is not a storage key")]
    BadKey(String),
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("object storage: {0}")]
    S3(#[from] object_store::Error),
}

impl Storage {
    /// The storage `settings` describe; `recordings_dir` is the local directory (for S3, the
    /// recorder's spool). Fails on settings the S3 client refuses; it does not contact the bucket.
    pub fn open(settings: &StorageSettings, recordings_dir: &Path) -> Result<Self, StorageError> {
        Ok(match settings {
            StorageSettings::Local => Self::Local(recordings_dir.to_owned()),
            StorageSettings::S3(s3) => Self::S3(S3::open(s3)?),
        })
    }

    /// Keeps the finished `file` (the recorder's file of `key`) under `key`. A local directory
    /// already holds it in place; S3 uploads it and then removes the local copy, which stays
    /// where it is if the upload fails.
    pub async fn store(&self, key: &Key, file: &Path) -> Result<(), StorageError> {
        match self {
            Self::Local(_) => Ok(()),
            Self::S3(s3) => s3.store(key, file).await,
        }
    }

    /// Removes every file under `prefix` (a recording's id); nothing there is not an error.
    pub async fn delete_all_under(&self, prefix: &Key) -> Result<(), StorageError> {
        match self {
            Self::Local(dir) => match tokio::fs::remove_dir_all(prefix.in_dir(dir)).await {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            },
            Self::S3(s3) => s3.delete_all_under(prefix).await,
        }
    }
}
