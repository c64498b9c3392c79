//! Sends due webhook deliveries. Every API instance runs this loop on the same database: a
//! batch is taken with `for update skip locked` and leased (its next attempt time moved past the
//! attempt's timeout), so no two workers send one delivery at once, and what a worker that died
//! mid-batch had taken falls due again when the lease ends. A delivery is retried with doubling
//! waits until the receiver answers 2xx or the retry window since the event has passed. Workers
//! wake on the `confab_webhooks` notification that a new delivery sends at commit, and look for
//! due retries every `poll_interval`.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use uuid::Uuid;

use super::signature::SigningSecret;
use crate::settings::WebhookSettings;

/// Deliveries taken per round.
const BATCH: i64 = 32;
/// How often delivered and given-up events past their retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Longest error text kept per attempt.
const ERROR_CHARS: usize = 300;

/// A delivery taken for an attempt, with what is needed to send it.
#[derive(sqlx::FromRow)]
struct Due {
    id: Uuid,
    attempts: i32,
    created_at: DateTime<Utc>,
    endpoint_id: Uuid,
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
}

impl DeliveryWorker {
    pub fn new(db: PgPool, settings: WebhookSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Confab-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { db, http, settings })
    }

    /// Delivers until the process ends; Postgres being away only pauses it.
    pub async fn run(self) {
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
            match self.deliver_due().await {
                Ok(taken) => {
                    failing = false;
                    if taken == BATCH as usize {
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

    /// Takes the deliveries that are due and attempts each once; returns how many it took.
    pub async fn deliver_due(&self) -> sqlx::Result<usize> {
        let lease = self.settings.timeout + Duration::from_secs(30);
        let due: Vec<Due> = sqlx::query_as(
            "with due as (
                select d.id from webhook_deliveries d join webhook_endpoints e on e.id = d.endpoint_id
                 where d.status = 'pending' and d.next_attempt_at <= now() and e.active
                 order by d.next_attempt_at
                 limit $1
                 for update of d skip locked)
             update webhook_deliveries d
                set attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
               from due, webhook_endpoints e, webhook_events ev
              where d.id = due.id and e.id = d.endpoint_id and ev.id = d.event_id
             returning d.id, d.attempts, d.created_at, e.id as endpoint_id, e.url, e.secret,
                       ev.id as event_id, ev.type as event_type, ev.room_id, ev.room_seq, ev.payload,
                       ev.created_at as event_created_at",
        )
        .bind(BATCH)
        .bind(lease.as_secs_f64())
        .fetch_all(&self.db)
        .await?;
        let taken = due.len();
        let results = join_all(due.iter().map(|d| self.attempt(d))).await;
        for (delivery, attempted) in due.iter().zip(results) {
            self.record(delivery, &attempted).await?;
        }
        Ok(taken)
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

    /// Keeps the attempt and decides what follows: delivered, retried later, or given up.
    async fn record(&self, due: &Due, attempted: &Attempted) -> sqlx::Result<()> {
        let now = Utc::now();
        let (status, next_attempt_at) = if attempted.error.is_none() {
            ("delivered", now)
        } else if now - due.created_at >= chrono::Duration::from_std(self.settings.retry_window).unwrap_or_default() {
            ("failed", now)
        } else {
            let wait = retry_delay(due.attempts, &self.settings, jitter());
            ("pending", now + chrono::Duration::from_std(wait).unwrap_or_default())
        };
        let outcome = match status {
            "pending" => "retry",
            other => other,
        };
        metrics::counter!("api_webhook_deliveries_total", "outcome" => outcome).increment(1);
        metrics::histogram!("api_webhook_attempt_duration_seconds").record(f64::from(attempted.duration_ms) / 1000.0);
        tracing::info!(
            webhook.id = %due.endpoint_id, delivery.id = %due.id, event.type = %due.event_type,
            attempt = due.attempts, http.status = attempted.status_code, outcome, "webhook attempt"
        );
        let recorded = sqlx::query(
            "with attempt as (
                insert into webhook_attempts (delivery_id, status_code, error, duration_ms) values ($1, $2, $3, $4))
             update webhook_deliveries
                set status = $5, next_attempt_at = $6, last_error = $3,
                    delivered_at = case when $5 = 'delivered' then now() end
              where id = $1",
        )
        .bind(due.id)
        .bind(attempted.status_code.map(i32::from))
        .bind(&attempted.error)
        .bind(attempted.duration_ms)
        .bind(status)
        .bind(next_attempt_at)
        .execute(&self.db)
        .await;
        match recorded {
            // The endpoint was deleted during the attempt, and the delivery with it.
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Ok(()),
            other => other.map(drop),
        }
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
