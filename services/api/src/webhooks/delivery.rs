//! Sends due webhook deliveries. Every API instance runs this loop on the same database: due
//! deliveries are taken with `for update skip locked` and leased (their next attempt time moved
//! past the attempt's timeout), so no two workers send one delivery at once, and what a worker
//! that died had taken falls due again when the lease ends. Each attempt runs as its own task, at
//! most `MAX_IN_FLIGHT` at once, so a slow receiver never holds up the others.
//!
//! A failed attempt backs off the whole endpoint: its waits double from `retry_base` up to
//! `retry_max`, and until it answers again it gets one delivery at a time (a probe). A delivery
//! still pending `retry_window` after its event is given up. Workers wake on the
//! `confab_webhooks` notification a new delivery sends at commit, and look for due retries every
//! `poll_interval`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::signature::SigningSecret;
use crate::settings::WebhookSettings;

/// Deliveries taken per round, at most.
const BATCH: usize = 32;
/// Attempts under way at once, per API instance.
const MAX_IN_FLIGHT: usize = 64;
/// How often delivered and given-up events past their retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Longest error text kept per attempt.
const ERROR_CHARS: usize = 300;

/// A delivery taken for an attempt, with what is needed to send it.
#[derive(sqlx::FromRow)]
struct Due {
    id: Uuid,
    attempts: i32,
    endpoint_id: Uuid,
    /// The endpoint's failures in a row when the delivery was taken.
    endpoint_failures: i32,
    url: String,
    secret: String,
    event_id: Uuid,
    event_type: String,
    room_id: Option<Uuid>,
    room_seq: Option<i64>,
    payload: serde_json::Value,
    event_created_at: DateTime<Utc>,
}

/// What one attempt came to.
#[derive(Debug, PartialEq, Eq)]
struct Attempted {
    status_code: Option<u16>,
    error: Option<String>,
    duration_ms: i32,
}

pub struct DeliveryWorker {
    db: PgPool,
    http: reqwest::Client,
    settings: WebhookSettings,
    in_flight: Arc<Semaphore>,
}

impl DeliveryWorker {
    pub fn new(db: PgPool, settings: WebhookSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Confab-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { db, http, settings, in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)) })
    }

    /// Delivers until the process ends; Postgres being away only pauses it.
    pub async fn run(self: Arc<Self>) {
        let mut next_prune = Instant::now();
        let mut failing = false;
        let mut listener = None;
        loop {
            if Instant::now() >= next_prune {
                match prune(&self.db, self.settings.retention).await {
                    Ok(n) if n > 0 => tracing::info!(events = n, "deleted webhook events past their retention"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not delete old webhook events"),
                }
                next_prune = Instant::now() + PRUNE_EVERY;
            }
            let room = self.in_flight.available_permits().min(BATCH);
            if room == 0 {
                // Every sender is busy: wait for one to finish.
                drop(self.in_flight.acquire().await);
                continue;
            }
            match self.take_due(room).await {
                Ok(due) => {
                    failing = false;
                    let taken = due.len();
                    for delivery in due {
                        self.spawn_attempt(delivery);
                    }
                    if taken == room {
                        continue;
                    }
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "webhook deliveries paused");
                }
                Err(_) => {}
            }
            self.wait_for_work(&mut listener).await;
        }
    }

    /// Waits for a new delivery's notification, at most `poll_interval`.
    async fn wait_for_work(&self, listener: &mut Option<PgListener>) {
        if listener.is_none() {
            *listener = listen(&self.db).await.ok();
        }
        let poll = self.settings.poll_interval;
        let Some(active) = listener else { return tokio::time::sleep(poll).await };
        // `Ok(None)`: the connection was lost; the listener reconnects on the next wait.
        if let Ok(Err(_)) = tokio::time::timeout(poll, active.try_recv()).await {
            *listener = None;
            tokio::time::sleep(poll).await;
        }
    }

    /// Takes up to `limit` due deliveries, at most one per failing endpoint whose wait is over,
    /// and leases them (and those endpoints) for the length of an attempt.
    async fn take_due(&self, limit: usize) -> sqlx::Result<Vec<Due>> {
        let lease = self.settings.timeout + Duration::from_secs(30);
        sqlx::query_as(
            "with due as (
                select d.id from webhook_deliveries d join webhook_endpoints e on e.id = d.endpoint_id
                 where d.status = 'pending' and d.next_attempt_at <= now() and e.active
                   and (e.failures = 0
                        or (coalesce(e.retry_at, now()) <= now()
                            and d.id = (select p.id from webhook_deliveries p
                                         where p.endpoint_id = e.id and p.status = 'pending'
                                           and p.next_attempt_at <= now()
                                         order by p.next_attempt_at, p.id limit 1)))
                 order by d.next_attempt_at
                 limit $1
                 for update of d skip locked),
             taken as (
                update webhook_deliveries d
                   set attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
                  from due
                 where d.id = due.id
             returning d.id, d.attempts, d.endpoint_id, d.event_id),
             probing as (
                update webhook_endpoints e set retry_at = now() + make_interval(secs => $2)
                 where e.failures > 0 and e.id in (select endpoint_id from taken))
             select t.id, t.attempts, e.id as endpoint_id, e.failures as endpoint_failures, e.url, e.secret,
                    ev.id as event_id, ev.type as event_type, ev.room_id, ev.room_seq, ev.payload,
                    ev.created_at as event_created_at
               from taken t join webhook_endpoints e on e.id = t.endpoint_id
                    join webhook_events ev on ev.id = t.event_id",
        )
        .bind(limit as i64)
        .bind(lease.as_secs_f64())
        .fetch_all(&self.db)
        .await
    }

    /// Attempts one delivery in a task of its own and records the outcome.
    fn spawn_attempt(self: &Arc<Self>, due: Due) {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else { return };
        let worker = self.clone();
        tokio::spawn(async move {
            let attempted = worker.attempt(&due).await;
            if let Err(e) = worker.record(&due, &attempted).await {
                // The lease runs out and the delivery is attempted again.
                tracing::warn!(delivery.id = %due.id, error = %e, "could not record a webhook attempt");
            }
            drop(permit);
        });
    }

    async fn attempt(&self, due: &Due) -> Attempted {
        let body = json!({
            "id": due.event_id,
            "type": due.event_type,
            "created_at": due.event_created_at,
            "room_id": due.room_id,
            "room_seq": due.room_seq,
            "data": due.payload,
        })
        .to_string();
        let started = Instant::now();
        let elapsed = || started.elapsed().as_millis().min(i32::MAX as u128) as i32;
        let secret = match SigningSecret::parse(&due.secret) {
            Ok(secret) => secret,
            Err(e) => return Attempted { status_code: None, error: Some(e.to_string()), duration_ms: 0 },
        };
        let message_id = due.event_id.to_string();
        let timestamp = Utc::now().timestamp();
        let sent = self
            .http
            .post(&due.url)
            .header("content-type", "application/json")
            .header("webhook-id", &message_id)
            .header("webhook-timestamp", timestamp)
            .header("webhook-signature", secret.sign(&message_id, timestamp, body.as_bytes()))
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                Attempted { status_code: Some(response.status().as_u16()), error: None, duration_ms: elapsed() }
            }
            Ok(response) => {
                let status = response.status();
                Attempted {
                    status_code: Some(status.as_u16()),
                    error: Some(format!("HTTP {status}")),
                    duration_ms: elapsed(),
                }
            }
            Err(e) => {
                Attempted { status_code: None, error: Some(describe(e, self.settings.timeout)), duration_ms: elapsed() }
            }
        }
    }

    /// Keeps the attempt and decides what follows: delivered, retried later (the endpoint backs
    /// off), or given up. No statement here locks an endpoint and a delivery together, so this
    /// never deadlocks with an endpoint being deleted, and successful deliveries to one endpoint
    /// do not queue on its row.
    async fn record(&self, due: &Due, attempted: &Attempted) -> sqlx::Result<()> {
        let (outcome, wait) = match &attempted.error {
            None => {
                if due.endpoint_failures > 0 {
                    sqlx::query("update webhook_endpoints set failures = 0, retry_at = null where id = $1")
                        .bind(due.endpoint_id)
                        .execute(&self.db)
                        .await?;
                }
                ("delivered", Duration::ZERO)
            }
            Some(_) => {
                let failures: Option<i32> = sqlx::query_scalar(
                    "update webhook_endpoints set failures = failures + 1 where id = $1 returning failures",
                )
                .bind(due.endpoint_id)
                .fetch_optional(&self.db)
                .await?;
                // No endpoint: it was deleted during the attempt, and the delivery with it.
                let Some(failures) = failures else { return Ok(()) };
                let wait = retry_delay(failures, &self.settings, jitter());
                sqlx::query("update webhook_endpoints set retry_at = now() + make_interval(secs => $2) where id = $1")
                    .bind(due.endpoint_id)
                    .bind(wait.as_secs_f64())
                    .execute(&self.db)
                    .await?;
                ("retry", wait)
            }
        };
        let status: Option<String> = sqlx::query_scalar(
            "with attempt as (
                insert into webhook_attempts (delivery_id, status_code, error, duration_ms) values ($1, $2, $3, $4))
             update webhook_deliveries
                set status = case when $3::text is null then 'delivered'
                                  when created_at <= now() - make_interval(secs => $6) then 'failed'
                                  else 'pending' end,
                    delivered_at = case when $3::text is null then now() end,
                    next_attempt_at = now() + make_interval(secs => $5), last_error = $3
              where id = $1 returning status",
        )
        .bind(due.id)
        .bind(attempted.status_code.map(i32::from))
        .bind(&attempted.error)
        .bind(attempted.duration_ms)
        .bind(wait.as_secs_f64())
        .bind(self.settings.retry_window.as_secs_f64())
        .fetch_optional(&self.db)
        .await
        .or_else(|e| match e {
            // The endpoint was deleted during the attempt, and the delivery with it.
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => Ok(None),
            other => Err(other),
        })?;
        let Some(status) = status else { return Ok(()) };
        let outcome = if status == "failed" { "failed" } else { outcome };
        if let Some(error) = &attempted.error {
            self.give_up_expired(due.endpoint_id, error).await?;
        }
        metrics::counter!("api_webhook_deliveries_total", "outcome" => outcome).increment(1);
        metrics::histogram!("api_webhook_attempt_duration_seconds").record(f64::from(attempted.duration_ms) / 1000.0);
        tracing::info!(
            webhook.id = %due.endpoint_id, delivery.id = %due.id, event.type = %due.event_type,
            attempt = due.attempts, http.status = attempted.status_code, outcome, "webhook attempt"
        );
        Ok(())
    }

    /// Gives up the endpoint's deliveries that waited behind its probes for the whole retry
    /// window; they end with the error the endpoint keeps answering.
    async fn give_up_expired(&self, endpoint_id: Uuid, error: &str) -> sqlx::Result<()> {
        sqlx::query(
            "update webhook_deliveries set status = 'failed', last_error = 'the endpoint kept failing: ' || $2
              where endpoint_id = $1 and status = 'pending' and created_at <= now() - make_interval(secs => $3)",
        )
        .bind(endpoint_id)
        .bind(error)
        .bind(self.settings.retry_window.as_secs_f64())
        .execute(&self.db)
        .await?;
        Ok(())
    }
}

/// The wait after the `attempts`-th failure: `retry_base` doubled per earlier failure, at most
/// `retry_max`, spread by ±20 % (`jitter` in 0..1) so deliveries that failed together (a
/// receiver's outage) do not all come back at once.
fn retry_delay(attempts: i32, settings: &WebhookSettings, jitter: f64) -> Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 30) as u32;
    let wait = settings.retry_base.saturating_mul(1 << doublings).min(settings.retry_max);
    wait.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
}

fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

/// A failed request in words, without the URL (it may carry a token in its query).
fn describe(error: reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs());
    }
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text.chars().take(ERROR_CHARS).collect()
}

async fn listen(db: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(db).await?;
    listener.listen("confab_webhooks").await?;
    Ok(listener)
}

/// Deletes events older than `retention` none of whose deliveries is still pending.
async fn prune(db: &PgPool, retention: Duration) -> sqlx::Result<u64> {
    let deleted = sqlx::query(
        "delete from webhook_events e
          where e.created_at < now() - make_interval(secs => $1)
            and not exists (select 1 from webhook_deliveries d where d.event_id = e.id and d.status = 'pending')",
    )
    .bind(retention.as_secs_f64())
    .execute(db)
    .await?;
    Ok(deleted.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_spread_by_a_fifth() {
        let settings = WebhookSettings::default();
        let middle = |attempts| retry_delay(attempts, &settings, 0.5).as_secs();
        assert_eq!([1, 2, 3, 4, 8].map(middle), [5, 10, 20, 40, 640]);
        assert_eq!([9, 30, 1000, i32::MAX].map(middle), [900; 4]);
        assert_eq!(retry_delay(1, &settings, 0.0), Duration::from_secs(4));
        assert_eq!(retry_delay(1, &settings, 1.0), Duration::from_secs(6));
        assert_eq!(middle(0), 5, "a first attempt waits the base");
    }

    #[test]
    fn the_default_schedule_keeps_trying_through_a_day_long_outage() {
        let settings = WebhookSettings::default();
        let (mut elapsed, mut attempts) = (Duration::ZERO, 1);
        while elapsed < settings.retry_window {
            elapsed += retry_delay(attempts, &settings, 0.0);
            attempts += 1;
        }
        // The shortest waits: still an attempt at least every 15 minutes after the first hour.
        assert!(attempts > 90, "{attempts} attempts in 24 h");
        assert!(retry_delay(attempts, &settings, 1.0) <= Duration::from_secs(1080));
    }
}
