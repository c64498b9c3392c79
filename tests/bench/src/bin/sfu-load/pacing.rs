//! Real-time pacing of the publisher: each layer's frames at their time in the clip, looping,
//! as RTP packets with the layer's SSRC, running sequence numbers and 90 kHz timestamps. By
//! default a frame's packets go out together at the frame's time (as webrtc-rs's sample tracks
//! send them); with a pacing factor, a layer's packets are spaced at that multiple of the
//! layer's average packet rate, as a browser's pacer spreads a frame (libwebrtc uses 2.5).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use confab_bench::simulcast::LAYERS;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;

use crate::clip::Clip;

const VIDEO_CLOCK_RATE: u64 = 90_000;

/// Where one layer is in the looping clip, and its packets not yet due.
struct LayerPosition {
    frame: usize,
    lap: u32,
    sequence_number: u16,
    /// The least time between two packets of the layer (zero: none).
    spacing: Duration,
    /// Packets of frames already due, each with its own time, from the start.
    queued: VecDeque<(Duration, Packet)>,
    last_due: Duration,
}

pub struct Pacer {
    start: Instant,
    positions: Vec<LayerPosition>,
    payload_type: u8,
}

impl Pacer {
    /// `pacing_factor` 0 sends each frame as one burst.
    pub fn new(clip: &Clip, start: Instant, payload_type: u8, pacing_factor: f64) -> Self {
        let positions = (0..clip.layers.len())
            .map(|layer| LayerPosition {
                frame: 0,
                lap: 0,
                sequence_number: 0,
                spacing: match pacing_factor > 0.0 {
                    true => Duration::from_secs_f64(1.0 / (pacing_factor * clip.packets_per_second(layer))),
                    false => Duration::ZERO,
                },
                queued: VecDeque::new(),
                last_due: Duration::ZERO,
            })
            .collect();
        Self { start, positions, payload_type }
    }

    fn frame_due(&self, clip: &Clip, layer: usize) -> Duration {
        let position = &self.positions[layer];
        clip.period * position.lap + clip.layers[layer][position.frame].at
    }

    /// When the next packet or frame of any layer is due.
    pub fn next_at(&self, clip: &Clip) -> Instant {
        let earliest = (0..self.positions.len())
            .map(|layer| {
                let frame = self.frame_due(clip, layer);
                self.positions[layer].queued.front().map_or(frame, |(due, _)| frame.min(*due))
            })
            .min()
            .unwrap_or_default();
        self.start + earliest
    }

    /// Appends to `out` every packet due by `now`, each with its layer's index.
    pub fn take_due(&mut self, clip: &Clip, now: Instant, out: &mut Vec<(usize, Packet)>) {
        let elapsed = now.saturating_duration_since(self.start);
        for (layer, description) in LAYERS.iter().enumerate() {
            while self.frame_due(clip, layer) <= elapsed {
                let media_time = self.frame_due(clip, layer);
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
                    let due = media_time.max(position.last_due + position.spacing);
                    position.last_due = due;
                    position.queued.push_back((due, Packet { header, payload: payload.clone() }));
                }
                position.frame += 1;
                if position.frame == clip.layers[layer].len() {
                    position.frame = 0;
                    position.lap += 1;
                }
            }
            let queued = &mut self.positions[layer].queued;
            while queued.front().is_some_and(|(due, _)| *due <= elapsed) {
                let (_, packet) = queued.pop_front().expect("a packet is queued");
                out.push((layer, packet));
            }
        }
    }
}
