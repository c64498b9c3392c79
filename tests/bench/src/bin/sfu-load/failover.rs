//! `--failovers N` (Confab only): how soon media flows again when the SFU serving a room dies.
//! One publisher and one subscriber through the SFU; then N times: the instance serving the room
//! (its id from the room's mark in Redis, its PID from the file `deploy/local/bench-sfu` keeps
//! for it) is killed with SIGKILL, and the time is taken from the kill to the first packet on
//! the subscribe connection the next instance offers (and, apart, to that connection being up:
//! the first packet waits for the publisher's next keyframe, which a pre-encoded clip cannot send
//! on request as a browser's encoder does). The participants follow the room as a
//! client does (`crate::confab`); the killed instance's supervisor starts it again, and the next
//! kill waits until both instances are registered.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use confab_domain::keys;
use redis::AsyncCommands;

use crate::confab::Confab;
use crate::{Run, Target, wait_for};

/// How long media may take to come back before the kill counts as failed.
const GIVE_UP: Duration = Duration::from_secs(30);
/// How many instances take part.
const INSTANCES: usize = 2;

pub struct Settings {
    pub kills: usize,
    pub pid_dir: PathBuf,
    pub redis_url: String,
    pub redis_prefix: String,
}

/// Each kill's times from the kill to the next instance's subscribe connection being up, and to
/// the first packet through it.
pub async fn measure(
    confab: &mut Confab,
    run: &Rc<Run>,
    settings: &Settings,
) -> anyhow::Result<Vec<(Duration, Duration)>> {
    let mut redis = redis::Client::open(settings.redis_url.as_str())?.get_multiplexed_async_connection().await?;
    // The room is placed at the publisher's arrival: on a registered instance, or nowhere.
    wait_until_registered(&mut redis, &settings.redis_prefix).await?;
    confab.publish(run).await?;
    confab.subscribe(run).await?;
    let receptions = Rc::clone(&confab.receptions);
    wait_for(|| receptions.borrow().iter().any(|reception| reception.borrow().first_at.is_some())).await;
    let mut times = Vec::with_capacity(settings.kills);
    for kill in 1..=settings.kills {
        wait_until_registered(&mut redis, &settings.redis_prefix).await?;
        let instance: String = redis
            .get(keys::sfu_room(&settings.redis_prefix, &confab.room))
            .await
            .context("the instance serving the room")?;
        let pid_file = settings.pid_dir.join(format!("{instance}.pid"));
        let pid = std::fs::read_to_string(&pid_file).with_context(|| format!("{}", pid_file.display()))?;
        let before = receptions.borrow().len();
        let killed = Instant::now();
        let status = std::process::Command::new("kill").args(["-KILL", pid.trim()]).status()?;
        if !status.success() {
            bail!("kill -KILL {} ({instance}) failed", pid.trim());
        }
        let first = || {
            let receptions = receptions.borrow();
            let next = receptions[before..].iter().map(|reception| reception.borrow());
            next.filter_map(|reception| Some((reception.connected_at?, reception.first_at?))).next()
        };
        while first().is_none() && killed.elapsed() < GIVE_UP {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (connected, media) =
            first().with_context(|| format!("no media within {GIVE_UP:?} of killing {instance}"))?;
        let took = (connected.duration_since(killed), media.duration_since(killed));
        eprintln!(
            "sfu-load: kill {kill} of {}: {instance} killed, connected to the next in {} ms, media back in {} ms",
            settings.kills,
            took.0.as_millis(),
            took.1.as_millis()
        );
        times.push(took);
    }
    Ok(times)
}

/// Waits until [`INSTANCES`] instances are registered and alive (the killed one started again).
async fn wait_until_registered(redis: &mut redis::aio::MultiplexedConnection, prefix: &str) -> anyhow::Result<()> {
    let give_up = Instant::now() + GIVE_UP;
    loop {
        let ids: Vec<String> = redis.smembers(keys::sfu_instances(prefix)).await?;
        let mut alive = 0;
        for id in ids {
            let exists: bool = redis.exists(keys::sfu_instance(prefix, &id)).await?;
            alive += usize::from(exists);
        }
        if alive >= INSTANCES {
            return Ok(());
        }
        if Instant::now() > give_up {
            bail!("{alive} of {INSTANCES} SFU instances registered after {GIVE_UP:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The nearest-rank percentile `p` (0–100) of `times`, which it sorts.
pub fn percentile(times: &mut [Duration], p: usize) -> Duration {
    times.sort();
    let rank = (p * times.len()).div_ceil(100).max(1);
    times[rank - 1]
}
