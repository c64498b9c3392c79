//! `rtc-packet-cost`: what webrtc-rs's sans-IO `rtc` (the WebRTC stack in the tree) costs per RTP
//! packet sent and received, the question docs/design/sfu-stack.md's benchmark gate asks before the
//! SFU's I/O is built on it (aim: ≤ 5 µs and ≤ 2 heap allocations per forwarded packet).
//!
//! Two `RTCPeerConnection`s in one process, connected (ICE, DTLS, SRTP with the profile they
//! negotiate) by handing each one's datagrams to the other: no sockets, so the figures are the
//! stack's own work. Then batches of 1,200-byte VP8-sized packets: `write_rtp` on the sender and
//! draining `poll_write` (the send side: interceptors, SRTP, marshalling), then `handle_read` on
//! the receiver and draining `poll_read` (the receive side). Each side is timed and its heap
//! allocations counted apart, with and without webrtc-rs's default interceptors (NACK, receiver
//! reports, TWCC). The floor, in the same run: copying the packet's bytes into a datagram buffer,
//! what a relay with no SRTP does per packet.
//!
//! Results and the command: docs/benchmarks.md.

use std::alloc::System;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use confab_sfu::connection::add_host_candidate;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_VP8, MediaEngine};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[derive(Parser)]
struct Args {
    /// Packets measured per configuration (after 1,000 of warm-up).
    #[arg(long, default_value_t = 200_000)]
    packets: usize,
}

const SSRC: u32 = 0x5eed_0001;
const PAYLOAD: usize = 1200;
const BATCH: usize = 500;

/// One side of the pair: its connection and the address its candidate names.
struct Side {
    pc: RTCPeerConnection,
    address: SocketAddr,
}

fn side(address: SocketAddr, interceptors: bool, sends: bool) -> anyhow::Result<(Side, Option<RTCRtpSenderId>)> {
    let mut media_engine = MediaEngine::default();
    let vp8 = RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
        payload_type: 96,
    };
    media_engine.register_codec(vp8.clone(), RtpCodecKind::Video)?;
    let mut registry = Registry::new();
    if interceptors {
        registry = register_default_interceptors(registry, &mut media_engine)?;
    }
    let settings = SettingEngineBuilder::new().with_answering_dtls_role(RTCDtlsRole::Server).build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_setting_engine(settings)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(Instant::now())?;
    add_host_candidate(&mut pc, address)?;
    let sender = if sends {
        let coding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(SSRC), ..Default::default() },
            codec: vp8.rtp_codec,
            ..Default::default()
        };
        let track =
            MediaStreamTrack::new("bench".into(), "video".into(), "video".into(), RtpCodecKind::Video, vec![coding]);
        Some(pc.add_track(track)?)
    } else {
        None
    };
    Ok((Side { pc, address }, sender))
}

/// Hands every datagram `from` has to send to `to`; how many.
fn deliver(from: &mut Side, to: &mut Side) -> anyhow::Result<usize> {
    let mut delivered = 0;
    while let Some(datagram) = from.pc.poll_write() {
        to.pc.handle_read(TaggedBytesMut {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: to.address,
                peer_addr: from.address,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: datagram.message,
        })?;
        delivered += 1;
    }
    Ok(delivered)
}

fn connected(side: &mut Side, connected: &mut bool) -> anyhow::Result<()> {
    while let Some(event) = side.pc.poll_event() {
        if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
            match state {
                RTCPeerConnectionState::Connected => *connected = true,
                RTCPeerConnectionState::Failed => bail!("the connection failed"),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Lets due timers run on both sides.
fn timers(sides: [&mut Side; 2]) -> anyhow::Result<()> {
    let now = Instant::now();
    for side in sides {
        if side.pc.poll_timeout().is_some_and(|due| due <= now) {
            side.pc.handle_timeout(now)?;
        }
    }
    Ok(())
}

/// A connected sender → receiver pair.
fn pair(interceptors: bool) -> anyhow::Result<(Side, Side, RTCRtpSenderId)> {
    let (mut sender, sender_id) = side("127.0.0.1:40001".parse()?, interceptors, true)?;
    let (mut receiver, _) = side("127.0.0.1:40002".parse()?, interceptors, false)?;
    let offer = sender.pc.create_offer(None)?;
    sender.pc.set_local_description(Instant::now(), offer.clone())?;
    receiver.pc.set_remote_description(Instant::now(), offer)?;
    let answer = receiver.pc.create_answer(None)?;
    receiver.pc.set_local_description(Instant::now(), answer.clone())?;
    sender.pc.set_remote_description(Instant::now(), answer)?;
    let (mut sender_up, mut receiver_up) = (false, false);
    let give_up = Instant::now() + Duration::from_secs(20);
    while !(sender_up && receiver_up) {
        if Instant::now() > give_up {
            bail!("the pair did not connect within 20 s");
        }
        let moved = deliver(&mut sender, &mut receiver)? + deliver(&mut receiver, &mut sender)?;
        connected(&mut sender, &mut sender_up)?;
        connected(&mut receiver, &mut receiver_up)?;
        timers([&mut sender, &mut receiver])?;
        if moved == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok((sender, receiver, sender_id.context("the sender's track")?))
}

#[derive(Default)]
struct Cost {
    packets: usize,
    send: Duration,
    send_allocations: usize,
    receive: Duration,
    receive_allocations: usize,
    received: usize,
    floor: Duration,
}

/// `packets` through the pair in batches, each side measured apart; `sequence_number` is the last
/// one sent (SRTP refuses a number again as a replay).
fn measure(
    sender: &mut Side,
    receiver: &mut Side,
    sender_id: RTCRtpSenderId,
    packets: usize,
    sequence_number: &mut u16,
) -> anyhow::Result<Cost> {
    let payload = Bytes::from(vec![0x55; PAYLOAD]);
    let payload_type = 96;
    let mut cost = Cost::default();
    let mut datagrams = Vec::with_capacity(BATCH * 2);
    let mut floor_buffer = Vec::with_capacity(1500);
    while cost.packets < packets {
        // Send side.
        datagrams.clear();
        let region = Region::new(GLOBAL);
        let started = Instant::now();
        for _ in 0..BATCH {
            *sequence_number = sequence_number.wrapping_add(1);
            let header = rtc::rtp::header::Header {
                version: 2,
                payload_type,
                sequence_number: *sequence_number,
                timestamp: u32::from(*sequence_number) * 3000,
                ssrc: SSRC,
                ..Default::default()
            };
            let packet = rtc::rtp::packet::Packet { header, payload: payload.clone() };
            let mut rtp_sender = sender.pc.rtp_sender(sender_id).context("the sender")?;
            rtp_sender.write_rtp(Instant::now(), packet)?;
            while let Some(datagram) = sender.pc.poll_write() {
                datagrams.push(datagram.message);
            }
        }
        cost.send += started.elapsed();
        cost.send_allocations += region.change().allocations;
        // Receive side.
        let region = Region::new(GLOBAL);
        let started = Instant::now();
        for message in datagrams.drain(..) {
            receiver.pc.handle_read(TaggedBytesMut {
                now: Instant::now(),
                transport: TransportContext {
                    local_addr: receiver.address,
                    peer_addr: sender.address,
                    ecn: None,
                    transport_protocol: TransportProtocol::UDP,
                },
                message,
            })?;
            while receiver.pc.poll_read().is_some() {
                cost.received += 1;
            }
        }
        cost.receive += started.elapsed();
        cost.receive_allocations += region.change().allocations;
        // The floor: the bytes of each packet into a datagram buffer, as a plain relay copies them.
        let started = Instant::now();
        for _ in 0..BATCH {
            floor_buffer.clear();
            floor_buffer.extend_from_slice(&[0x80, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            floor_buffer.extend_from_slice(&payload);
            std::hint::black_box(&floor_buffer);
        }
        cost.floor += started.elapsed();
        cost.packets += BATCH;
        // RTCP back, and timers (reports, NACK, TWCC), outside the timed parts.
        deliver(receiver, sender)?;
        timers([sender, receiver])?;
        while receiver.pc.poll_event().is_some() || sender.pc.poll_event().is_some() {}
    }
    Ok(cost)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "| interceptors | packets | send ns/packet | send allocations/packet | receive ns/packet | receive allocations/packet | received | floor ns/packet | send ÷ floor |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for interceptors in [false, true] {
        let (mut sender, mut receiver, sender_id) = pair(interceptors)?;
        let mut sequence_number = 0;
        measure(&mut sender, &mut receiver, sender_id, 1000, &mut sequence_number)?;
        let cost = measure(&mut sender, &mut receiver, sender_id, args.packets, &mut sequence_number)?;
        let per = |total: Duration| total.as_nanos() as f64 / cost.packets as f64;
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.0} | {:.1} | {} | {:.0} | {:.1} |",
            if interceptors { "default (NACK, RR, TWCC)" } else { "none" },
            cost.packets,
            per(cost.send),
            cost.send_allocations as f64 / cost.packets as f64,
            per(cost.receive),
            cost.receive_allocations as f64 / cost.packets as f64,
            cost.received,
            per(cost.floor),
            per(cost.send) / per(cost.floor),
        );
    }
    Ok(())
}
