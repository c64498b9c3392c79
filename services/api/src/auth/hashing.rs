//! Argon2id hashing on a bounded pool.
//!
//! Hashing costs ~19 MiB and tens of milliseconds of CPU, so it never runs on the async workers.
//! At most `workers` hashes run at once (bounding CPU and memory) and at most `queue` more wait;
//! beyond that callers get [`HashError::Overloaded`] at once (503 + `Retry-After`), so a login
//! flood cannot stall other requests or grow memory without bound.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the password hashing queue is full")]
    Overloaded,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// OWASP's argon2id baseline (SPEC §6): m = 19 MiB, t = 2, p = 1.
pub fn argon2() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes synchronously; for one-off tools, never on a request path.
pub fn hash_blocking(password: &str) -> Result<String, HashError> {
    argon2().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| HashError::Failed(e.to_string()))
}

#[derive(Clone)]
pub struct PasswordHasher {
    admission: Arc<Semaphore>,
    workers: Arc<Semaphore>,
    /// Verified against when the account does not exist, so timing does not reveal it.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub fn new(workers: usize, queue: usize) -> Self {
        let dummy_hash = hash_blocking("confab dummy password").expect("hashing a constant succeeds");
        Self {
            admission: Arc::new(Semaphore::new(workers + queue)),
            workers: Arc::new(Semaphore::new(workers)),
            dummy_hash: dummy_hash.into(),
        }
    }

    /// A PHC string for `password`.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = password.to_owned();
        self.run(move || hash_blocking(&password)).await?
    }

    /// Whether `password` matches `phc`. With no `phc` (unknown account) it checks a dummy hash
    /// and answers false, taking the same time as a real check.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool, HashError> {
        let known = phc.is_some();
        let phc = phc.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let password = password.to_owned();
        let matched = self.run(move || argon2().verify_password(password.as_bytes(), phc.as_str()).is_ok()).await?;
        Ok(known && matched)
    }

    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let _admitted = self.admission.clone().try_acquire_owned().map_err(|_| HashError::Overloaded)?;
        let worker = self.workers.clone().acquire_owned().await.map_err(|e| HashError::Failed(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            // Held by the thread, not the future: an abandoned request cannot free its slot early.
            let _worker = worker;
            job()
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_phc_strings_with_the_configured_cost() {
        let phc = hash_blocking("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    }

    #[tokio::test]
    async fn verify_accepts_the_password_and_nothing_else() {
        let hasher = PasswordHasher::new(1, 4);
        let phc = hasher.hash("correct horse battery").await.unwrap();
        assert!(hasher.verify("correct horse battery", Some(&phc)).await.unwrap());
        assert!(!hasher.verify("correct horse batterY", Some(&phc)).await.unwrap());
        assert!(!hasher.verify("confab dummy password", None).await.unwrap(), "unknown accounts never match");
    }

    #[tokio::test]
    async fn beyond_the_queue_callers_are_refused_at_once() {
        let hasher = PasswordHasher::new(1, 1);
        let jobs: Vec<_> = (0..6)
            .map(|_| {
                let h = hasher.clone();
                tokio::spawn(async move { h.hash("some password").await })
            })
            .collect();
        let mut overloaded = 0;
        for job in jobs {
            if matches!(job.await.unwrap(), Err(HashError::Overloaded)) {
                overloaded += 1;
            }
        }
        assert!(overloaded >= 4, "only two of six may be admitted, {overloaded} refused");
    }
}
