//! The media port's system calls in batches: one `recvmmsg` reads up to [`RECEIVE_BATCH`] waiting
//! datagrams, one `sendmmsg` hands the kernel up to [`SEND_BATCH`] of the datagrams they produced.
//! A forwarded packet is one datagram per subscriber, so a packet for 500 viewers was 500 `sendto`
//! calls; batched it is two. What a batch saves is each call's entry and exit, not the kernel's
//! work per datagram (docs/benchmarks.md, "SFU forwarding", has what it bought). The buffers and
//! message headers are allocated once, with the socket, and nix's wrappers keep the crate free of
//! `unsafe`. The headers hold raw pointers, so a [`BatchSocket`] is not `Send`: it lives on the
//! media thread that made it ([`crate::media_loop`]).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use bytes::BytesMut;
use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg, setsockopt, sockopt,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// The largest datagram read: more than any path's MTU.
pub const MAX_DATAGRAM: usize = 2048;
/// Datagrams read per system call.
pub const RECEIVE_BATCH: usize = 32;
/// Datagrams sent per system call (the kernel takes up to 1,024).
pub const SEND_BATCH: usize = 256;

/// What the media port's socket asks the kernel to buffer each way. Publishers' keyframes arrive
/// in bursts (a 720p keyframe is tens of packets, and many publishers' can coincide) while the
/// media thread is busy forwarding the last batch; the default buffer (about 200 KiB) overflowed
/// at 50 publishers on this machine and dropped tens of thousands of datagrams in a 20 s window
/// (docs/benchmarks.md). The kernel grants at most `net.core.rmem_max` / `wmem_max`
/// (docs/operations.md).
pub const SOCKET_BUFFER: usize = 4 << 20;

/// Asks for [`SOCKET_BUFFER`] each way on `socket`.
pub fn enlarge_buffers(socket: &std::net::UdpSocket) -> io::Result<()> {
    setsockopt(socket, sockopt::RcvBuf, &SOCKET_BUFFER)?;
    setsockopt(socket, sockopt::SndBuf, &SOCKET_BUFFER)?;
    Ok(())
}

/// A UDP socket read and written a batch at a time.
pub struct BatchSocket {
    socket: UdpSocket,
    buffers: Box<[[u8; MAX_DATAGRAM]; RECEIVE_BATCH]>,
    /// The last batch read, in `buffers`' order: each datagram's sender and length (`None`: cut
    /// short, or from no IP address).
    received: Vec<Option<(SocketAddr, usize)>>,
    receive_headers: MultiHeaders<SockaddrStorage>,
    /// Datagrams queued for the next [`BatchSocket::flush`].
    queued: Vec<(SocketAddr, BytesMut)>,
    addresses: Vec<Option<SockaddrStorage>>,
    send_headers: MultiHeaders<SockaddrStorage>,
}

impl BatchSocket {
    pub fn new(socket: UdpSocket) -> Self {
        let buffers = vec![[0u8; MAX_DATAGRAM]; RECEIVE_BATCH].into_boxed_slice();
        Self {
            socket,
            buffers: buffers.try_into().expect("RECEIVE_BATCH buffers"),
            received: Vec::with_capacity(RECEIVE_BATCH),
            receive_headers: MultiHeaders::preallocate(RECEIVE_BATCH, None),
            queued: Vec::new(),
            addresses: Vec::with_capacity(SEND_BATCH),
            send_headers: MultiHeaders::preallocate(SEND_BATCH, None),
        }
    }

    /// Waits for datagrams and reads those waiting, up to [`RECEIVE_BATCH`]: then
    /// [`BatchSocket::received`] holds them. Cancel-safe: nothing is read until the socket is
    /// readable, and then at once.
    pub async fn receive(&mut self) -> io::Result<()> {
        let Self { socket, buffers, received, receive_headers, .. } = self;
        loop {
            socket.readable().await?;
            let read = socket.try_io(Interest::READABLE, || {
                received.clear();
                let mut slices = buffers.each_mut().map(|buffer| [IoSliceMut::new(buffer)]);
                let results = recvmmsg(socket.as_raw_fd(), receive_headers, &mut slices, MsgFlags::empty(), None)?;
                for message in results {
                    // A datagram larger than the buffer is cut short: nothing of ours sends one.
                    let whole = !message.flags.contains(MsgFlags::MSG_TRUNC);
                    let from = message.address.as_ref().and_then(socket_address).filter(|_| whole);
                    received.push(from.map(|from| (from, message.bytes)));
                }
                Ok(())
            });
            match read {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                read => return read,
            }
        }
    }

    /// How many datagrams the last [`BatchSocket::receive`] read (some may be unusable:
    /// [`BatchSocket::received_at`] skips them).
    pub fn received_count(&self) -> usize {
        self.received.len()
    }

    /// The last read's `index`th datagram with its sender; `None` if it was cut short or came
    /// from no IP address. By index, so that datagrams can be sent between two of them.
    pub fn received_at(&self, index: usize) -> Option<(SocketAddr, &[u8])> {
        let (from, len) = (*self.received.get(index)?)?;
        Some((from, &self.buffers[index][..len]))
    }

    /// Queues a datagram for the next [`BatchSocket::flush`].
    pub fn queue(&mut self, to: SocketAddr, datagram: BytesMut) {
        self.queued.push((to, datagram));
    }

    /// How many datagrams wait for [`BatchSocket::flush`].
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    /// Hands every queued datagram to the kernel, [`SEND_BATCH`] a call, waiting while its send
    /// buffer is full. A datagram the kernel refuses (an unreachable destination, reported by
    /// ICMP on an earlier one) is dropped: how many were is returned.
    pub async fn flush(&mut self) -> usize {
        let Self { socket, queued, addresses, send_headers, .. } = self;
        let mut sent = 0;
        let mut refused = 0;
        while sent < queued.len() {
            let batch = &queued[sent..queued.len().min(sent + SEND_BATCH)];
            addresses.clear();
            addresses.extend(batch.iter().map(|(to, _)| Some(SockaddrStorage::from(*to))));
            let slices: [[IoSlice<'_>; 1]; SEND_BATCH] =
                std::array::from_fn(|i| [IoSlice::new(batch.get(i).map_or(&[][..], |(_, datagram)| &datagram[..]))]);
            if socket.writable().await.is_err() {
                refused += queued.len() - sent;
                break;
            }
            let written = socket.try_io(Interest::WRITABLE, || {
                let no_control: [ControlMessage<'_>; 0] = [];
                let results =
                    sendmmsg(socket.as_raw_fd(), send_headers, &slices, &*addresses, no_control, MsgFlags::empty())?;
                Ok(results.count())
            });
            match written {
                Ok(count) => sent += count,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                // The first datagram of the batch failed; the rest go on.
                Err(_) => {
                    sent += 1;
                    refused += 1;
                }
            }
        }
        queued.clear();
        refused
    }
}

fn socket_address(address: &SockaddrStorage) -> Option<SocketAddr> {
    match (address.as_sockaddr_in(), address.as_sockaddr_in6()) {
        (Some(v4), _) => Some(SocketAddr::from(*v4)),
        (_, Some(v6)) => Some(SocketAddr::from(*v6)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The datagrams the last read brought, each with its sender.
    fn received(socket: &BatchSocket) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        (0..socket.received_count()).filter_map(|index| socket.received_at(index))
    }

    async fn bound() -> (BatchSocket, SocketAddr) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let address = socket.local_addr().expect("address");
        (BatchSocket::new(socket), address)
    }

    #[tokio::test]
    async fn a_batch_sent_to_several_sockets_arrives_whole_and_in_order_with_its_sender() {
        let (mut sender, from) = bound().await;
        let (mut first, first_address) = bound().await;
        let (mut second, second_address) = bound().await;
        // More than one system call's worth, alternating destinations.
        let count = SEND_BATCH + 10;
        for i in 0..count {
            let to = if i % 2 == 0 { first_address } else { second_address };
            sender.queue(to, BytesMut::from(&(i as u32).to_be_bytes()[..]));
        }
        assert_eq!(sender.flush().await, 0, "nothing refused");
        assert_eq!(sender.queued(), 0);
        for (receiver, parity) in [(&mut first, 0u32), (&mut second, 1)] {
            let mut numbers = Vec::new();
            while numbers.len() < count / 2 {
                receiver.receive().await.expect("receive");
                for (sender_address, datagram) in received(receiver) {
                    assert_eq!(sender_address, from);
                    numbers.push(u32::from_be_bytes(datagram.try_into().expect("four bytes")));
                }
            }
            let expected: Vec<u32> = (0..count as u32).filter(|i| i % 2 == parity).collect();
            assert_eq!(numbers, expected);
        }
    }

    #[tokio::test]
    async fn one_read_takes_every_waiting_datagram_up_to_a_batch() {
        let (mut sender, _) = bound().await;
        let (mut receiver, address) = bound().await;
        for i in 0..RECEIVE_BATCH + 3 {
            sender.queue(address, BytesMut::from(&[i as u8; 100][..]));
        }
        sender.flush().await;
        receiver.receive().await.expect("receive");
        assert_eq!(received(&receiver).count(), RECEIVE_BATCH, "a whole batch in one call");
        receiver.receive().await.expect("receive");
        let rest: Vec<u8> = received(&receiver).map(|(_, datagram)| datagram[0]).collect();
        assert_eq!(rest, [32, 33, 34]);
    }
}
