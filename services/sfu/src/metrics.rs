//! The media server's metrics (docs/operations.md, "Metrics"), set once a second from its stats
//! and the socket's counters: nothing is counted on the packet path but plain integers.

use std::sync::atomic::Ordering;

use crate::media_loop::Counters;
use crate::server::Stats;

pub fn record(stats: &Stats, counters: &Counters) {
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
    metrics::counter!("sfu_refusals_total").absolute(stats.counts.refused);
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
