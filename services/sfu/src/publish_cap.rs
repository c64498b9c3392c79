//! A publisher's bitrate, capped. The answer to a publish offer tells the browser the most its
//! video may take, all simulcast layers together (`b=TIAS`, RFC 3890; browsers' encoders keep to
//! it), and the server polices what arrives: a publisher sending far beyond the cap (a modified
//! client, a flood) has the excess dropped and counted before anything is forwarded, so one
//! participant cannot fill every subscriber's link.

use std::time::Instant;

/// The most a publisher's video may take, bits per second: a 720p camera in three simulcast
/// layers (about 1.5 + 0.5 + 0.15 Mbit/s) with room to spare.
pub const MAX_VIDEO_BITRATE: u64 = 2_500_000;
/// What the policer lets through, bits per second: the video cap twice over (audio, keyframe
/// bursts, retransmissions), over a bucket of one second.
const POLICED_BITRATE: u64 = 2 * MAX_VIDEO_BITRATE;

/// `sdp` (an answer) with the video cap on every video section.
pub fn announce(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len() + 64);
    let mut in_video = false;
    for line in sdp.split_inclusive('\n') {
        let is_media = line.starts_with("m=");
        if is_media {
            in_video = line.starts_with("m=video");
        }
        // RFC 8866 §5: `b=` follows the section's `c=` (or its `i=`) and comes before `a=`; a
        // section that states a bandwidth already keeps it.
        if in_video && line.starts_with("b=") {
            in_video = false;
        }
        if in_video && line.starts_with("a=") {
            out.push_str(&format!("b=TIAS:{MAX_VIDEO_BITRATE}\r\n"));
            in_video = false;
        }
        out.push_str(line);
    }
    out
}

/// A token bucket over the bytes of a publisher's packets (or of what else one peer may cost the
/// server, at another rate), one second deep.
#[derive(Debug)]
pub struct Policer {
    /// Bytes a second, and the most the bucket holds.
    capacity: f64,
    /// Bytes that may still pass now.
    tokens: f64,
    last: Option<Instant>,
}

impl Default for Policer {
    /// A publisher's.
    fn default() -> Self {
        Self::new(POLICED_BITRATE)
    }
}

impl Policer {
    pub fn new(bits_per_second: u64) -> Self {
        let capacity = bits_per_second as f64 / 8.0;
        Self { capacity, tokens: capacity, last: None }
    }

    /// Whether a packet of `bytes` may pass at `now`.
    pub fn allows(&mut self, bytes: usize, now: Instant) -> bool {
        let capacity = self.capacity;
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * capacity;
            self.tokens = (self.tokens + refill).min(capacity);
        }
        self.last = Some(now);
        let fits = self.tokens >= bytes as f64;
        if fits {
            self.tokens -= bytes as f64;
        }
        fits
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_video_section_of_an_answer_states_the_cap_before_its_attributes() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\n";
        let capped = announce(sdp);
        assert_eq!(capped.matches("b=TIAS:2500000\r\n").count(), 2, "{capped}");
        assert!(capped.contains("c=IN IP4 0.0.0.0\r\nb=TIAS:2500000\r\na=mid:1\r\n"));
        assert!(capped.contains("c=IN IP4 0.0.0.0\r\na=mid:0\r\n"), "audio is not capped");
        assert_eq!(announce(&capped), capped, "once");
    }

    #[test]
    fn the_policer_passes_twice_the_cap_and_drops_the_rest() {
        let t0 = Instant::now();
        let mut policer = Policer::default();
        let mut passed = 0u64;
        // 10 s of 1,200-byte packets at 8 Mbit/s: the first second's bucket, then 5 Mbit/s.
        for n in 0..8_333u32 {
            if policer.allows(1200, t0 + Duration::from_micros(u64::from(n) * 1_200)) {
                passed += 1200 * 8;
            }
        }
        let rate = passed as f64 / 10.0;
        assert!((5_000_000.0..6_100_000.0).contains(&rate), "{rate} bit/s passed");
    }
}
