//! Who is speaking. Each participant's audio packets carry the level of their sound (RFC 6464's
//! header extension: 0 is the loudest, 127 silence, in −dBov, and optionally a voice flag), so
//! the SFU can tell the room its dominant speaker without decoding a sample. A level is smoothed
//! over a few hundred milliseconds (one cough is not a speaker), a new speaker takes over only
//! after being clearly louder for half a second (two people talking at once do not make the
//! spotlight flicker), and in silence the last speaker stays, as in Jitsi and LiveKit.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How quickly a source's smoothed loudness follows its packets.
const SMOOTHING: Duration = Duration::from_millis(300);
/// A source at least this loud (smoothed; 67 is −60 dBov) is speaking.
const SPEAKING: f64 = 67.0;
/// How much louder (dB) than the dominant speaker a challenger must be, while both speak.
const MARGIN: f64 = 6.0;
/// How long a challenger must stay ahead to take over.
const HOLD: Duration = Duration::from_millis(500);

/// The dominant speaker among sources named by `K` (a peer id).
#[derive(Debug)]
pub struct Speakers<K> {
    sources: HashMap<K, Loudness>,
    dominant: Option<K>,
    /// The source that has been ahead of the dominant one since then.
    challenger: Option<(K, Instant)>,
}

/// A source's smoothed loudness (127 − level) as of a packet.
#[derive(Debug, Clone, Copy)]
struct Loudness {
    value: f64,
    at: Instant,
}

impl Loudness {
    /// The loudness at `now`: with no packet since, it fades as if silence had been heard (a
    /// muted microphone sends nothing).
    fn at(self, now: Instant) -> f64 {
        self.value * fade(now.saturating_duration_since(self.at))
    }
}

/// How much of the loudness of `elapsed` ago is left.
fn fade(elapsed: Duration) -> f64 {
    (-elapsed.as_secs_f64() / SMOOTHING.as_secs_f64()).exp()
}

impl<K: Clone + Eq + Hash> Default for Speakers<K> {
    fn default() -> Self {
        Self { sources: HashMap::new(), dominant: None, challenger: None }
    }
}

impl<K: Clone + Eq + Hash> Speakers<K> {
    /// An audio packet of `source` with the level it carries (`voice`: the extension's V flag,
    /// when the sender sets it).
    pub fn heard(&mut self, source: &K, level: u8, voice: Option<bool>, at: Instant) {
        let loudness = if voice == Some(false) { 0.0 } else { 127.0 - f64::from(level.min(127)) };
        match self.sources.get_mut(source) {
            Some(smoothed) => {
                let kept = fade(at.saturating_duration_since(smoothed.at));
                *smoothed =
                    Loudness { value: smoothed.value * kept + loudness * (1.0 - kept), at: at.max(smoothed.at) };
            }
            // A new source starts from silence, like one that has been quiet.
            None => {
                self.sources.insert(source.clone(), Loudness { value: 0.0, at });
            }
        }
    }

    /// A source that left the room.
    pub fn forget(&mut self, source: &K) {
        self.sources.remove(source);
        if self.dominant.as_ref() == Some(source) {
            self.dominant = None;
        }
        if self.challenger.as_ref().is_some_and(|(challenger, _)| challenger == source) {
            self.challenger = None;
        }
    }

    /// The new dominant speaker, when it changed since the last call; call it every 100 ms or so.
    pub fn poll(&mut self, now: Instant) -> Option<K> {
        let loudness = |source: &K| self.sources.get(source).map_or(0.0, |l| l.at(now));
        let loudest = self
            .sources
            .iter()
            .map(|(source, smoothed)| (source, smoothed.at(now)))
            .filter(|(_, loudness)| *loudness >= SPEAKING)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(source, loudness)| (source.clone(), loudness));
        let Some((loudest, its_loudness)) = loudest else {
            self.challenger = None;
            return None;
        };
        let takes_over = match &self.dominant {
            None => true,
            Some(dominant) if *dominant == loudest => {
                self.challenger = None;
                return None;
            }
            Some(dominant) => {
                let dominant_loudness = loudness(dominant);
                dominant_loudness < SPEAKING || its_loudness >= dominant_loudness + MARGIN
            }
        };
        if !takes_over {
            self.challenger = None;
            return None;
        }
        let since = match &self.challenger {
            Some((challenger, since)) if *challenger == loudest => *since,
            _ => {
                self.challenger = Some((loudest.clone(), now));
                now
            }
        };
        if self.dominant.is_some() && now.saturating_duration_since(since) < HOLD {
            return None;
        }
        self.challenger = None;
        self.dominant = Some(loudest.clone());
        Some(loudest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Speech at −30 dBov, a quiet room at −80.
    const TALKING: u8 = 30;
    const QUIET: u8 = 80;
    const PACKET: Duration = Duration::from_millis(20);

    /// Feeds `levels` (source, level) every 20 ms for `length` from `start`, polling every 100 ms;
    /// the speakers announced and when.
    fn run(
        speakers: &mut Speakers<&'static str>,
        start: Instant,
        length: Duration,
        levels: &[(&'static str, u8)],
    ) -> Vec<(&'static str, Duration)> {
        let mut announced = Vec::new();
        let mut at = start;
        let mut n = 0;
        while at < start + length {
            for (source, level) in levels {
                speakers.heard(source, *level, None, at);
            }
            if n % 5 == 4
                && let Some(speaker) = speakers.poll(at)
            {
                announced.push((speaker, at - start));
            }
            at += PACKET;
            n += 1;
        }
        announced
    }

    #[test]
    fn the_first_to_speak_becomes_the_speaker_once_the_level_has_built_up() {
        let t0 = Instant::now();
        let mut speakers = Speakers::default();
        let announced = run(&mut speakers, t0, Duration::from_secs(2), &[("ann", TALKING), ("bob", QUIET)]);
        assert_eq!(announced.len(), 1, "{announced:?}");
        assert_eq!(announced[0].0, "ann");
        assert!(announced[0].1 <= Duration::from_millis(500), "{announced:?}");
    }

    #[test]
    fn a_louder_voice_takes_over_only_after_holding_its_lead() {
        let t0 = Instant::now();
        let mut speakers = Speakers::default();
        let second = Duration::from_secs(1);
        run(&mut speakers, t0, 2 * second, &[("ann", 40), ("bob", QUIET)]);
        // Bob interjects, 20 dB louder, for 400 ms: ahead for less than the hold, a burst.
        let t1 = t0 + 2 * second;
        let burst = Duration::from_millis(400);
        assert_eq!(run(&mut speakers, t1, burst, &[("ann", 40), ("bob", 20)]), []);
        assert_eq!(run(&mut speakers, t1 + burst, 2 * second, &[("ann", 40), ("bob", QUIET)]), []);
        // Then he talks on: he takes over once he has held the lead for half a second.
        let t2 = t1 + burst + 2 * second;
        let announced = run(&mut speakers, t2, 2 * second, &[("ann", 40), ("bob", 20)]);
        assert_eq!(announced.iter().map(|(s, _)| *s).collect::<Vec<_>>(), ["bob"]);
        assert!(announced[0].1 >= Duration::from_millis(500), "{announced:?}");
    }

    #[test]
    fn two_people_at_about_the_same_level_do_not_flip_the_spotlight() {
        let t0 = Instant::now();
        let mut speakers = Speakers::default();
        run(&mut speakers, t0, Duration::from_secs(1), &[("ann", TALKING)]);
        let announced =
            run(&mut speakers, t0 + Duration::from_secs(1), Duration::from_secs(5), &[("ann", 32), ("bob", 29)]);
        assert_eq!(announced, [], "3 dB apart is within the margin");
    }

    #[test]
    fn in_silence_the_last_speaker_stays_and_the_next_to_speak_takes_over() {
        let t0 = Instant::now();
        let mut speakers = Speakers::default();
        run(&mut speakers, t0, Duration::from_secs(1), &[("ann", TALKING), ("bob", QUIET)]);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(run(&mut speakers, t1, Duration::from_secs(3), &[("ann", QUIET), ("bob", QUIET)]), []);
        // Ann's microphone is muted (no packets at all); Bob speaks, quieter than Ann had been.
        let t2 = t1 + Duration::from_secs(3);
        let announced = run(&mut speakers, t2, Duration::from_secs(2), &[("bob", 45)]);
        assert_eq!(announced.iter().map(|(s, _)| *s).collect::<Vec<_>>(), ["bob"]);
    }

    #[test]
    fn a_packet_flagged_as_no_voice_counts_as_silence_and_a_source_that_left_is_forgotten() {
        let t0 = Instant::now();
        let mut speakers = Speakers::default();
        let mut at = t0;
        for _ in 0..100 {
            speakers.heard(&"fan", 10, Some(false), at);
            at += PACKET;
        }
        assert_eq!(speakers.poll(at), None, "loud, but not a voice");
        run(&mut speakers, at, Duration::from_secs(1), &[("ann", TALKING)]);
        speakers.forget(&"ann");
        assert_eq!(speakers.poll(at + Duration::from_secs(1)), None);
        assert_eq!(speakers.dominant, None);
    }
}
