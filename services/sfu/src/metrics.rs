//! The media server's metrics (docs/operations.md, "Metrics"), set once a second from its media
//! threads' stats summed and the sockets' counters: nothing is counted on the packet path but
//! plain integers, and the forwarding latency once per batch of datagrams
//! ([`crate::media_loop`]).

use std::sync::atomic::Ordering;

use crate::media_loop::Counters;
use crate::server::Stats;

/// Every media thread's stats together.
pub fn total(all: &[Stats]) -> Stats {
    let mut total = Stats::default();
    for stats in all {
        total.rooms += stats.rooms;
        total.connections += stats.connections;
        total.published_tracks += stats.published_tracks;
        total.copies += stats.copies;
        let (sum, counts) = (&mut total.counts, &stats.counts);
        sum.forwarded += counts.forwarded;
        sum.unsendable += counts.unsendable;
        sum.keyframe_requests += counts.keyframe_requests;
        sum.refused += counts.refused;
        sum.over_cap += counts.over_cap;
        sum.nacked += counts.nacked;
        sum.resent += counts.resent;
        let (sum, drops) = (&mut total.forwarder_drops, &stats.forwarder_drops);
        sum.unknown_ssrc += drops.unknown_ssrc;
        sum.oversized += drops.oversized;
        sum.nack_misses += drops.nack_misses;
        let (sum, drops) = (&mut total.demux_drops, &stats.demux_drops);
        sum.unknown_source += drops.unknown_source;
        sum.malformed_stun += drops.malformed_stun;
        sum.unknown_ufrag += drops.unknown_ufrag;
        total.layer_switches.up += stats.layer_switches.up;
        total.layer_switches.down += stats.layer_switches.down;
    }
    total
}

pub fn record(stats: &Stats, counters: &Counters, estimates: impl Iterator<Item = u64>) {
    metrics::gauge!("sfu_rooms_active").set(stats.rooms as f64);
    metrics::gauge!("sfu_connections_active").set(stats.connections as f64);
    metrics::gauge!("sfu_tracks_published").set(stats.published_tracks as f64);
    metrics::gauge!("sfu_subscriptions_active").set(stats.copies as f64);
    let read = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    metrics::counter!("sfu_datagrams_received_total").absolute(read(&counters.datagrams_in));
    metrics::counter!("sfu_datagrams_sent_total").absolute(read(&counters.datagrams_out));
    metrics::counter!("sfu_received_bytes_total").absolute(read(&counters.bytes_in));
    metrics::counter!("sfu_sent_bytes_total").absolute(read(&counters.bytes_out));
    metrics::counter!("sfu_packets_forwarded_total").absolute(stats.counts.forwarded);
    metrics::counter!("sfu_keyframe_requests_total").absolute(stats.counts.keyframe_requests);
    // Subscribers' NACKs: the packets asked for again, those sent again, those no longer cached
    // (the rest were beyond a subscriber's budget for retransmissions).
    metrics::counter!("sfu_nack_requested_packets_total").absolute(stats.counts.nacked);
    metrics::counter!("sfu_nack_resent_packets_total").absolute(stats.counts.resent);
    metrics::counter!("sfu_nack_missed_packets_total").absolute(stats.forwarder_drops.nack_misses);
    metrics::counter!("sfu_refusals_total").absolute(stats.counts.refused);
    metrics::counter!("sfu_layer_switches_total", "direction" => "up").absolute(stats.layer_switches.up);
    metrics::counter!("sfu_layer_switches_total", "direction" => "down").absolute(stats.layer_switches.down);
    // One sample per subscriber a second: the distribution, not each subscriber's figure.
    let estimate = metrics::histogram!("sfu_subscriber_estimate_bits_per_second");
    for bits_per_second in estimates {
        estimate.record(bits_per_second as f64);
    }
    let dropped = [
        ("unknown_source", stats.demux_drops.unknown_source),
        ("malformed_stun", stats.demux_drops.malformed_stun),
        ("unknown_ufrag", stats.demux_drops.unknown_ufrag),
        ("unknown_ssrc", stats.forwarder_drops.unknown_ssrc),
        ("oversized", stats.forwarder_drops.oversized),
        ("unsendable", stats.counts.unsendable),
        ("over_cap", stats.counts.over_cap),
    ];
    for (reason, count) in dropped {
        metrics::counter!("sfu_dropped_total", "reason" => reason).absolute(count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threads_stats_add_up_field_by_field() {
        let mut one = Stats { rooms: 1, connections: 3, copies: 2, ..Stats::default() };
        one.counts.forwarded = 100;
        one.counts.resent = 3;
        one.demux_drops.unknown_ufrag = 1;
        one.layer_switches.up = 2;
        let mut other = Stats { rooms: 2, published_tracks: 1, ..Stats::default() };
        other.counts.forwarded = 50;
        other.counts.resent = 2;
        other.forwarder_drops.oversized = 4;
        other.layer_switches.down = 1;
        let sum = total(&[one, other]);
        assert_eq!((sum.rooms, sum.connections, sum.published_tracks, sum.copies), (3, 3, 1, 2));
        assert_eq!((sum.counts.forwarded, sum.counts.resent), (150, 5));
        assert_eq!((sum.demux_drops.unknown_ufrag, sum.forwarder_drops.oversized), (1, 4));
        assert_eq!((sum.layer_switches.up, sum.layer_switches.down), (2, 1));
        assert_eq!(total(&[]), Stats::default());
    }
}
