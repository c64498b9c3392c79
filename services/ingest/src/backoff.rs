//! How long to wait before reconnecting a camera: capped exponential backoff.

use std::time::Duration;

/// The wait after `failures` failures in a row (1 for the first): `min`, doubled per further
/// failure, never more than `max`.
pub fn delay(min: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    min.saturating_mul(1 << doublings).min(max)
}

#[cfg(test)]
mod tests {
    use super::delay;
    use std::time::Duration;

    #[test]
    fn doubles_from_the_minimum_up_to_the_cap() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(30));
        let waits: Vec<u64> = (1..=8).map(|n| delay(min, max, n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(delay(min, max, u32::MAX), max);
        assert_eq!(delay(min, max, 0), min);
    }
}
