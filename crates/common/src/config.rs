//! Configuration from the environment, an optional file and `*_FILE` secrets.
//!
//! Every Confab service reads its settings through [`Source`]: defaults in code, then the file
//! named by `CONFAB_CONFIG_FILE` (`KEY=value` lines), then the process environment. A key ending
//! in `_FILE` supplies the value of the key without that suffix from a file, so secrets need not
//! sit in the environment. A `CONFAB_*` key that no service knows is an error at start-up:
//! a typo must not silently fall back to a default.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

/// Every key any Confab service understands. Shared so one environment can serve all services.
pub const KNOWN_KEYS: &[&str] = &[
    "CONFAB_CONFIG_FILE",
    "CONFAB_LOG_FORMAT",
    "CONFAB_RECORDINGS_DIR",
    "CONFAB_STORAGE",
    "CONFAB_S3_BUCKET",
    "CONFAB_S3_ENDPOINT",
    "CONFAB_S3_REGION",
    "CONFAB_S3_ACCESS_KEY_ID",
    "CONFAB_S3_SECRET_ACCESS_KEY",
    "CONFAB_S3_ALLOW_HTTP",
    "CONFAB_WEB_DIR",
    "CONFAB_LOG_LEVEL",
    "CONFAB_BIND",
    "CONFAB_PUBLIC_URL",
    "CONFAB_GATEWAY_URLS",
    "CONFAB_JWKS_URL",
    "CONFAB_ALLOWED_ORIGINS",
    "CONFAB_INSTANCE_ID",
    "CONFAB_STUN_URLS",
    "CONFAB_TURN_URLS",
    "CONFAB_TURN_SECRET",
    "CONFAB_TURN_TTL_SECS",
    "CONFAB_JWT_KEY",
    "CONFAB_JWT_ISSUER",
    "CONFAB_ACCESS_TOKEN_TTL_SECS",
    "CONFAB_REFRESH_TOKEN_TTL_DAYS",
    "CONFAB_REFRESH_REUSE_GRACE_MS",
    "CONFAB_HASH_WORKERS",
    "CONFAB_HASH_QUEUE",
    "CONFAB_LOGIN_RATE_PER_IP",
    "CONFAB_LOGIN_RATE_PER_ACCOUNT",
    "CONFAB_LOGIN_FAILURES_PER_ACCOUNT_HOUR",
    "CONFAB_SIGNUP_RATE_PER_IP",
    "CONFAB_BODY_READ_TIMEOUT_SECS",
    "CONFAB_REDIS_PREFIX",
    "CONFAB_DB_MAX_CONNECTIONS",
    "CONFAB_WEBHOOK_RETRY_BASE_SECS",
    "CONFAB_WEBHOOK_RETRY_MAX_SECS",
    "CONFAB_WEBHOOK_RETRY_WINDOW_SECS",
    "CONFAB_WEBHOOK_TIMEOUT_SECS",
    "CONFAB_WEBHOOK_RETENTION_DAYS",
    "CONFAB_CAMERA_KEY",
    "CONFAB_CAMERA_ALLOWED_HOSTS",
    "CONFAB_CAMERA_ALLOW_PRIVATE_NETWORKS",
    "CONFAB_RECORDER_MIN_FREE_BYTES",
    "CONFAB_MEDIA_BIND",
    "CONFAB_MEDIA_ADDRESS",
    "CONFAB_MEDIA_THREADS",
    "CONFAB_SFU_CAPACITY",
];

/// Conventional variables read without the `CONFAB_` prefix.
const CONVENTIONAL_KEYS: &[&str] = &["DATABASE_URL", "REDIS_URL"];

/// A start-up configuration problem; the message always names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key}: unknown configuration key (known keys: see docs/operations.md)")]
    Unknown { key: String },
    #[error("{key} is required but not set")]
    Missing { key: String },
    #[error("{key}={value:?} is invalid: {reason}")]
    Invalid { key: String, value: String, reason: String },
    #[error("{key}: cannot read {path}: {reason}")]
    File { key: String, path: String, reason: String },
}

/// The merged key/value pairs a service builds its settings from.
#[derive(Debug, Clone, Default)]
pub struct Source {
    values: HashMap<String, String>,
}

impl Source {
    /// Reads the process environment (and the config file it names) and rejects unknown keys.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Builds a source from explicit pairs, applying the same rules as [`Source::from_env`].
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = vars.into_iter().filter(|(k, _)| is_config_key(k)).collect();
        let mut merged = HashMap::new();
        if let Some(path) = env.get("CONFAB_CONFIG_FILE") {
            merged.extend(read_config_file("CONFAB_CONFIG_FILE", path)?);
        }
        merged.extend(env);
        let mut values = HashMap::new();
        for (key, value) in merged {
            if let Some(base) = key.strip_suffix("_FILE").filter(|b| is_known(b)) {
                let secret = std::fs::read_to_string(&value).map_err(|e| ConfigError::File {
                    key: key.clone(),
                    path: value.clone(),
                    reason: e.to_string(),
                })?;
                values.insert(base.to_owned(), secret.trim_end().to_owned());
            } else if is_known(&key) {
                values.entry(key).or_insert(value);
            } else {
                return Err(ConfigError::Unknown { key });
            }
        }
        Ok(Self { values })
    }

    /// The raw value of `key`, if set and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The value of `key`, or an error naming it.
    pub fn required(&self, key: &str) -> Result<String, ConfigError> {
        self.get(key).map(str::to_owned).ok_or_else(|| ConfigError::Missing { key: key.to_owned() })
    }

    /// The value of `key` or `default`.
    pub fn string(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or(default).to_owned()
    }

    /// `key` parsed as `T`, or `default` when unset.
    pub fn parse<T>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e: T::Err| invalid(key, raw, e.to_string())),
        }
    }

    /// An integer in `min..=max`, or `default` when unset.
    pub fn number(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        let value: u64 = self.parse(key, default)?;
        if (min..=max).contains(&value) {
            Ok(value)
        } else {
            Err(invalid(key, &value.to_string(), format!("must be between {min} and {max}")))
        }
    }

    /// A duration given in whole seconds, bounded like [`Source::number`].
    pub fn seconds(&self, key: &str, default: u64, min: u64, max: u64) -> Result<Duration, ConfigError> {
        self.number(key, default, min, max).map(Duration::from_secs)
    }

    /// A comma-separated list (blanks dropped), each item starting with one of `prefixes`.
    pub fn list(&self, key: &str, default: &str, prefixes: &[&str]) -> Result<Vec<String>, ConfigError> {
        let items: Vec<String> =
            self.string(key, default).split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        match items.iter().find(|item| !prefixes.iter().any(|p| item.starts_with(p))) {
            Some(bad) => Err(invalid(key, bad, format!("each item must start with {}", prefixes.join(" or ")))),
            None => Ok(items),
        }
    }

    /// `CONFAB_GATEWAY_URLS`: the gateways' `/v1/signal` WebSocket URLs, at least one (the API
    /// hands them out with tickets; the recorder joins calls through them).
    pub fn gateway_urls(&self) -> Result<Vec<String>, ConfigError> {
        let key = "CONFAB_GATEWAY_URLS";
        let urls =
            self.list(key, "ws://127.0.0.1:8081/v1/signal,ws://127.0.0.1:8082/v1/signal", &["ws://", "wss://"])?;
        if urls.is_empty() {
            return Err(invalid(key, "", "at least one gateway URL is needed"));
        }
        Ok(urls)
    }

    /// A URL with one of the given schemes.
    pub fn url(&self, key: &str, default: &str, schemes: &[&str]) -> Result<String, ConfigError> {
        let value = self.string(key, default);
        let scheme = value.split_once("://").map(|(s, _)| s).unwrap_or("");
        if schemes.contains(&scheme) {
            Ok(value)
        } else {
            let shown = redact_url(&value);
            Err(invalid(key, &shown, format!("must be a URL with scheme {}", schemes.join(" or "))))
        }
    }
}

/// Builds the error for a bad value of `key`.
pub fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_owned(), value: value.to_owned(), reason: reason.into() }
}

/// A URL with any password replaced, safe to print in an error.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{user}:***@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn is_config_key(key: &str) -> bool {
    key.starts_with("CONFAB_") || CONVENTIONAL_KEYS.iter().any(|k| key == *k || key.strip_suffix("_FILE") == Some(k))
}

fn is_known(key: &str) -> bool {
    KNOWN_KEYS.contains(&key) || CONVENTIONAL_KEYS.contains(&key)
}

fn read_config_file(key: &str, path: &str) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        key: key.to_owned(),
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let mut values = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(ConfigError::File {
                key: key.to_owned(),
                path: path.to_owned(),
                reason: format!("line {}: expected KEY=value", number + 1),
            });
        };
        values.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(pairs: &[(&str, &str)]) -> Result<Source, ConfigError> {
        Source::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn unknown_confab_keys_are_rejected_by_name() {
        let err = source(&[("CONFAB_BIDN", "x")]).unwrap_err();
        assert!(err.to_string().starts_with("CONFAB_BIDN"), "{err}");
    }

    #[test]
    fn unrelated_environment_is_ignored() {
        let src = source(&[("HOME", "/root"), ("PATH", "/bin")]).unwrap();
        assert_eq!(src.get("HOME"), None);
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        let src = source(&[("CONFAB_HASH_WORKERS", "many")]).unwrap();
        let err = src.number("CONFAB_HASH_WORKERS", 1, 1, 64).unwrap_err();
        assert!(err.to_string().contains("CONFAB_HASH_WORKERS"), "{err}");
        let src = source(&[("CONFAB_HASH_WORKERS", "0")]).unwrap();
        assert!(src.number("CONFAB_HASH_WORKERS", 1, 1, 64).is_err());
    }

    #[test]
    fn file_suffix_reads_the_secret_from_a_file() {
        let dir = std::env::temp_dir().join(format!("confab-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db");
        std::fs::write(&path, "postgres://u:p@h/db\n").unwrap();
        let src = source(&[("DATABASE_URL_FILE", path.to_str().unwrap())]).unwrap();
        assert_eq!(src.get("DATABASE_URL"), Some("postgres://u:p@h/db"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn environment_overrides_the_config_file() {
        let dir = std::env::temp_dir().join(format!("confab-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("confab.env");
        std::fs::write(&path, "# comment\nCONFAB_BIND=0.0.0.0:1\nCONFAB_LOG_LEVEL=debug\n").unwrap();
        let file = path.to_str().unwrap();
        let src = source(&[("CONFAB_CONFIG_FILE", file), ("CONFAB_BIND", "127.0.0.1:2")]).unwrap();
        assert_eq!(src.get("CONFAB_BIND"), Some("127.0.0.1:2"));
        assert_eq!(src.get("CONFAB_LOG_LEVEL"), Some("debug"));
        std::fs::write(&path, "CONFAB_NOPE=1\n").unwrap();
        assert!(source(&[("CONFAB_CONFIG_FILE", file)]).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn lists_drop_blanks_and_check_every_item() {
        let src = source(&[("CONFAB_STUN_URLS", " stun:a , ,stuns:b")]).unwrap();
        assert_eq!(src.list("CONFAB_STUN_URLS", "", &["stun:", "stuns:"]).unwrap(), ["stun:a", "stuns:b"]);
        let src = source(&[("CONFAB_STUN_URLS", "stun:a,http://b")]).unwrap();
        let err = src.list("CONFAB_STUN_URLS", "", &["stun:"]).unwrap_err();
        assert!(err.to_string().contains("CONFAB_STUN_URLS") && err.to_string().contains("http://b"), "{err}");
    }

    #[test]
    fn urls_are_checked_and_passwords_never_echoed() {
        let src = source(&[("DATABASE_URL", "mysql://u:secret@h/db")]).unwrap();
        let err = src.url("DATABASE_URL", "", &["postgres", "postgresql"]).unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"));
        assert!(!err.to_string().contains("secret"));
    }
}
