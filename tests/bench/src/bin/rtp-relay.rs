//! `rtp-relay`: the floor of the SFU benchmark. One UDP socket, no ICE, DTLS or SRTP: a
//! subscriber registers by sending `subscribe` from its socket, and every clear RTP packet of the
//! publisher's top simulcast layer is copied to every registered subscriber, unchanged; the lower
//! layers are dropped, as an SFU drops them for viewers of the top one. The least forwarding one
//! publisher to N viewers costs on this machine: a receive and N sends per packet.

use std::net::{SocketAddr, UdpSocket};

use clap::Parser;
use confab_bench::simulcast::{FORWARDED, SUBSCRIBE};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:5004")]
    bind: SocketAddr,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let socket = UdpSocket::bind(args.bind)?;
    let mut subscribers: Vec<SocketAddr> = Vec::new();
    let mut buffer = [0u8; 2048];
    loop {
        let (len, from) = socket.recv_from(&mut buffer)?;
        let datagram = &buffer[..len];
        if datagram == SUBSCRIBE {
            if !subscribers.contains(&from) {
                subscribers.push(from);
            }
            continue;
        }
        let is_forwarded_layer = len >= 12 && datagram[8..12] == FORWARDED.ssrc.to_be_bytes();
        if is_forwarded_layer {
            for subscriber in &subscribers {
                // A full socket buffer on one subscriber must not stop the others.
                let _ = socket.send_to(datagram, subscriber);
            }
        }
    }
}
