//! `CONFAB_STORAGE` and the `CONFAB_S3_*` keys, checked at start-up so that a bad value stops the
//! service with a message naming the variable (and never echoing a secret).

use std::fmt;

use confab_common::config::{ConfigError, Source, invalid, redact_url};

/// Which storage recordings go to.
#[derive(Debug, Clone, Default)]
pub enum StorageSettings {
    /// The recordings directory itself.
    #[default]
    Local,
    S3(S3Settings),
}

#[derive(Debug, Clone)]
pub struct S3Settings {
    pub bucket: String,
    /// For S3-compatible servers (MinIO, Garage, …), addressed path-style; unset means AWS.
    pub endpoint: Option<String>,
    pub region: String,
    /// Unset: the machine's own role (EC2 instance metadata).
    pub credentials: Option<S3Credentials>,
    /// Allow a plain `http://` endpoint (a server on the same machine or network).
    pub allow_http: bool,
}

#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

impl StorageSettings {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        match src.string("CONFAB_STORAGE", "local").as_str() {
            "local" => match src.get("CONFAB_S3_BUCKET") {
                Some(bucket) => Err(invalid("CONFAB_S3_BUCKET", bucket, "set CONFAB_STORAGE=s3 to store in S3")),
                None => Ok(Self::Local),
            },
            "s3" => S3Settings::from_source(src).map(Self::S3),
            other => Err(invalid("CONFAB_STORAGE", other, "must be local or s3")),
        }
    }
}

impl S3Settings {
    fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let bucket = src.required("CONFAB_S3_BUCKET")?;
        if !is_bucket_name(&bucket) {
            let reason = "3 to 63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit";
            return Err(invalid("CONFAB_S3_BUCKET", &bucket, reason));
        }
        let allow_http = src.parse("CONFAB_S3_ALLOW_HTTP", false)?;
        let endpoint = match src.get("CONFAB_S3_ENDPOINT") {
            None => None,
            Some(_) => Some(src.url("CONFAB_S3_ENDPOINT", "", &["https", "http"])?),
        };
        if let Some(endpoint) = endpoint.as_deref().filter(|e| e.starts_with("http://") && !allow_http) {
            let reason = "a plain http endpoint needs CONFAB_S3_ALLOW_HTTP=true";
            return Err(invalid("CONFAB_S3_ENDPOINT", &redact_url(endpoint), reason));
        }
        let credentials = match (src.get("CONFAB_S3_ACCESS_KEY_ID"), src.get("CONFAB_S3_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => {
                Some(S3Credentials { access_key_id: id.to_owned(), secret_access_key: secret.to_owned() })
            }
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError::Missing { key: "CONFAB_S3_SECRET_ACCESS_KEY".into() }),
            (None, Some(_)) => return Err(ConfigError::Missing { key: "CONFAB_S3_ACCESS_KEY_ID".into() }),
        };
        Ok(Self { bucket, endpoint, region: src.string("CONFAB_S3_REGION", "us-east-1"), credentials, allow_http })
    }
}

fn is_bucket_name(name: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge_ok(name.chars().next())
        && edge_ok(name.chars().last())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<StorageSettings, String> {
        let src = Source::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        StorageSettings::from_source(&src).map_err(|e| e.to_string())
    }

    const S3: (&str, &str) = ("CONFAB_STORAGE", "s3");
    const BUCKET: (&str, &str) = ("CONFAB_S3_BUCKET", "recordings");

    #[test]
    fn local_is_the_default() {
        assert!(matches!(settings(&[]), Ok(StorageSettings::Local)));
        assert!(matches!(settings(&[("CONFAB_STORAGE", "local")]), Ok(StorageSettings::Local)));
    }

    #[test]
    fn s3_with_an_endpoint_and_keys_from_files() {
        let dir = std::env::temp_dir().join(format!("confab-storage-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("secret"), "s3cr3t\n").unwrap();
        let secret_file = dir.join("secret").to_string_lossy().into_owned();
        let parsed = settings(&[
            S3,
            BUCKET,
            ("CONFAB_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("CONFAB_S3_ALLOW_HTTP", "true"),
            ("CONFAB_S3_ACCESS_KEY_ID", "AKID"),
            ("CONFAB_S3_SECRET_ACCESS_KEY_FILE", &secret_file),
        ]);
        std::fs::remove_dir_all(dir).unwrap();
        let Ok(StorageSettings::S3(s3)) = parsed else { panic!("{parsed:?}") };
        assert_eq!((s3.bucket.as_str(), s3.region.as_str(), s3.allow_http), ("recordings", "us-east-1", true));
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        let credentials = s3.credentials.unwrap();
        assert_eq!(credentials.secret_access_key, "s3cr3t");
        assert!(!format!("{credentials:?}").contains("s3cr3t"), "Debug never shows the secret");
    }

    #[test]
    fn bad_s3_settings_name_the_variable_and_never_the_secret() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("CONFAB_STORAGE", "ftp")], "CONFAB_STORAGE"),
            (&[S3], "CONFAB_S3_BUCKET is required"),
            (&[S3, ("CONFAB_S3_BUCKET", "Bad_Bucket")], "CONFAB_S3_BUCKET"),
            (&[BUCKET], "CONFAB_STORAGE=s3"),
            (&[S3, BUCKET, ("CONFAB_S3_ENDPOINT", "ftp://x")], "CONFAB_S3_ENDPOINT"),
            (&[S3, BUCKET, ("CONFAB_S3_ENDPOINT", "http://127.0.0.1:9000")], "CONFAB_S3_ALLOW_HTTP=true"),
            (&[S3, BUCKET, ("CONFAB_S3_ALLOW_HTTP", "yes")], "CONFAB_S3_ALLOW_HTTP"),
            (&[S3, BUCKET, ("CONFAB_S3_SECRET_ACCESS_KEY", "s3cr3t")], "CONFAB_S3_ACCESS_KEY_ID"),
            (&[S3, BUCKET, ("CONFAB_S3_ACCESS_KEY_ID", "AKID")], "CONFAB_S3_SECRET_ACCESS_KEY"),
        ];
        for (pairs, named) in cases {
            let err = settings(pairs).expect_err(named);
            assert!(err.contains(named), "{err} should name {named}");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }
}
