//! Each track counts time in its own RTP clock (90 kHz video, 48 kHz audio) from a random offset,
//! so a participant's audio and video only line up once mapped onto one timeline. RTCP sender
//! reports tie each track's RTP clock to the sender's NTP wallclock, which both tracks share; before
//! a track's first sender report, its first frame's arrival time stands in for it. A later report
//! that moves a track's mapping by less than [`SENDER_REPORT_JITTER`] is noise in when the sender
//! stamped it (a media server's or a software sender's reports jitter by milliseconds), not drift:
//! the mapping stays, so that frames keep their even spacing.

use std::time::{Duration, Instant};

use super::TrackId;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// The least change a track's later sender report makes to its mapping: well below what lip sync
/// notices (about 45 ms), and a third of a video frame at 30 frames per second.
pub const SENDER_REPORT_JITTER: Duration = Duration::from_millis(10);

/// The fields of an RTCP sender report the timeline needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    /// NTP timestamp, 64-bit fixed point (seconds since 1900 in the high 32 bits).
    pub ntp_time: u64,
    /// The RTP timestamp that corresponds to `ntp_time`.
    pub rtp_timestamp: u32,
}

fn ntp_to_ns(ntp_time: u64) -> i128 {
    let seconds = i128::from(ntp_time >> 32);
    let fraction = i128::from(ntp_time & 0xffff_ffff);
    seconds * NANOS_PER_SECOND + ((fraction * NANOS_PER_SECOND) >> 32)
}

#[derive(Debug)]
struct TrackClock {
    clock_rate: u32,
    /// (extended RTP timestamp, timeline ns) of the first frame, for use before a sender report.
    first_frame: Option<(u64, i128)>,
    /// (extended RTP timestamp, sender NTP ns) of the latest sender report.
    sender_report: Option<(u64, i128)>,
}

impl TrackClock {
    fn ticks_to_ns(&self, from: u64, to: u64) -> i128 {
        (i128::from(to) - i128::from(from)) * NANOS_PER_SECOND / i128::from(self.clock_rate.max(1))
    }

    /// Where the current mapping puts `rtp_timestamp`: the latest sender report once the NTP
    /// offset is known, else the first frame; `None` while the track has neither.
    fn map(&self, rtp_timestamp: u64, ntp_offset_ns: Option<i128>) -> Option<i128> {
        if let (Some((sr_rtp, sr_ntp_ns)), Some(offset)) = (self.sender_report, ntp_offset_ns) {
            return Some(sr_ntp_ns + self.ticks_to_ns(sr_rtp, rtp_timestamp) + offset);
        }
        let (first_rtp, first_ns) = self.first_frame?;
        Some(first_ns + self.ticks_to_ns(first_rtp, rtp_timestamp))
    }
}

/// Maps the RTP timestamps of one participant's tracks to nanoseconds on one timeline, whose zero
/// is the first frame or sender report seen. Values may be negative or go backwards across tracks;
/// [`super::Interleaver`] makes them monotonic for the muxer.
#[derive(Debug, Default)]
pub struct Timeline {
    origin: Option<Instant>,
    /// Timeline ns minus sender NTP ns, fixed by the first sender report of any track.
    ntp_offset_ns: Option<i128>,
    tracks: Vec<TrackClock>,
    /// Largest jump a sender report made in a track's existing mapping, in ns.
    max_correction_ns: u128,
}

impl Timeline {
    /// Adds a track whose RTP clock runs at `clock_rate` Hz.
    pub fn add_track(&mut self, clock_rate: u32) -> TrackId {
        self.tracks.push(TrackClock { clock_rate, first_frame: None, sender_report: None });
        TrackId(self.tracks.len() - 1)
    }

    /// Records a sender report received at `now`; `rtp_timestamp` is extended like the track's
    /// frame timestamps. The first report of the participant fixes the NTP offset so that the
    /// reporting track's timeline does not jump.
    pub fn on_sender_report(&mut self, track: TrackId, ntp_time: u64, rtp_timestamp: u64, now: Instant) {
        let origin = *self.origin.get_or_insert(now);
        let Some(clock) = self.tracks.get_mut(track.0) else { return };
        let ntp_ns = ntp_to_ns(ntp_time);
        let previous_ns = clock.map(rtp_timestamp, self.ntp_offset_ns);
        let offset =
            *self.ntp_offset_ns.get_or_insert_with(|| previous_ns.unwrap_or_else(|| elapsed_ns(origin, now)) - ntp_ns);
        let correction_ns = previous_ns.map(|previous_ns| (ntp_ns + offset - previous_ns).unsigned_abs());
        if clock.sender_report.is_some() && correction_ns.is_some_and(|ns| ns < SENDER_REPORT_JITTER.as_nanos()) {
            return;
        }
        clock.sender_report = Some((rtp_timestamp, ntp_ns));
        if let Some(correction_ns) = correction_ns {
            self.max_correction_ns = self.max_correction_ns.max(correction_ns);
        }
    }

    /// Timeline nanoseconds of a frame of `track` with extended `rtp_timestamp`, released at `now`.
    pub fn to_ns(&mut self, track: TrackId, rtp_timestamp: u64, now: Instant) -> i128 {
        let origin = *self.origin.get_or_insert(now);
        let Some(clock) = self.tracks.get_mut(track.0) else { return elapsed_ns(origin, now) };
        if let Some(ns) = clock.map(rtp_timestamp, self.ntp_offset_ns) {
            return ns;
        }
        let ns = elapsed_ns(origin, now);
        clock.first_frame = Some((rtp_timestamp, ns));
        ns
    }

    /// The largest correction a sender report made to where a track's earlier mapping (first
    /// arrival or previous report) placed the report's own RTP timestamp. Arrival times carry each
    /// track's network and jitter-buffer delay, so this is how far audio and video would have
    /// drifted apart without sender reports.
    pub fn max_correction(&self) -> Duration {
        Duration::from_nanos(u64::try_from(self.max_correction_ns).unwrap_or(u64::MAX))
    }

    /// Forgets a track's RTP mapping (its stream restarted with a new SSRC and RTP offset).
    pub fn reset_track(&mut self, track: TrackId) {
        if let Some(clock) = self.tracks.get_mut(track.0) {
            clock.first_frame = None;
            clock.sender_report = None;
        }
    }
}

fn elapsed_ns(origin: Instant, now: Instant) -> i128 {
    now.saturating_duration_since(origin).as_nanos() as i128
}

#[cfg(test)]
mod tests {
    use super::*;

    const NTP_EPOCH: u64 = 3_970_000_000 << 32;

    fn ntp_at(seconds: f64) -> u64 {
        NTP_EPOCH + (seconds * 4_294_967_296.0) as u64
    }

    #[test]
    fn ntp_fixed_point_converts_to_nanoseconds() {
        assert_eq!(ntp_to_ns(1 << 32), 1_000_000_000);
        assert_eq!(ntp_to_ns((2 << 32) | (1 << 31)), 2_500_000_000);
    }

    #[test]
    fn before_any_sender_report_each_track_starts_at_its_first_arrival() {
        let t = Instant::now();
        let mut tl = Timeline::default();
        let audio = tl.add_track(48_000);
        let video = tl.add_track(90_000);
        assert_eq!(tl.to_ns(audio, 1_000, t), 0);
        assert_eq!(tl.to_ns(video, 5_000_000, t + Duration::from_millis(30)), 30_000_000);
        assert_eq!(tl.to_ns(audio, 1_000 + 48_000, t + Duration::from_millis(1020)), 1_000_000_000);
        assert_eq!(tl.to_ns(video, 5_000_000 + 9_000, t + Duration::from_millis(900)), 130_000_000);
    }

    /// Audio and video captured together, sent with unrelated RTP offsets (video close to the
    /// 32-bit wrap), audio starting first and video arriving 70 ms later than audio.
    #[test]
    fn sender_reports_line_up_audio_and_video_within_40_ms() {
        let t0 = Instant::now();
        let at = |seconds: f64| t0 + Duration::from_secs_f64(seconds);
        let audio_rtp = |c: f64| (1 << 32) + 12_345 + (c * 48_000.0) as u64;
        let video_rtp = |c: f64| (1 << 32) + 4_294_000_000 + (c * 90_000.0) as u64;
        let (audio_delay, video_delay) = (0.020, 0.090);

        let mut tl = Timeline::default();
        let audio = tl.add_track(48_000);
        let video = tl.add_track(90_000);
        tl.to_ns(audio, audio_rtp(0.0), at(audio_delay));
        tl.to_ns(video, video_rtp(0.3), at(0.3 + video_delay));

        let skew_ms = |tl: &mut Timeline, c: f64| {
            let a = tl.to_ns(audio, audio_rtp(c), at(c + audio_delay));
            let v = tl.to_ns(video, video_rtp(c), at(c + video_delay));
            (v - a).abs() as f64 / 1e6
        };
        assert!(skew_ms(&mut tl, 0.4) > 60.0, "without reports the arrival skew shows");

        tl.on_sender_report(audio, ntp_at(0.5), audio_rtp(0.5), at(0.5 + audio_delay));
        tl.on_sender_report(video, ntp_at(0.7), video_rtp(0.7), at(0.7 + video_delay));
        for c in [0.8, 1.0, 5.0, 60.0] {
            let skew = skew_ms(&mut tl, c);
            assert!(skew < 40.0, "skew {skew} ms at {c} s");
            assert!(skew < 0.1, "same NTP clock, so skew is only rounding: {skew} ms");
        }
        // The audio track, whose report fixed the offset, did not jump.
        assert_eq!(tl.to_ns(audio, audio_rtp(2.0), at(2.5)), 2_000_000_000);
    }

    /// Largest correction, in ms, for audio and video captured together and arriving the given
    /// seconds after capture, with consistent sender reports of both at 1 s and 2 s.
    fn drift_ms(audio_delay: f64, video_delay: f64, video_reports_first: bool) -> f64 {
        let t0 = Instant::now();
        let at = |seconds: f64| t0 + Duration::from_secs_f64(seconds);
        let audio_rtp = |c: f64| (1 << 32) + 700 + (c * 48_000.0) as u64;
        let video_rtp = |c: f64| (1 << 32) + 3_000_000_000 + (c * 90_000.0) as u64;
        let mut tl = Timeline::default();
        let audio = tl.add_track(48_000);
        let video = tl.add_track(90_000);
        tl.to_ns(audio, audio_rtp(0.0), at(audio_delay));
        tl.to_ns(video, video_rtp(0.0), at(video_delay));
        for c in [1.0, 2.0] {
            let audio_report = (audio, ntp_at(c), audio_rtp(c), at(c + audio_delay));
            let video_report = (video, ntp_at(c), video_rtp(c), at(c + video_delay));
            let reports = if video_reports_first { [video_report, audio_report] } else { [audio_report, video_report] };
            for (track, ntp, rtp, now) in reports {
                tl.on_sender_report(track, ntp, rtp, now);
            }
        }
        tl.max_correction().as_secs_f64() * 1e3
    }

    #[test]
    fn video_arriving_120_ms_behind_audio_shows_120_ms_of_drift_whichever_reports_first() {
        for video_reports_first in [false, true] {
            let drift = drift_ms(0.020, 0.140, video_reports_first);
            assert!((drift - 120.0).abs() < 0.1, "{drift} ms");
        }
    }

    #[test]
    fn sender_reports_that_agree_with_the_arrival_times_show_no_drift() {
        assert!(drift_ms(0.050, 0.050, false) < 0.1);
        assert_eq!(Timeline::default().max_correction(), Duration::ZERO);
    }

    #[test]
    fn later_reports_jittering_by_less_than_10_ms_leave_the_mapping_and_larger_moves_correct_it() {
        let t0 = Instant::now();
        let at = |seconds: f64| t0 + Duration::from_secs_f64(seconds);
        let video_rtp = |c: f64| (1 << 32) + 5_000 + (c * 90_000.0) as u64;
        let mut tl = Timeline::default();
        let video = tl.add_track(90_000);
        tl.on_sender_report(video, ntp_at(1.0), video_rtp(1.0), at(1.0));
        let frame = |tl: &mut Timeline| tl.to_ns(video, video_rtp(3.0), at(3.0));
        let before = frame(&mut tl);
        tl.on_sender_report(video, ntp_at(2.005), video_rtp(2.0), at(2.0));
        assert_eq!(frame(&mut tl), before, "5 ms of jitter moves nothing");
        tl.on_sender_report(video, ntp_at(2.025), video_rtp(2.0), at(2.1));
        let moved_ms = (frame(&mut tl) - before) as f64 / 1e6;
        assert!((moved_ms - 25.0).abs() < 0.01, "25 ms of drift is corrected: {moved_ms} ms");
        assert!((tl.max_correction().as_secs_f64() - 0.025).abs() < 1e-5);
    }

    #[test]
    fn a_reset_track_is_anchored_again_at_its_next_frame() {
        let t = Instant::now();
        let mut tl = Timeline::default();
        let video = tl.add_track(90_000);
        tl.to_ns(video, 1_000, t);
        tl.reset_track(video);
        assert_eq!(tl.to_ns(video, 777, t + Duration::from_secs(2)), 2_000_000_000);
    }
}
