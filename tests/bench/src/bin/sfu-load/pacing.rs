//! Real-time pacing of the publisher: each layer's frames at their time in the clip, looping,
//! as RTP packets with the layer's SSRC, running sequence numbers and 90 kHz timestamps.

use std::time::{Duration, Instant};

use confab_bench::simulcast::LAYERS;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;

use crate::clip::Clip;

const VIDEO_CLOCK_RATE: u64 = 90_000;

/// Where one layer is in the looping clip.
struct LayerPosition {
    frame: usize,
    lap: u32,
    sequence_number: u16,
}

pub struct Pacer {
    start: Instant,
    positions: Vec<LayerPosition>,
    payload_type: u8,
}

impl Pacer {
    pub fn new(clip: &Clip, start: Instant, payload_type: u8) -> Self {
        let positions = clip.layers.iter().map(|_| LayerPosition { frame: 0, lap: 0, sequence_number: 0 }).collect();
        Self { start, positions, payload_type }
    }

    fn due(&self, clip: &Clip, layer: usize) -> Duration {
        let position = &self.positions[layer];
        clip.period * position.lap + clip.layers[layer][position.frame].at
    }

    /// When the next frame of any layer is due.
    pub fn next_at(&self, clip: &Clip) -> Instant {
        let earliest = (0..self.positions.len()).map(|layer| self.due(clip, layer)).min().unwrap_or_default();
        self.start + earliest
    }

    /// Appends to `out` the packets of every frame due by `now`, each with its layer's index.
    pub fn take_due(&mut self, clip: &Clip, now: Instant, out: &mut Vec<(usize, Packet)>) {
        for (layer, description) in LAYERS.iter().enumerate() {
            while self.start + self.due(clip, layer) <= now {
                let media_time = self.due(clip, layer);
                let timestamp = (media_time.as_micros() as u64 * VIDEO_CLOCK_RATE / 1_000_000) as u32;
                let position = &mut self.positions[layer];
                let frame = &clip.layers[layer][position.frame];
                for (index, payload) in frame.payloads.iter().enumerate() {
                    position.sequence_number = position.sequence_number.wrapping_add(1);
                    let header = Header {
                        version: 2,
                        marker: index + 1 == frame.payloads.len(),
                        payload_type: self.payload_type,
                        sequence_number: position.sequence_number,
                        timestamp,
                        ssrc: description.ssrc,
                        ..Default::default()
                    };
                    out.push((layer, Packet { header, payload: payload.clone() }));
                }
                position.frame += 1;
                if position.frame == clip.layers[layer].len() {
                    position.frame = 0;
                    position.lap += 1;
                }
            }
        }
    }
}
