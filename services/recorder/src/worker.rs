//! Takes recording jobs and sees each through: claim the row, join the call as the hidden
//! recorder, stay until the API stops the recording (or the room goes away), leave, and record
//! the outcome. Several recordings run side by side, one task each.

use std::sync::Arc;
use std::time::Duration;

use confab_common::tokens::SigningKeys;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::call::{Call, Identity, Recorded};
use crate::jobs::{Job, JobQueue};
use crate::settings::Settings;
use crate::status::{self, Claim};

/// How often a running recording renews its job claim and checks for a stop.
const TICK: Duration = Duration::from_millis(500);
/// How long one ask for work waits.
const POLL: Duration = Duration::from_secs(2);

pub struct Worker {
    pub settings: Settings,
    pub db: PgPool,
    pub queue: JobQueue,
    pub keys: SigningKeys,
}

impl Worker {
    /// Takes jobs until `shutdown` turns true. Recordings in progress are left to their tasks;
    /// if the process exits under them, another recorder takes their jobs over.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while let Err(e) = self.queue.ensure_group().await {
            tracing::warn!(error = %e, "cannot create the job consumer group; retrying");
            tokio::time::sleep(POLL).await;
        }
        loop {
            let next = tokio::select! {
                next = self.queue.next(POLL) => next,
                _ = shutdown.changed() => return,
            };
            match next {
                Ok(Some(job)) => {
                    let worker = self.clone();
                    tokio::spawn(async move { worker.record(job).await });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read recording jobs");
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }

    async fn record(&self, job: Job) {
        let recorder = &self.settings.instance_id;
        let Ok(recording_id) = Uuid::parse_str(&job.recording_id) else {
            tracing::warn!(job = %job.entry, "dropping a job without a valid recording id");
            let _ = self.queue.complete(&job).await;
            return;
        };
        match status::claim(&self.db, recording_id, recorder).await {
            Ok(Claim::Record) => {}
            Ok(Claim::Nothing) => {
                let _ = self.queue.complete(&job).await;
                return;
            }
            // Left unacknowledged: it comes back once the claim is stale.
            Err(e) => return tracing::warn!(recording.id = %recording_id, error = %e, "cannot claim the recording"),
        }
        tracing::info!(recording.id = %recording_id, room.id = %job.room_id, "recording claimed");
        let identity = Identity { keys: &self.keys, issuer: &self.settings.jwt_issuer, recorder_id: recorder };
        let dir = self.settings.recordings_dir.join(recording_id.to_string());
        if let Err(e) = tokio::fs::create_dir_all(&dir).await {
            tracing::warn!(recording.id = %recording_id, error = %e, "cannot create the recording's directory");
        }
        let outcome = match Call::join(&identity, &self.settings.gateway_urls, &job.room_id, &job.recording_id).await {
            Ok(call) => {
                if let Err(e) = status::mark_recording(&self.db, recording_id, recorder).await {
                    tracing::warn!(recording.id = %recording_id, error = %e, "cannot mark the recording as running");
                }
                let ended = call.record_until(&dir, self.stop_requested(&job, recording_id)).await;
                self.save_files(recording_id, &ended.recorded).await;
                self.outcome(recording_id, ended.stopped, &ended.failures).await
            }
            Err(e) => {
                tracing::warn!(recording.id = %recording_id, error = %e, "cannot join the call");
                // The details (gateway addresses) stay in the log, not in what members can read.
                ("failed", Some("could not join the call".to_owned()))
            }
        };
        let (final_status, reason) = outcome;
        match status::finish(&self.db, recording_id, recorder, final_status, reason.as_deref()).await {
            Ok(_) => tracing::info!(recording.id = %recording_id, status = final_status, "recording finished"),
            Err(e) => tracing::warn!(recording.id = %recording_id, error = %e, "cannot record the outcome"),
        }
        if let Err(e) = self.queue.complete(&job).await {
            tracing::warn!(recording.id = %recording_id, error = %e, "cannot acknowledge the job");
        }
    }

    /// Completes once the API asked for a stop; meanwhile keeps the job's claim fresh.
    async fn stop_requested(&self, job: &Job, recording_id: Uuid) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            if let Err(e) = self.queue.renew(job).await {
                tracing::warn!(recording.id = %recording_id, error = %e, "cannot renew the job claim");
            }
            if status::stop_requested(&self.db, recording_id).await.unwrap_or(false) {
                return;
            }
        }
    }

    /// Records a row for every finished file.
    async fn save_files(&self, recording_id: Uuid, recorded: &[Recorded]) {
        for participant in recorded {
            for file in &participant.files {
                let relative = file.path.strip_prefix(&self.settings.recordings_dir).unwrap_or(&file.path);
                let saved =
                    status::add_file(&self.db, recording_id, participant, &relative.to_string_lossy(), file).await;
                if let Err(e) = saved {
                    tracing::warn!(recording.id = %recording_id, error = %e, "cannot record a finished file");
                }
            }
        }
    }

    /// The final status: files make it `ready`; none means no participant sent media. A call
    /// that ended under the recorder (room deleted, gateway gone) without a stop, or a participant
    /// whose media could not be written, makes it `partial`.
    async fn outcome(&self, recording_id: Uuid, stopped: bool, failures: &[String]) -> (&'static str, Option<String>) {
        let files = status::file_count(&self.db, recording_id).await.unwrap_or(0);
        match (stopped, files, failures.first()) {
            (_, 0, None) => ("failed", Some("no media was received".into())),
            (_, 0, Some(failure)) => ("failed", Some(failure.clone())),
            (true, _, None) => ("ready", None),
            (true, _, Some(failure)) => ("partial", Some(failure.clone())),
            (false, _, _) => ("partial", Some("the call ended before the recording was stopped".into())),
        }
    }
}
