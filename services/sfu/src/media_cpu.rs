//! How busy the media threads are, for the load this instance states in the registry
//! ([`crate::registry`]): a room's packets all go through one media thread, so the busiest
//! thread's share of a core is what says whether another room fits. Read from outside the packet
//! path — Linux counts each thread's time on a CPU (`/proc/self/task/{tid}/schedstat`, in ns) —
//! so the media threads do no bookkeeping for it. Elsewhere than on Linux it reads 0.

use std::collections::HashMap;
use std::time::Instant;

/// The name `media_loop::start` gives each media thread, followed by its index.
const MEDIA_THREAD_PREFIX: &str = "confab-media-";

/// The media threads' CPU time at the last sample.
pub struct MediaCpu {
    /// Each media thread's time on a CPU (ns), by thread id.
    last: HashMap<u32, u64>,
    last_at: Instant,
}

impl MediaCpu {
    pub fn new(now: Instant) -> Self {
        Self { last: media_threads_cpu_ns(), last_at: now }
    }

    /// The busiest media thread's share of one core since the last sample, in percent.
    pub fn busiest_percent(&mut self, now: Instant) -> u64 {
        let current = media_threads_cpu_ns();
        let elapsed_ns = now.saturating_duration_since(self.last_at).as_nanos() as u64;
        let busiest = current
            .iter()
            .filter_map(|(tid, ns)| self.last.get(tid).map(|before| ns.saturating_sub(*before)))
            .max()
            .unwrap_or(0);
        self.last = current;
        self.last_at = now;
        (busiest.saturating_mul(100)).checked_div(elapsed_ns).unwrap_or(0).min(100)
    }
}

/// Each media thread's time on a CPU so far (ns), by thread id; empty where `/proc` cannot say.
fn media_threads_cpu_ns() -> HashMap<u32, u64> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return HashMap::new() };
    tasks
        .flatten()
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
            if !name.trim_end().starts_with(MEDIA_THREAD_PREFIX) {
                return None;
            }
            Some((tid, time_on_cpu_ns(&std::fs::read_to_string(task.path().join("schedstat")).ok()?)?))
        })
        .collect()
}

/// The first field of a `schedstat` line: time spent on a CPU, in ns.
fn time_on_cpu_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn schedstat_gives_the_time_on_a_cpu_first() {
        assert_eq!(time_on_cpu_ns("601424 0 1\n"), Some(601_424));
        assert_eq!(time_on_cpu_ns(""), None);
        assert_eq!(time_on_cpu_ns("x 0 1"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_busy_media_thread_shows_and_other_threads_do_not() {
        let spin = |name: &str| {
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(|| {
                    let until = Instant::now() + Duration::from_millis(400);
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                })
                .unwrap()
        };
        // Both spin; only the one named like a media thread counts.
        let (media, other) = (spin("confab-media-99"), spin("confab-other"));
        std::thread::sleep(Duration::from_millis(50));
        let mut cpu = MediaCpu::new(Instant::now());
        assert!(!cpu.last.is_empty(), "the spinning thread at least");
        std::thread::sleep(Duration::from_millis(200));
        let percent = cpu.busiest_percent(Instant::now());
        media.join().unwrap();
        other.join().unwrap();
        // Busy all along on a machine that is not overloaded; some share in any case.
        assert!((1..=100).contains(&percent), "{percent}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_media_loop_names_its_threads_as_looked_for() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = socket.local_addr().unwrap();
        let counters = std::sync::Arc::new(crate::media_loop::Counters::default());
        let _media = crate::media_loop::start(vec![(socket, address)], counters).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!media_threads_cpu_ns().is_empty());
    }
}
