//! The S3-compatible backend (AWS, MinIO, Garage, …) on `object_store`. Uploads go through a
//! buffered writer that switches to a multipart upload once a file outgrows one part, so memory
//! stays bounded whatever the file's size. Reads fetch a range in bounded chunks, one request
//! each: a slow downloader then never holds a request open past the client's timeout.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt, stream};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, RetryConfig};
use tokio::io::AsyncWriteExt;

use crate::{Key, S3Settings, StorageError};

/// Bytes per upload part (S3 wants at least 5 MiB) and per download request.
const PART: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once.
const UPLOAD_CONCURRENCY: usize = 2;

/// A bucket. Clones share one client.
#[derive(Clone)]
pub struct S3 {
    store: Arc<dyn ObjectStore>,
}

impl S3 {
    pub fn open(settings: &S3Settings) -> Result<Self, object_store::Error> {
        let retry = RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(30), ..Default::default() };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_allow_http(settings.allow_http)
            .with_retry(retry);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(credentials) = &settings.credentials {
            builder = builder
                .with_access_key_id(&credentials.access_key_id)
                .with_secret_access_key(&credentials.secret_access_key);
        }
        Ok(Self { store: Arc::new(builder.build()?) })
    }

    /// Uploads `file` under `key`, then removes `file`.
    pub async fn store(&self, key: &Key, file: &Path) -> Result<(), StorageError> {
        let mut source = tokio::fs::File::open(file).await?;
        let mut upload =
            BufWriter::with_capacity(self.store.clone(), path(key)?, PART).with_max_concurrency(UPLOAD_CONCURRENCY);
        if let Err(e) = tokio::io::copy(&mut source, &mut upload).await {
            // The parts already sent go with the aborted upload. (Once completing has begun it
            // cannot be aborted; a bucket lifecycle rule clears what a failure there leaves.)
            let _ = upload.abort().await;
            return Err(e.into());
        }
        upload.shutdown().await?;
        tokio::fs::remove_file(file).await?;
        Ok(())
    }

    /// Size, ETag and modification time of `key`; `None` when it is not there.
    pub async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>, StorageError> {
        match self.store.head(&path(key)?).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The bytes of `range` of `key`, as they arrive.
    pub fn read(&self, key: &Key, range: Range<u64>) -> impl Stream<Item = Result<Bytes, StorageError>> + 'static {
        let (store, key) = (self.store.clone(), key.clone());
        stream::try_unfold(range.start, move |at| {
            let (store, key) = (store.clone(), key.clone());
            async move {
                if at >= range.end {
                    return Ok(None);
                }
                let until = range.end.min(at + PART as u64);
                let chunk = store.get_range(&path(&key)?, at..until).await?;
                Ok(Some((chunk, until)))
            }
        })
    }

    /// Deletes every object under `prefix/`.
    pub async fn delete_all_under(&self, prefix: &Key) -> Result<(), StorageError> {
        let listed = self.store.list(Some(&path(prefix)?)).map_ok(|meta| meta.location).boxed();
        self.store.delete_stream(listed).try_for_each(|_| async { Ok(()) }).await?;
        Ok(())
    }
}

fn path(key: &Key) -> Result<ObjectPath, StorageError> {
    ObjectPath::parse(key.as_str()).map_err(|_| StorageError::BadKey(key.as_str().to_owned()))
}
