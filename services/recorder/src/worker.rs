//! Takes recording jobs and sees each through: claim the row, join the call as the hidden
//! recorder, stay until the API stops the recording (or the room goes away), leave, and record
//! the outcome. Several recordings run side by side, one task each. Beside them, a reconciler
//! re-queues recordings whose recorder went silent, so a lost job never leaves a row stuck.
//! On shutdown each running recording finishes its files (seekable, kept and registered) and is
//! handed over: re-queued at once for another recorder, which continues it into new files.
//! A recorder whose disk is short of room starts no recording: like LiveKit's egress, which takes
//! no request it lacks the resources for, it puts the job back for a recorder with room, and
//! fails the recording, saying why, only when none has taken it for [`ROOM_WAIT`].

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_call::{Pass, Seat};
use confab_common::tokens::SigningKeys;
use confab_domain::{CallRole, RecordingId, RecordingStatus};
use confab_storage::Storage;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::archive::Archive;
use crate::call::{Outcome, REJOIN, RecordedCall};
use crate::jobs::{Job, JobQueue};
use crate::settings::Settings;
use crate::store::{self, Claim};

/// How often a running recording renews its job claim, tells it is alive, and checks for a stop.
const TICK: Duration = Duration::from_millis(500);
/// How long one ask for work waits: also how long a dead recorder's jobs may wait, once its
/// heartbeat key has expired, for another recorder to take them over.
const POLL: Duration = Duration::from_millis(500);
/// How often the recorder's heartbeat key is renewed (it lives 10 s).
const HEARTBEAT: Duration = Duration::from_secs(3);
/// How long a new recording may wait for a recorder with room on its disk before it fails.
const ROOM_WAIT: Duration = Duration::from_secs(10);
/// How often a recorder short of room asks for work, so that recorders with room get it first.
const SHORT_OF_ROOM_POLL: Duration = Duration::from_secs(3);
/// How long a job may wait for its row: the API queues the job just before it commits the row,
/// so a recorder can see the job first. A row still missing after this was never committed.
const ROW_WAIT: Duration = Duration::from_secs(5);

pub struct Worker {
    pub settings: Settings,
    pub db: PgPool,
    pub queue: JobQueue,
    pub keys: Arc<SigningKeys>,
    /// Where finished files go.
    pub storage: Storage,
    /// Recordings this process works on.
    active: Mutex<HashSet<RecordingId>>,
}

impl Worker {
    pub fn new(settings: Settings, db: PgPool, queue: JobQueue, keys: SigningKeys, storage: Storage) -> Self {
        Self { settings, db, queue, keys: Arc::new(keys), storage, active: Mutex::default() }
    }

    /// Takes jobs until `shutdown` turns true, renewing the recorder's heartbeat key meanwhile;
    /// then returns once every recording in progress has kept its files and been handed over.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while let Err(e) = self.queue.ensure_group().await {
            tracing::warn!(error = %e, "cannot create the job consumer group; retrying");
            tokio::time::sleep(POLL).await;
        }
        tokio::spawn(self.clone().reconcile(shutdown.clone()));
        let mut last_heartbeat: Option<tokio::time::Instant> = None;
        let mut recordings = JoinSet::new();
        loop {
            while recordings.try_join_next().is_some() {}
            if last_heartbeat.is_none_or(|at| at.elapsed() >= HEARTBEAT) && self.beat().await {
                last_heartbeat = Some(tokio::time::Instant::now());
            }
            if self.short_of_room().is_some() {
                tokio::select! {
                    () = tokio::time::sleep(SHORT_OF_ROOM_POLL) => {}
                    _ = shutdown.changed() => break,
                }
            }
            let next = tokio::select! {
                next = self.queue.next(POLL) => next,
                _ = shutdown.changed() => break,
            };
            match next {
                Ok(Some(job)) => {
                    let worker = self.clone();
                    let shutdown = shutdown.clone();
                    recordings.spawn(async move { worker.take(job, shutdown).await });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read recording jobs");
                    tokio::time::sleep(POLL).await;
                }
            }
        }
        if !recordings.is_empty() {
            tracing::info!(recordings = recordings.len(), "shutting down: handing the recordings over");
        }
        // The heartbeat goes on until every recording is handed over: without it another recorder
        // would take them over while their files are still being finished.
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                joined = recordings.join_next() => if joined.is_none() { break },
                _ = heartbeat.tick() => { self.beat().await; }
            }
        }
    }

    /// Renews the recorder's heartbeat key; whether that worked.
    async fn beat(&self) -> bool {
        let renewed = self.queue.heartbeat().await;
        if let Err(e) = &renewed {
            tracing::warn!(error = %e, "cannot renew the recorder heartbeat");
        }
        renewed.is_ok()
    }

    /// Re-queues, at start-up and then every `reclaim_after`, the recordings whose recorder went
    /// silent (and at start-up those left under this instance id by a process that died).
    async fn reconcile(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut mine = Some(self.settings.instance_id.as_str());
        loop {
            match store::orphaned(&self.db, mine.take(), self.settings.reclaim_after).await {
                Ok(orphans) => {
                    for (recording_id, room_id) in orphans {
                        tracing::info!(recording.id = %recording_id, "re-queueing a recording whose recorder went silent");
                        let queued = self.queue.requeue(&recording_id.to_string(), &room_id.to_string()).await;
                        if let Err(e) = queued {
                            tracing::warn!(recording.id = %recording_id, error = %e, "cannot re-queue a recording");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot look for orphaned recordings"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.reclaim_after) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Works on a job unless this process already does (a re-queued duplicate).
    async fn take(&self, job: Job, shutdown: watch::Receiver<bool>) {
        let Ok(recording_id) = RecordingId::parse(&job.recording_id) else {
            tracing::warn!(job = %job.entry, "dropping a job without a valid recording id");
            let _ = self.queue.complete(&job).await;
            return;
        };
        if !self.active.lock().expect("not poisoned").insert(recording_id) {
            let _ = self.queue.complete(&job).await;
            return;
        }
        metrics::gauge!("recorder_recordings_active").increment(1);
        // Every line logged for this recording's work names the API request that started it.
        let span = tracing::info_span!("recording", request.id = tracing::field::Empty);
        if let Some(request_id) = &job.request_id {
            span.record("request.id", request_id.as_str());
        }
        let acknowledge = self.record(&job, recording_id, shutdown).instrument(span).await;
        metrics::gauge!("recorder_recordings_active").decrement(1);
        self.active.lock().expect("not poisoned").remove(&recording_id);
        if acknowledge && let Err(e) = self.queue.complete(&job).await {
            tracing::warn!(recording.id = %recording_id, error = %e, "cannot acknowledge the job");
        }
    }

    /// Sees a recording through, or to its hand-over when `shutdown` turns true; `false` when its
    /// job must stay unacknowledged (another recorder holds it now, or it should come back later).
    async fn record(&self, job: &Job, recording_id: RecordingId, mut shutdown: watch::Receiver<bool>) -> bool {
        let recorder = &self.settings.instance_id;
        let archive = Archive::new(self.db.clone(), self.storage.clone(), &self.settings.recordings_dir, recording_id);
        let taken_over = match self.claim(job, recording_id).await {
            Ok(Claim::Record { taken_over }) => taken_over,
            Ok(Claim::Finalize) => {
                let recovered = self.recover(&archive).await;
                let outcome = Outcome { stopped: true, ..Outcome::default() };
                self.finish(recording_id, self.final_status(recording_id, &outcome, true, recovered).await).await;
                return true;
            }
            Ok(Claim::Nothing | Claim::NotYet) => return true,
            Ok(Claim::HolderStillWrites) => {
                tracing::warn!(recording.id = %recording_id, "the recorder of a recording has no heartbeat but still writes its row; left it");
                return false;
            }
            // Left unacknowledged: it comes back once the claim is stale.
            Err(e) => {
                tracing::warn!(recording.id = %recording_id, error = %e, "cannot claim the recording");
                return false;
            }
        };
        // A take-over goes on regardless: the recording runs already, and refusing it would lose it.
        if !taken_over && let Some(free_bytes) = self.short_of_room() {
            return self.refuse(job, recording_id, free_bytes).await;
        }
        tracing::info!(recording.id = %recording_id, room.id = %job.room_id, taken_over, "recording claimed");
        let recovered = if taken_over { self.recover(&archive).await } else { 0 };
        let pass = Pass {
            keys: self.keys.clone(),
            issuer: self.settings.jwt_issuer.clone(),
            user_id: recorder.clone(),
            display_name: "Recorder".to_owned(),
            role: CallRole::Recorder,
            room_id: job.room_id.clone(),
            recording_id: Some(job.recording_id.clone()),
            room_settings: None,
        };
        let seat = Seat { pass, gateways: self.settings.gateway_urls.clone(), rejoin: REJOIN };
        let call = match RecordedCall::join(seat).await {
            Ok(call) => call,
            Err(e) => {
                tracing::warn!(recording.id = %recording_id, error = %e, "cannot join the call");
                // The details (gateway addresses) stay in the log, not in what members can read.
                self.finish(recording_id, (RecordingStatus::Failed, Some("could not join the call".to_owned()))).await;
                return true;
            }
        };
        if let Err(e) = store::mark_recording(&self.db, recording_id, recorder).await {
            tracing::warn!(recording.id = %recording_id, error = %e, "cannot mark the recording as running");
        }
        let (lost, shutting_down) = (AtomicBool::new(false), AtomicBool::new(false));
        let stop = async {
            tokio::select! {
                () = self.until_stopped(job, recording_id, &lost) => {}
                Ok(_) = shutdown.wait_for(|stop| *stop) => shutting_down.store(true, Ordering::Relaxed),
            }
        };
        let outcome = call.record_until(&archive, stop).await;
        if lost.load(Ordering::Relaxed) {
            tracing::warn!(recording.id = %recording_id, "the recording was taken over or deleted; left it");
            return false;
        }
        if shutting_down.load(Ordering::Relaxed) {
            return self.hand_over(job, recording_id, &outcome).await;
        }
        // What the full disk cut short is kept, rebuilt as after a crash.
        let recovered = if outcome.disk_full { recovered + self.recover(&archive).await } else { recovered };
        let status = self.final_status(recording_id, &outcome, taken_over, recovered).await;
        self.finish(recording_id, status).await;
        true
    }

    /// The free space of the recordings directory when it is below the floor.
    fn short_of_room(&self) -> Option<u64> {
        match crate::free_space::free_bytes(&self.settings.recordings_dir) {
            Ok(free) => (free < self.settings.min_free_bytes).then_some(free),
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell the free space of the recordings directory");
                None
            }
        }
    }

    /// Lets go of a new recording this recorder has no room for: back to `pending` and re-queued
    /// for a recorder with room, or `failed` once it has waited [`ROOM_WAIT`] for one.
    async fn refuse(&self, job: &Job, recording_id: RecordingId, free_bytes: u64) -> bool {
        let recorder = &self.settings.instance_id;
        let min_free_bytes = self.settings.min_free_bytes;
        tracing::warn!(recording.id = %recording_id, free_bytes, min_free_bytes, "too little free disk space to start a recording");
        match store::release(&self.db, recording_id, recorder, ROOM_WAIT).await {
            Ok(true) => {
                if let Err(e) = self.queue.requeue(&job.recording_id, &job.room_id).await {
                    // The reconciler of any recorder re-queues it once its row looks stale.
                    tracing::warn!(recording.id = %recording_id, error = %e, "cannot re-queue a recording");
                }
            }
            Ok(false) => {
                let reason = "no recorder had enough free disk space to start the recording";
                self.finish(recording_id, (RecordingStatus::Failed, Some(reason.to_owned()))).await;
            }
            Err(e) => tracing::warn!(recording.id = %recording_id, error = %e, "cannot let go of a recording"),
        }
        true
    }

    /// After a shutdown took the recorder out of the call (its files are kept by now): re-queues
    /// the recording for another recorder, unless it was stopped meanwhile; then it is finished
    /// here as usual.
    async fn hand_over(&self, job: &Job, recording_id: RecordingId, outcome: &Outcome) -> bool {
        let recorder = &self.settings.instance_id;
        let still_running = store::heartbeat(&self.db, recording_id, recorder)
            .await
            .ok()
            .flatten()
            .is_some_and(RecordingStatus::is_capturing);
        if still_running {
            match store::hand_over(&self.db, recording_id, recorder).await {
                Ok(true) => {
                    if let Err(e) = self.queue.requeue(&job.recording_id, &job.room_id).await {
                        // The reconciler of any recorder re-queues it once its row looks stale.
                        tracing::warn!(recording.id = %recording_id, error = %e, "cannot re-queue a handed-over recording");
                    }
                    tracing::info!(recording.id = %recording_id, "recording handed over to another recorder");
                    return true;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(recording.id = %recording_id, error = %e, "cannot hand the recording over");
                    return false;
                }
            }
        }
        let status = self.final_status(recording_id, outcome, false, 0).await;
        self.finish(recording_id, status).await;
        true
    }

    /// Claims the recording, waiting up to [`ROW_WAIT`] for a row that is not committed yet.
    async fn claim(&self, job: &Job, recording_id: RecordingId) -> sqlx::Result<Claim> {
        let give_up = tokio::time::Instant::now() + ROW_WAIT;
        loop {
            let recorder = &self.settings.instance_id;
            let abandoned_by = job.abandoned_by.as_deref();
            let claim = store::claim(&self.db, recording_id, recorder, self.settings.reclaim_after, abandoned_by);
            match claim.await? {
                Claim::NotYet if tokio::time::Instant::now() < give_up => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                claim => return Ok(claim),
            }
        }
    }

    /// Completes once the API asked for a stop, or once the recording is no longer this
    /// recorder's (then `lost` is set); meanwhile keeps the job's claim and the row fresh.
    async fn until_stopped(&self, job: &Job, recording_id: RecordingId, lost: &AtomicBool) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            if let Err(e) = self.queue.renew(job).await {
                tracing::warn!(recording.id = %recording_id, error = %e, "cannot renew the job claim");
            }
            match store::heartbeat(&self.db, recording_id, &self.settings.instance_id).await {
                Ok(Some(status)) if status.is_capturing() => {}
                Ok(Some(_)) => return,
                Ok(None) => return lost.store(true, Ordering::Relaxed),
                // Recording goes on while Postgres is away; the files are registered later.
                Err(e) => tracing::warn!(recording.id = %recording_id, error = %e, "cannot reach Postgres"),
            }
        }
    }

    /// Rebuilds and registers what a recorder that died left; how many files.
    async fn recover(&self, archive: &Archive) -> usize {
        match archive.recover().await {
            Ok(recovered) => {
                metrics::counter!("recorder_files_recovered_total").increment(recovered as u64);
                recovered
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot recover the files of a recorder that died");
                0
            }
        }
    }

    /// The final status: files make it `ready`; none means no participant sent media. A full disk
    /// (which ended the recording), a gap (a recorder died and this one took over, or the media
    /// server the call went through was replaced), a call that ended under the recorder without a
    /// stop, or a participant whose media could not be written makes it `partial`.
    async fn final_status(
        &self,
        recording_id: RecordingId,
        outcome: &Outcome,
        taken_over: bool,
        recovered: usize,
    ) -> (RecordingStatus, Option<String>) {
        let files = store::file_count(&self.db, recording_id).await.unwrap_or(0);
        let failure = outcome.failures.first().cloned();
        if outcome.disk_full {
            let reason = "disk full: the recorder's disk ran out of space and the recording stopped there";
            return (if files == 0 { RecordingStatus::Failed } else { RecordingStatus::Partial }, Some(reason.into()));
        }
        if files == 0 {
            return (RecordingStatus::Failed, Some(failure.unwrap_or_else(|| "no media was received".into())));
        }
        if taken_over || recovered > 0 {
            let reason = "a recorder stopped: media is missing from when it stopped until another took over";
            return (RecordingStatus::Partial, Some(reason.into()));
        }
        if outcome.media_server_replaced {
            let reason = "the media server the call went through stopped and another took over: media is missing \
                          between the two, and each participant's continues in a new file";
            return (RecordingStatus::Partial, Some(reason.into()));
        }
        match (outcome.stopped, failure) {
            (true, None) => (RecordingStatus::Ready, None),
            (true, Some(failure)) => (RecordingStatus::Partial, Some(failure)),
            (false, _) => (RecordingStatus::Partial, Some("the call ended before the recording was stopped".into())),
        }
    }

    async fn finish(&self, recording_id: RecordingId, (status, reason): (RecordingStatus, Option<String>)) {
        let recorder = &self.settings.instance_id;
        match store::finish(&self.db, recording_id, recorder, status, reason.as_deref()).await {
            Ok(_) => {
                metrics::counter!("recorder_recordings_finished_total", "status" => status.as_str()).increment(1);
                tracing::info!(recording.id = %recording_id, status = status.as_str(), "recording finished");
            }
            Err(e) => tracing::warn!(recording.id = %recording_id, error = %e, "cannot record the outcome"),
        }
    }
}
