//! Recording storage on the S3-compatible server `deploy/local/test` starts.

use confab_storage::{S3Credentials, S3Settings, StorageSettings};

use crate::env;

/// S3 storage in `bucket` of the test server (`S3_ENDPOINT`; `S3_BUCKET` is the bucket it creates).
pub fn s3_settings(bucket: &str) -> StorageSettings {
    StorageSettings::S3(S3Settings {
        bucket: bucket.to_owned(),
        endpoint: Some(env("S3_ENDPOINT")),
        region: "us-east-1".into(),
        credentials: Some(S3Credentials { access_key_id: "confab".into(), secret_access_key: "confab-test".into() }),
        allow_http: true,
    })
}
