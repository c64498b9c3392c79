//! A subscribe connection's bandwidth estimate, made on the sending side as browsers expect
//! (transport-wide congestion control): every packet the server sends the subscriber carries a
//! transport-wide sequence number (the TWCC header extension); the subscriber reports when each
//! arrived; those reports, joined with when each packet left and its size, feed webrtc-rs's GCC,
//! whose target is the bandwidth the server fits the subscriber's layers to.
//!
//! webrtc-rs's TWCC-sender and congestion-control interceptors did this inside the connection's
//! interceptor chain, where every forwarded copy paid for it: three hash-map inserts per packet
//! and two more moves of the packet through the chain. Here a packet's record is one slot of a
//! ring, indexed by its number.

use std::time::{Duration, Instant};

use rtc::interceptor::{BandwidthEstimator, Gcc, PacketReport, convert_twcc};
use rtc::rtcp::transport_feedbacks::cc_feedback_report::Ecn;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;

/// Where a subscriber's estimate starts, bits per second: enough for a middle layer and audio,
/// so a new subscriber sees a picture at once and climbs as the estimate grows.
pub const INITIAL: f64 = 1_000_000.0;
const MIN: f64 = 100_000.0;
const MAX: f64 = 20_000_000.0;

/// How many sent packets are remembered: about two seconds of a 720p layer and its audio, and
/// half a second of a meeting's several streams, against feedback that comes every 50–100 ms.
/// Feedback about a packet older than that is ignored.
const WINDOW: usize = 512;

/// A sent packet, until its feedback is read: 32 bytes, so that a subscriber's ring is 16 KiB.
#[derive(Debug, Clone, Copy)]
struct Sent {
    /// Its number, unwrapped; `u64::MAX` for a slot never used.
    number: u64,
    /// Microseconds after the ring's epoch.
    departure: u64,
    /// Microseconds on the subscriber's clock; [`NO_ARRIVAL`] if not known.
    arrival: u64,
    /// On the wire, bytes.
    size: u16,
    arrived: bool,
}

/// A [`Sent::arrival`] not known: not arrived, or reported without a time.
const NO_ARRIVAL: u64 = u64::MAX;

/// One subscribe connection's transport-wide numbering and estimate.
pub struct SendSide {
    /// The unwrapped number of the next packet.
    next: u64,
    /// What [`Sent::departure`] counts from.
    epoch: Instant,
    sent: Box<[Sent]>,
    /// The highest number the subscriber reported as arrived.
    acknowledged: Option<u64>,
    /// The lowest number not yet given to GCC.
    unreported: u64,
    gcc: Gcc,
    /// Reused for each feedback's reports.
    reports: Vec<PacketReport>,
}

impl SendSide {
    pub fn new(now: Instant) -> Self {
        let empty = Sent { number: u64::MAX, departure: 0, arrival: NO_ARRIVAL, size: 0, arrived: false };
        Self {
            next: 0,
            epoch: now,
            sent: vec![empty; WINDOW].into_boxed_slice(),
            acknowledged: None,
            unreported: 0,
            gcc: Gcc::new(INITIAL, MIN, MAX),
            reports: Vec::new(),
        }
    }

    /// Bits per second the path to the subscriber carries, by GCC's reading of its feedback.
    pub fn estimate(&self) -> u64 {
        self.gcc.target_bitrate() as u64
    }

    /// Numbers a packet of `size` bytes leaving now: the number its TWCC extension carries.
    pub fn number(&mut self, size: usize, now: Instant) -> u16 {
        let number = self.next;
        self.next += 1;
        let departure = now.saturating_duration_since(self.epoch).as_micros() as u64;
        let size = u16::try_from(size).unwrap_or(u16::MAX);
        self.sent[slot(number)] = Sent { number, departure, arrival: NO_ARRIVAL, size, arrived: false };
        number as u16
    }

    /// Takes back the number just given, for a packet that did not leave after all.
    pub fn unnumber(&mut self) {
        if let Some(last) = self.next.checked_sub(1) {
            self.sent[slot(last)].number = u64::MAX;
            self.next = last;
        }
    }

    /// The subscriber's TWCC feedback, received now: what it says arrived is recorded, and every
    /// packet up to the highest that arrived goes to GCC once (those not reported by then as
    /// lost).
    pub fn on_feedback(&mut self, feedback: &TransportLayerCc, now: Instant) {
        for acknowledgement in convert_twcc(feedback) {
            let Some(number) = self.unwrap(acknowledgement.sequence_number) else { continue };
            let sent = &mut self.sent[slot(number)];
            if sent.number != number {
                continue;
            }
            sent.arrived = acknowledgement.arrived;
            sent.arrival = acknowledgement.arrival.map_or(NO_ARRIVAL, |arrival| arrival.as_micros() as u64);
            if acknowledgement.arrived {
                self.acknowledged = Some(self.acknowledged.map_or(number, |highest| highest.max(number)));
            }
        }
        self.take_reports();
        self.gcc.on_reports(now, &self.reports);
    }

    /// Fills `reports` with the packets from the lowest unreported one up to the highest that
    /// arrived, in the order they were sent.
    fn take_reports(&mut self) {
        self.reports.clear();
        let Some(highest) = self.acknowledged.filter(|&highest| highest >= self.unreported) else { return };
        let oldest = self.next.saturating_sub(WINDOW as u64);
        for number in self.unreported.max(oldest)..=highest {
            let sent = self.sent[slot(number)];
            if sent.number != number {
                continue;
            }
            self.reports.push(PacketReport {
                ssrc: 0,
                id: number,
                rtp_sequence_number: 0,
                is_twcc: true,
                twcc_sequence_number: number as u16,
                size: usize::from(sent.size),
                arrived: sent.arrived,
                departure: self.epoch + Duration::from_micros(sent.departure),
                arrival: (sent.arrival != NO_ARRIVAL).then(|| Duration::from_micros(sent.arrival)),
                ecn: Ecn::NotEct,
            });
        }
        self.unreported = highest + 1;
    }

    /// The sent packet a 16-bit number in feedback names: the latest one that ends in it.
    fn unwrap(&self, sequence_number: u16) -> Option<u64> {
        let last = self.next.checked_sub(1)?;
        let behind = u64::from((last as u16).wrapping_sub(sequence_number));
        last.checked_sub(behind)
    }
}

fn slot(number: u64) -> usize {
    (number % WINDOW as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
        PacketStatusChunk, RecvDelta, RunLengthChunk, StatusChunkTypeTcc, SymbolTypeTcc,
    };

    /// Feedback for `count` packets from `base`, each arrived (`Some(delta)`, microseconds after
    /// the one before) or lost (`None`).
    fn feedback(base: u16, arrivals: &[Option<i64>]) -> TransportLayerCc {
        let chunk = |symbol| {
            PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                packet_status_symbol: symbol,
                run_length: 1,
            })
        };
        let symbol = |arrival: &Option<i64>| match arrival {
            Some(_) => SymbolTypeTcc::PacketReceivedLargeDelta,
            None => SymbolTypeTcc::PacketNotReceived,
        };
        TransportLayerCc {
            base_sequence_number: base,
            packet_status_count: arrivals.len() as u16,
            packet_chunks: arrivals.iter().map(|arrival| chunk(symbol(arrival))).collect(),
            recv_deltas: arrivals
                .iter()
                .flatten()
                .map(|&delta| RecvDelta { type_tcc_packet: SymbolTypeTcc::PacketReceivedLargeDelta, delta })
                .collect(),
            ..Default::default()
        }
    }

    /// Sends `count` packets of 1,200 bytes, one every `spacing`, from `at`.
    fn send(side: &mut SendSide, count: usize, at: Instant, spacing: Duration) -> Vec<u16> {
        (0..count).map(|index| side.number(1200, at + spacing * index as u32)).collect()
    }

    #[test]
    fn a_sent_packets_record_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Sent>(), 32);
    }

    #[test]
    fn packets_are_numbered_in_order_and_the_numbers_wrap() {
        let now = Instant::now();
        let mut side = SendSide::new(now);
        side.next = u64::from(u16::MAX);
        assert_eq!(send(&mut side, 3, now, Duration::ZERO), [u16::MAX, 0, 1]);
        side.unnumber();
        assert_eq!(side.number(1200, now), 1, "a number taken back is given again");
    }

    #[test]
    fn each_packet_goes_to_gcc_once_with_the_lost_among_them() {
        let now = Instant::now();
        let mut side = SendSide::new(now);
        send(&mut side, 4, now, Duration::from_millis(5));

        side.on_feedback(&feedback(0, &[Some(5_000), None]), now);
        assert_eq!(
            side.reports.iter().map(|r| (r.id, r.arrived)).collect::<Vec<_>>(),
            [(0, true)],
            "a loss counts once a later packet arrived"
        );

        // The same feedback again, and then feedback naming nothing new, report nothing twice.
        side.on_feedback(&feedback(0, &[Some(5_000), None]), now);
        assert!(side.reports.is_empty());
        side.on_feedback(&feedback(3, &[Some(15_000)]), now);
        assert_eq!(
            side.reports.iter().map(|r| (r.id, r.arrived)).collect::<Vec<_>>(),
            [(1, false), (2, false), (3, true)],
            "reported lost, or never reported, and a later packet arrived"
        );
    }

    #[test]
    fn feedback_about_packets_never_sent_or_long_gone_is_ignored() {
        let now = Instant::now();
        let mut side = SendSide::new(now);
        side.on_feedback(&feedback(7, &[Some(1_000)]), now);
        assert!(side.reports.is_empty(), "nothing was sent");

        let numbers = send(&mut side, WINDOW + 10, now, Duration::from_millis(1));
        side.on_feedback(&feedback(numbers[0], &[Some(1_000)]), now);
        assert!(side.reports.is_empty(), "its slot holds a later packet now");
        let last = *numbers.last().unwrap();
        side.on_feedback(&feedback(last, &[Some(1_000)]), now);
        assert_eq!(side.reports.len(), WINDOW, "only what the window still holds");
    }

    /// Feedback every 100 ms of a path that delivers everything promptly, then of one that loses
    /// every other packet: GCC's target falls below where it started.
    #[test]
    fn the_estimate_follows_the_feedback() {
        let start = Instant::now();
        let mut side = SendSide::new(start);
        let report = |side: &mut SendSide, round: u32, lossy: bool| {
            let at = start + Duration::from_millis(100) * round;
            let numbers = send(side, 20, at, Duration::from_millis(5));
            let arrivals: Vec<_> = (0..20).map(|index| (!lossy || index % 2 == 0).then_some(5_000)).collect();
            side.on_feedback(&feedback(numbers[0], &arrivals), at + Duration::from_millis(100));
        };
        for round in 0..20 {
            report(&mut side, round, false);
        }
        let clean = side.estimate();
        assert!(clean >= INITIAL as u64, "a clean path keeps at least the initial estimate: {clean}");
        for round in 20..40 {
            report(&mut side, round, true);
        }
        assert!(side.estimate() < INITIAL as u64 / 2, "half lost: {}", side.estimate());
    }
}
