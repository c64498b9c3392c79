//! Which simulcast layer a subscriber should receive: the highest the subscriber asked for (by the
//! size of its tile) that its bandwidth estimate carries. Going up needs headroom over the
//! layer's rate, going down does not, so an estimate hovering at a layer's rate does not make the
//! subscriber flap between two layers (each switch costs a keyframe).

use super::Layer;

/// How much more than a higher layer's rate the estimate must be to switch up to it.
pub const UPGRADE_HEADROOM: f64 = 1.2;

/// The layer to forward to a subscriber, or `None` for none (paused, or nothing published).
///
/// - `rates`: each layer's measured bitrate in bits per second, indexed by layer; `None` for a
///   layer the publisher does not send now (browsers turn layers off when their uplink is short).
/// - `estimate`: the subscriber's available bandwidth for this track, bits per second.
/// - `max_layer`: the highest layer the subscriber asked for; `None` if it paused the track.
/// - `current`: what it receives now.
///
/// When no layer fits the estimate, the lowest sent layer is chosen: video at the lowest size
/// rather than none (the estimate recovers faster with media flowing).
pub fn target_layer(
    rates: &[Option<u64>],
    estimate: u64,
    max_layer: Option<Layer>,
    current: Option<Layer>,
) -> Option<Layer> {
    let max_layer = max_layer?;
    let sent = || (0..=max_layer).filter(|layer| rates.get(usize::from(*layer)).copied().flatten().is_some());
    let fits = |layer: Layer| {
        let rate = rates[usize::from(layer)].unwrap_or_default() as f64;
        let needed = if current.is_some_and(|current| layer > current) { rate * UPGRADE_HEADROOM } else { rate };
        needed <= estimate as f64
    };
    sent().filter(|layer| fits(*layer)).max().or_else(|| sent().min())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rates of a 720p simulcast as browsers send it: 150 kbit/s, 500 kbit/s, 1.5 Mbit/s.
    const RATES: [Option<u64>; 3] = [Some(150_000), Some(500_000), Some(1_500_000)];

    #[test]
    fn the_highest_layer_the_estimate_carries_up_to_what_was_asked() {
        assert_eq!(target_layer(&RATES, 5_000_000, Some(2), Some(2)), Some(2));
        assert_eq!(target_layer(&RATES, 5_000_000, Some(1), Some(2)), Some(1), "a small tile");
        assert_eq!(target_layer(&RATES, 1_000_000, Some(2), Some(2)), Some(1), "down without headroom");
        assert_eq!(target_layer(&RATES, 100_000, Some(2), Some(1)), Some(0), "the lowest when nothing fits");
    }

    #[test]
    fn going_up_needs_headroom_and_staying_does_not() {
        assert_eq!(target_layer(&RATES, 1_600_000, Some(2), Some(1)), Some(1), "1.6 < 1.5 × 1.2");
        assert_eq!(target_layer(&RATES, 1_800_000, Some(2), Some(1)), Some(2));
        assert_eq!(target_layer(&RATES, 1_600_000, Some(2), Some(2)), Some(2), "no flapping back down");
        assert_eq!(target_layer(&RATES, 1_600_000, Some(2), None), Some(2), "a new subscriber takes what fits");
    }

    #[test]
    fn layers_not_sent_are_skipped_and_a_pause_forwards_nothing() {
        let top_off = [Some(150_000), Some(500_000), None];
        assert_eq!(target_layer(&top_off, 5_000_000, Some(2), Some(2)), Some(1));
        let only_top = [None, None, Some(1_500_000)];
        assert_eq!(target_layer(&only_top, 100_000, Some(2), None), Some(2));
        assert_eq!(target_layer(&only_top, 5_000_000, Some(1), None), None, "nothing sent up to what was asked");
        assert_eq!(target_layer(&RATES, 5_000_000, None, Some(2)), None, "paused");
        assert_eq!(target_layer(&[], 5_000_000, Some(2), None), None, "nothing published");
    }
}
