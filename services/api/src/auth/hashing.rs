//! Argon2id hashing on a bounded pool.
//!
//! Hashing costs ~19 MiB and tens of milliseconds of CPU, so it never runs on the async workers.
//! `workers` dedicated threads hash (bounding CPU and memory) and at most `queue` more jobs wait;
//! beyond that callers get [`HashError::Overloaded`] at once (503 + `Retry-After`), so a login
//! flood cannot stall other requests or grow memory without bound.

use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the password hashing queue is full")]
    Overloaded,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// OWASP's argon2id baseline: m = 19 MiB, t = 2, p = 1.
pub fn argon2() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes synchronously; for one-off tools, never on a request path.
pub fn hash_blocking(password: &str) -> Result<String, HashError> {
    argon2().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| HashError::Failed(e.to_string()))
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of hashing threads fed through a bounded queue. Dedicated threads (rather than
/// the runtime's blocking pool) also bound the allocator arenas that hold argon2's memory.
#[derive(Clone)]
pub struct PasswordHasher {
    admission: Arc<Semaphore>,
    jobs: SyncSender<Job>,
    /// Verified against when the account does not exist, so timing does not reveal it.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub fn new(workers: usize, queue: usize) -> Self {
        let capacity = workers + queue;
        let (jobs, receiver) = std::sync::mpsc::sync_channel::<Job>(capacity);
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..workers {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("confab-hash-{index}"))
                .spawn(move || {
                    lower_priority();
                    // Ends when every sender (the hasher and its slots) is gone.
                    while let Ok(job) = receiver.lock().map_err(drop).and_then(|r| r.recv().map_err(drop)) {
                        job();
                    }
                })
                .expect("spawning a hashing thread");
        }
        let dummy_hash = hash_blocking("confab dummy password").expect("hashing a constant succeeds");
        Self { admission: Arc::new(Semaphore::new(capacity)), jobs, dummy_hash: dummy_hash.into() }
    }

    /// Claims a place in the pool, or fails at once when it is full. Claim it before any other
    /// work on a request, so a flood is turned away cheaply.
    pub fn reserve(&self) -> Result<HashSlot, HashError> {
        let permit = self.admission.clone().try_acquire_owned().map_err(|_| HashError::Overloaded)?;
        Ok(HashSlot { permit, jobs: self.jobs.clone(), dummy_hash: self.dummy_hash.clone() })
    }

    /// A PHC string for `password`.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        self.reserve()?.hash(password).await
    }

    /// Whether `password` matches `phc` (see [`HashSlot::verify`]).
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool, HashError> {
        self.reserve()?.verify(password, phc).await
    }
}

/// Puts the calling thread in the idle scheduling class (Linux `SCHED_IDLE`): it runs only on
/// CPU that request handling leaves, and any request thread that wakes up preempts it at once,
/// so a login flood cannot push up the latency of everything else. Not fatal when refused.
fn lower_priority() {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    let thread = thread_priority::thread_native_id();
    if let Err(e) = thread_priority::set_thread_priority_and_policy(thread, ThreadPriority::Min, idle) {
        tracing::debug!(error = ?e, "could not lower the hashing thread priority");
    }
}

/// A reserved place in the hashing pool, good for one job.
pub struct HashSlot {
    permit: OwnedSemaphorePermit,
    jobs: SyncSender<Job>,
    dummy_hash: Arc<str>,
}

impl HashSlot {
    pub async fn hash(self, password: &str) -> Result<String, HashError> {
        let password = password.to_owned();
        self.run(move || hash_blocking(&password)).await?
    }

    /// Whether `password` matches `phc`. With no `phc` (unknown account) it checks a dummy hash
    /// and answers false, taking the same time as a real check.
    pub async fn verify(self, password: &str, phc: Option<&str>) -> Result<bool, HashError> {
        let known = phc.is_some();
        let phc = phc.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let password = password.to_owned();
        let matched = self.run(move || argon2().verify_password(password.as_bytes(), phc.as_str()).is_ok()).await?;
        Ok(known && matched)
    }

    async fn run<T: Send + 'static>(self, job: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let (reply, answer) = oneshot::channel();
        let permit = self.permit;
        let job: Job = Box::new(move || {
            // The place is freed when the job is done, not when the request gives up waiting.
            let _permit = permit;
            if !reply.is_closed() {
                let _ = reply.send(job());
            }
        });
        // Never full: the admission permits are no more than the queue's capacity.
        self.jobs.try_send(job).map_err(|_| HashError::Overloaded)?;
        answer.await.map_err(|_| HashError::Failed("the hashing thread stopped".into()))
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
