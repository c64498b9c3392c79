//! Properties of the forwarding core over arbitrary streams: three layers sent at once, the target
//! changing at any moment, keyframes anywhere, packets of a layer swapped with their neighbours.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Event {
    Packet { layer: Layer, starts_keyframe: bool },
    Target(Option<Layer>),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        10 => (0..3u8, prop::bool::weighted(0.1))
            .prop_map(|(layer, starts_keyframe)| Event::Packet { layer, starts_keyframe }),
        1 => prop::option::weighted(0.9, 0..3u8).prop_map(Event::Target),
    ]
}

/// Numbers the packets of each layer from its own start and lays the events out in time (1 ms
/// apart), then swaps the events at `swaps` with their successors.
fn incoming(events: &[Event], starts: [u16; 3], swaps: &[usize]) -> Vec<(Option<Incoming>, Option<Option<Layer>>)> {
    let t0 = Instant::now();
    let mut next = starts;
    let mut laid_out: Vec<_> = events
        .iter()
        .enumerate()
        .map(|(n, event)| match *event {
            Event::Packet { layer, starts_keyframe } => {
                let sequence_number = next[usize::from(layer)];
                next[usize::from(layer)] = sequence_number.wrapping_add(1);
                let packet = Incoming {
                    layer,
                    sequence_number,
                    timestamp: u32::from(sequence_number).wrapping_mul(3000),
                    starts_keyframe,
                    arrived: t0 + Duration::from_millis(n as u64),
                };
                (Some(packet), None)
            }
            Event::Target(target) => (None, Some(target)),
        })
        .collect();
    for &at in swaps {
        if at + 1 < laid_out.len() {
            laid_out.swap(at, at + 1);
        }
    }
    laid_out
}

/// The sequence numbers the subscriber receives, in order; each maps back to the packet it was.
fn forward(laid_out: &[(Option<Incoming>, Option<Option<Layer>>)]) -> Vec<u16> {
    let mut track = DownTrack::new(90_000);
    let mut sent = Vec::new();
    for (packet, target) in laid_out {
        if let Some(target) = target {
            track.set_target(*target);
        }
        if let Some(packet) = packet
            && let Verdict::Forward(forwarded) = track.on_packet(packet)
        {
            // A NACK for it right away finds the packet it was.
            let original = track.original(forwarded.sequence_number).map(|o| (o.layer, o.sequence_number));
            assert_eq!(original, Some((packet.layer, packet.sequence_number)), "sent as {}", forwarded.sequence_number);
            sent.push(forwarded.sequence_number);
        }
    }
    sent
}

proptest! {
    #[test]
    fn in_order_packets_come_out_numbered_one_after_another(
        events in prop::collection::vec(event(), 0..1500),
        starts in any::<[u16; 3]>(),
    ) {
        let sent = forward(&incoming(&events, starts, &[]));
        for pair in sent.windows(2) {
            prop_assert_eq!(pair[1], pair[0].wrapping_add(1), "{:?}", sent);
        }
    }

    #[test]
    fn reordered_packets_never_reuse_a_number(
        events in prop::collection::vec(event(), 0..1500),
        starts in any::<[u16; 3]>(),
        swaps in prop::collection::vec(0..1500usize, 0..300),
    ) {
        let sent = forward(&incoming(&events, starts, &swaps));
        let mut seen = HashSet::new();
        for number in &sent {
            prop_assert!(seen.insert(*number), "{} sent twice in {:?}", number, sent);
        }
    }
}
