//! `forward-load`: the SFU's forwarding core (`confab_sfu::forwarder`) under one publisher's 720p
//! simulcast and N subscribers, on one core, against a floor in the same run.
//!
//! The publisher's three VP8 layers (≈150 kbit/s, 500 kbit/s, 1.5 Mbit/s at 30 fps, a keyframe
//! every 2 s, 1,200-byte packets) are generated once; a third of the subscribers have an estimate
//! that carries each layer. After a warm-up (rates measured, keyframes seen, layers settled) the
//! timed run hands every packet to the forwarder and, for each packet it forwards, copies it into
//! that subscriber's send buffer and re-bases its VP8 PictureID, as the I/O will before
//! encrypting. The floor does only the copies, to the same subscribers, from a table computed
//! beforehand: fan-out with no decision. No sockets and no SRTP: this measures the decisions, not
//! the network path (`deploy/local/bench-sfu` will, once the SFU runs). Heap allocations during the
//! timed run are counted with a counting global allocator.
//!
//! Results and the command: docs/benchmarks.md.

use std::alloc::System;
use std::time::{Duration, Instant};

use clap::Parser;
use confab_sfu::forward::Codec;
use confab_sfu::forwarder::{Action, DownId, Forwarder, Packet};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[derive(Parser)]
struct Args {
    /// Subscriber counts, one run each.
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000")]
    subscribers: Vec<usize>,
    /// Seconds of media in the timed run (after 3 s of warm-up).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

/// (SSRC, bit rate) of each layer, lowest first.
const LAYERS: [(u32, u64); 3] = [(0x1000, 150_000), (0x2000, 500_000), (0x3000, 1_500_000)];
const PACKET: usize = 1200;
const FPS: u64 = 30;
const KEYFRAME_EVERY: u64 = 2 * FPS;
const WARM_UP: Duration = Duration::from_secs(3);
const PUBLISHER: u64 = 1;

/// One generated packet: its layer, numbers, arrival offset and bytes (a VP8 payload).
struct Generated {
    layer: usize,
    sequence_number: u16,
    timestamp: u32,
    at: Duration,
    bytes: Vec<u8>,
}

/// `length` of the three layers' packets, in arrival order.
fn generate(length: Duration) -> Vec<Generated> {
    let mut packets = Vec::new();
    for (layer, (_, rate)) in LAYERS.iter().enumerate() {
        let frame_bytes = (rate / 8 / FPS) as usize;
        let per_frame = frame_bytes.div_ceil(PACKET);
        let mut sequence_number = (layer as u16) * 10_000;
        for frame in 0..length.as_secs() * FPS {
            let picture_id = (frame & 0x7fff) as u16;
            for n in 0..per_frame {
                let [high, low] = (0x8000 | picture_id).to_be_bytes();
                let start = if n == 0 { 0x10 } else { 0x00 };
                let tag = if frame % KEYFRAME_EVERY == 0 { 0x50 } else { 0x51 };
                let mut bytes = vec![0x80 | start, 0x80, high, low, tag];
                // Full packets, the frame's remainder in its last.
                bytes.resize(PACKET.min(frame_bytes - n * PACKET), 0x55);
                let at = Duration::from_micros(frame * 1_000_000 / FPS + n as u64 * 200);
                let timestamp = (frame * 90_000 / FPS) as u32;
                packets.push(Generated { layer, sequence_number, timestamp, at, bytes });
                sequence_number = sequence_number.wrapping_add(1);
            }
        }
    }
    packets.sort_by_key(|p| p.at);
    packets
}

fn packet(generated: &Generated) -> Packet<'_> {
    Packet {
        connection: PUBLISHER,
        ssrc: LAYERS[generated.layer].0,
        sequence_number: generated.sequence_number,
        timestamp: generated.timestamp,
        marker: false,
        payload: &generated.bytes,
    }
}

/// A forwarder with the publisher's track and `subscribers` copies, a third on each layer.
fn forwarder(subscribers: usize, t0: Instant) -> (Forwarder, Vec<DownId>) {
    let mut forwarder = Forwarder::default();
    let track = forwarder.publish(PUBLISHER, Some(Codec::Vp8), 90_000, LAYERS.len()).expect("a valid track");
    for (layer, (ssrc, _)) in LAYERS.iter().enumerate() {
        forwarder.bind(track, layer as u8, *ssrc).expect("a layer of its own");
    }
    let downs: Vec<DownId> = (0..subscribers)
        .map(|n| {
            let down = forwarder.subscribe(track).expect("the track");
            // Estimates between each layer's rate and the next one's.
            let estimate = [300_000, 1_000_000, 10_000_000][n % 3];
            forwarder.request(down, Some(2), t0);
            forwarder.estimate(down, estimate, t0);
            down
        })
        .collect();
    (forwarder, downs)
}

struct Run {
    forwarded: u64,
    elapsed: Duration,
    allocations: usize,
    /// Forwarded packets per layer.
    by_layer: [u64; 3],
}

/// The forwarder over `packets`; the send buffers are filled as the I/O would fill them.
fn ours(forwarder: &mut Forwarder, packets: &[Generated], t0: Instant, buffers: &mut [Vec<u8>]) -> Run {
    let mut actions = Vec::with_capacity(buffers.len() + 8);
    let (mut forwarded, mut by_layer) = (0, [0; 3]);
    let region = Region::new(GLOBAL);
    let started = Instant::now();
    for generated in packets {
        forwarder.on_packet(&packet(generated), t0 + generated.at, &mut actions);
        for action in &actions {
            if let Action::Forward { down, starts_segment, .. } = *action {
                // A copy only for a subscriber whose picture numbers differ, as the server does.
                if let Some(renumbering) = forwarder.renumber_payload(down, &generated.bytes, starts_segment) {
                    let buffer = &mut buffers[down.index];
                    buffer.clear();
                    buffer.extend_from_slice(&generated.bytes);
                    renumbering.apply(buffer);
                }
                forwarded += 1;
                by_layer[generated.layer] += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    Run { forwarded, elapsed, allocations: region.change().allocations, by_layer }
}

/// The floor: the same copies to the same subscribers, chosen by table.
fn floor(packets: &[Generated], receivers: &[Vec<usize>; 3], buffers: &mut [Vec<u8>]) -> Run {
    let (mut forwarded, mut by_layer) = (0, [0; 3]);
    let region = Region::new(GLOBAL);
    let started = Instant::now();
    for generated in packets {
        for &subscriber in &receivers[generated.layer] {
            let buffer = &mut buffers[subscriber];
            buffer.clear();
            buffer.extend_from_slice(&generated.bytes);
            forwarded += 1;
        }
        by_layer[generated.layer] += receivers[generated.layer].len() as u64;
    }
    let elapsed = started.elapsed();
    Run { forwarded, elapsed, allocations: region.change().allocations, by_layer }
}

fn main() {
    let args = Args::parse();
    let packets = generate(WARM_UP + Duration::from_secs(args.seconds));
    let split = packets.partition_point(|p| p.at < WARM_UP);
    let (warm_up, timed) = packets.split_at(split);
    let per_second = timed.len() as f64 / args.seconds as f64;
    println!(
        "publisher: 3 VP8 layers, {per_second:.0} packets/s in; {} s timed after {WARM_UP:?} warm-up",
        args.seconds
    );
    println!();
    println!(
        "| subscribers | forwarded | ours ns/forwarded packet | floor ns | ours ÷ floor | ours forwarded packets/s per core | allocations per forwarded packet | subscribers per layer (low/mid/high) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &subscribers in &args.subscribers {
        let t0 = Instant::now();
        let (mut forwarder, _) = forwarder(subscribers, t0);
        let mut buffers = vec![Vec::with_capacity(1500); subscribers];
        let settled = ours(&mut forwarder, warm_up, t0, &mut buffers);
        let run = ours(&mut forwarder, timed, t0, &mut buffers);
        // Who receives which layer at the end of the warm-up, for the floor's table.
        let seconds = args.seconds as f64;
        let per_layer: Vec<u64> =
            run.by_layer.iter().zip(&LAYERS).map(|(n, (_, rate))| packets_of(*n, *rate, seconds)).collect();
        let mut receivers: [Vec<usize>; 3] = Default::default();
        let mut next = 0;
        for (layer, count) in per_layer.iter().enumerate() {
            receivers[layer] = (next..next + *count as usize).collect();
            next += *count as usize;
        }
        let bare = floor(timed, &receivers, &mut buffers);
        let ns = |run: &Run| run.elapsed.as_nanos() as f64 / run.forwarded.max(1) as f64;
        println!(
            "| {subscribers} | {} | {:.1} | {:.1} | {:.2} | {:.0} | {:.4} | {} |",
            run.forwarded,
            ns(&run),
            ns(&bare),
            ns(&run) / ns(&bare),
            run.forwarded as f64 / run.elapsed.as_secs_f64(),
            run.allocations as f64 / run.forwarded.max(1) as f64,
            per_layer.iter().map(u64::to_string).collect::<Vec<_>>().join("/"),
        );
        assert!(settled.forwarded > 0, "nothing forwarded during the warm-up");
        assert_eq!(bare.forwarded, run.forwarded, "the floor copies what ours forwarded");
    }
}

/// How many subscribers received a layer, from the packets forwarded of it.
fn packets_of(forwarded: u64, rate: u64, seconds: f64) -> u64 {
    let packets_per_second = (rate / 8 / FPS).div_ceil(PACKET as u64) * FPS;
    (forwarded as f64 / (packets_per_second as f64 * seconds)).round() as u64
}
