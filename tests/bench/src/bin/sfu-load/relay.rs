//! The bare-relay target (`rtp-relay`): clear RTP over UDP, no ICE, DTLS or SRTP. The publisher
//! sends the same paced packets to the relay's one socket; a subscriber registers by sending
//! `subscribe` from its own socket and then counts and times what arrives.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use confab_bench::simulcast::SUBSCRIBE;
use rtc::rtp::packet::Packet;
use rtc::shared::marshal::{Marshal, Unmarshal};
use tokio::net::UdpSocket;

use crate::pacing::Pacer;
use crate::reception::Reception;
use crate::{Run, Target};

const VP8_PAYLOAD_TYPE: u8 = 96;

pub struct Relay {
    pub address: SocketAddr,
}

impl Target for Relay {
    async fn publish(&mut self, run: &Rc<Run>) -> anyhow::Result<()> {
        let socket = UdpSocket::bind((run.local_ip, 0)).await?;
        let (run, relay) = (Rc::clone(run), self.address);
        run.publisher_connected.set(true);
        tokio::task::spawn_local(async move {
            if let Err(e) = send(&socket, relay, &run).await {
                eprintln!("sfu-load: the publisher stopped: {e:#}");
                run.publisher_failed.set(true);
            }
        });
        Ok(())
    }

    async fn subscribe(&mut self, run: &Rc<Run>) -> anyhow::Result<Rc<RefCell<Reception>>> {
        let socket = UdpSocket::bind((run.local_ip, 0)).await?;
        socket.send_to(SUBSCRIBE, self.address).await?;
        let reception = Rc::new(RefCell::new(Reception::new(true)));
        let (run, counted) = (Rc::clone(run), Rc::clone(&reception));
        tokio::task::spawn_local(async move {
            if let Err(e) = receive(&socket, &run, &counted).await {
                eprintln!("sfu-load: a subscriber stopped: {e:#}");
                counted.borrow_mut().failed = true;
            }
        });
        Ok(reception)
    }
}

async fn send(socket: &UdpSocket, relay: SocketAddr, run: &Run) -> anyhow::Result<()> {
    let mut pacer = Pacer::new(&run.clip, Instant::now(), VP8_PAYLOAD_TYPE, run.pacing_factor);
    let mut due = Vec::new();
    loop {
        tokio::time::sleep_until(pacer.next_at(&run.clip).into()).await;
        pacer.take_due(&run.clip, Instant::now(), &mut due);
        for (layer, packet) in due.drain(..) {
            let datagram = packet.marshal()?;
            run.timing.borrow_mut().sent(layer, &packet.payload, Instant::now());
            socket.send_to(&datagram, relay).await?;
        }
    }
}

async fn receive(socket: &UdpSocket, run: &Run, reception: &RefCell<Reception>) -> anyhow::Result<()> {
    let mut buffer = vec![0u8; 2048];
    loop {
        let len = socket.recv(&mut buffer).await?;
        let arrived = Instant::now();
        let packet = Packet::unmarshal(&mut &buffer[..len])?;
        run.timing.borrow_mut().arrived(&packet.payload, arrived);
        reception.borrow_mut().count(packet.header.ssrc, packet.header.sequence_number);
    }
}
