//! What one subscriber received: packets per SSRC and the highest sequence number, extended past
//! wrap-around, from which lost packets follow as the gaps (RFC 3550's cumulative loss).

/// One SSRC's packets as one subscriber saw them.
struct Stream {
    ssrc: u32,
    packets: u64,
    first: i64,
    highest: i64,
}

pub struct Reception {
    streams: Vec<Stream>,
    pub connected: bool,
    pub failed: bool,
    /// When the connection came up, and when the first packet arrived.
    pub connected_at: Option<std::time::Instant>,
    pub first_at: Option<std::time::Instant>,
}

/// Packets received and packets expected (first to highest sequence number), summed over SSRCs.
#[derive(Clone, Copy, Default)]
pub struct Counts {
    pub received: u64,
    pub expected: u64,
}

impl Reception {
    /// A subscriber; `connected` at once when there is nothing to negotiate.
    pub fn new(connected: bool) -> Self {
        Self { streams: Vec::new(), connected, failed: false, connected_at: None, first_at: None }
    }

    pub fn count(&mut self, ssrc: u32, sequence_number: u16) {
        let Some(stream) = self.streams.iter_mut().find(|stream| stream.ssrc == ssrc) else {
            let first = i64::from(sequence_number);
            self.streams.push(Stream { ssrc, packets: 1, first, highest: first });
            return;
        };
        stream.packets += 1;
        let delta = i64::from(sequence_number.wrapping_sub(stream.highest as u16) as i16);
        stream.highest = stream.highest.max(stream.highest + delta);
    }

    pub fn counts(&self) -> Counts {
        self.streams.iter().fold(Counts::default(), |total, stream| Counts {
            received: total.received + stream.packets,
            expected: total.expected + (stream.highest - stream.first + 1) as u64,
        })
    }
}
