//! Forwarding latency, in → out, without trusting anything the server may rewrite. Janus and our
//! SFU give each subscriber its own SSRC, sequence numbers and timestamps, and rewrite the VP8
//! PictureID and TL0PICIDX in the payload descriptor; the VP8 data after the descriptor travels
//! unchanged. So a packet is known by a key made of that data (its length, its first and last 16
//! bytes): the publisher notes when it sent each key, a subscriber looks the key up when the
//! packet arrives, both on one clock in one process. Keys that occur twice in the clip cannot
//! say which packet arrived and are left out (counted as untimed); the clip loops, so a key's
//! entry holds its latest send.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::Hasher;
use std::time::Instant;

use confab_bench::simulcast::{FORWARDED, LAYERS};
use confab_payload::vp8::Vp8Descriptor;

/// A packet's identity that survives forwarding, from its RTP payload.
pub fn packet_key(payload: &[u8]) -> Option<u64> {
    let descriptor = Vp8Descriptor::parse(payload).ok()?;
    let media = payload.get(descriptor.len..)?;
    let edge = media.len().min(16);
    let mut hasher = DefaultHasher::new();
    hasher.write_usize(media.len());
    hasher.write(&media[..edge]);
    hasher.write(&media[media.len() - edge..]);
    Some(hasher.finish())
}

/// When each packet of the clip was last sent, and the latencies measured in the window.
pub struct Timing {
    sent: HashMap<u64, Instant>,
    ambiguous: HashSet<u64>,
    /// Whether arrivals are being recorded (the measured window).
    pub measuring: bool,
    pub latencies_us: Vec<u32>,
    /// Packets received in the window whose send time is unknown.
    pub untimed: u64,
    /// Packets of the forwarded layer sent so far: what each subscriber should receive.
    pub forwarded_layer_sent: u64,
}

impl Timing {
    /// A table for the clip's packets, given every payload the clip holds.
    pub fn new<'a>(payloads: impl Iterator<Item = &'a bytes::Bytes>) -> Self {
        let mut seen = HashSet::new();
        let mut ambiguous = HashSet::new();
        for key in payloads.filter_map(|payload| packet_key(payload)) {
            if !seen.insert(key) {
                ambiguous.insert(key);
            }
        }
        Self {
            sent: HashMap::with_capacity(seen.len()),
            ambiguous,
            measuring: false,
            latencies_us: Vec::new(),
            untimed: 0,
            forwarded_layer_sent: 0,
        }
    }

    pub fn ambiguous_keys(&self) -> usize {
        self.ambiguous.len()
    }

    pub fn sent(&mut self, layer: usize, payload: &[u8], at: Instant) {
        if LAYERS[layer].ssrc == FORWARDED.ssrc {
            self.forwarded_layer_sent += 1;
        }
        if let Some(key) = packet_key(payload).filter(|key| !self.ambiguous.contains(key)) {
            self.sent.insert(key, at);
        }
    }

    pub fn arrived(&mut self, payload: &[u8], at: Instant) {
        if !self.measuring {
            return;
        }
        match packet_key(payload).and_then(|key| self.sent.get(&key)) {
            Some(sent) => {
                let latency = at.saturating_duration_since(*sent).as_micros();
                self.latencies_us.push(latency.min(u128::from(u32::MAX)) as u32);
            }
            None => self.untimed += 1,
        }
    }

    /// The `q`-quantile of the window's latencies, in milliseconds.
    pub fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
        if sorted_us.is_empty() {
            return f64::NAN;
        }
        let index = ((sorted_us.len() - 1) as f64 * q).round() as usize;
        f64::from(sorted_us[index]) / 1000.0
    }
}
