//! One UDP port for every connection (as LiveKit's single-port mode and mediasoup's WebRtcServer
//! do: containers and firewalls want one port). A datagram from an address a connection's ICE
//! agent vouches for goes to that connection; any other must be a STUN request naming, in its
//! USERNAME (RFC 8445 §7.2.2: `<receiver's ufrag>:<sender's ufrag>`), the local ufrag of a
//! connection, which then checks it (MESSAGE-INTEGRITY is the ICE agent's job). An address is
//! learned only when the agent vouches for it (it answered a check from there with success, so
//! the check carried the connection's password, or it sends media there), never from a STUN
//! request alone, so a stranger who guessed a ufrag cannot steer anyone's media. A STUN response carries no USERNAME: it goes to
//! the connection whose agent sent a check to its source (the agent matches the transaction).
//! Everything else is dropped and counted.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;

/// STUN's magic cookie (RFC 5389 §6).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const STUN_HEADER: usize = 20;
const USERNAME: u16 = 0x0006;
/// Addresses one connection may have at once (a network change adds one).
const ADDRESSES_PER_CONNECTION: usize = 4;

/// What was dropped, for the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Not STUN (or a STUN response), from an address no connection knows.
    pub unknown_source: u64,
    /// STUN without a readable USERNAME.
    pub malformed_stun: u64,
    /// STUN naming a ufrag no connection has.
    pub unknown_ufrag: u64,
}

/// Routes datagrams on a shared port to connections named by `C`.
#[derive(Debug)]
pub struct Demux<C> {
    by_address: HashMap<SocketAddr, C>,
    by_ufrag: HashMap<String, C>,
    /// Addresses a connection's agent sent checks to: their STUN responses go to it.
    checked: HashMap<SocketAddr, C>,
    /// Each connection's nominated addresses, oldest first.
    addresses: HashMap<C, Vec<SocketAddr>>,
    dropped: Dropped,
}

impl<C> Default for Demux<C> {
    fn default() -> Self {
        Self {
            by_address: HashMap::new(),
            by_ufrag: HashMap::new(),
            checked: HashMap::new(),
            addresses: HashMap::new(),
            dropped: Dropped::default(),
        }
    }
}

impl<C: Copy + Eq + Hash> Demux<C> {
    /// A new connection whose ICE agent answers to `ufrag`.
    pub fn register(&mut self, ufrag: &str, connection: C) {
        self.by_ufrag.insert(ufrag.to_owned(), connection);
    }

    /// The connection's ICE agent vouches for `address` (an authenticated check came from it, or
    /// the agent selected it): its datagrams go to the connection without a STUN lookup. The oldest of more than four addresses is forgotten.
    pub fn nominate(&mut self, connection: C, address: SocketAddr) {
        if let Some(previous) = self.by_address.insert(address, connection)
            && previous != connection
            && let Some(theirs) = self.addresses.get_mut(&previous)
        {
            theirs.retain(|a| *a != address);
        }
        let addresses = self.addresses.entry(connection).or_default();
        addresses.retain(|a| *a != address);
        addresses.push(address);
        if addresses.len() > ADDRESSES_PER_CONNECTION {
            let oldest = addresses.remove(0);
            self.by_address.remove(&oldest);
        }
    }

    /// The connection's agent sent a connectivity check to `address`.
    pub fn checking(&mut self, connection: C, address: SocketAddr) {
        self.checked.insert(address, connection);
    }

    /// The connection is gone: its ufrag and addresses with it.
    pub fn forget(&mut self, connection: C) {
        self.by_ufrag.retain(|_, c| *c != connection);
        self.checked.retain(|_, c| *c != connection);
        for address in self.addresses.remove(&connection).unwrap_or_default() {
            self.by_address.remove(&address);
        }
    }

    /// The connection `datagram` from `from` is for, if any.
    pub fn route(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<C> {
        if let Some(connection) = self.by_address.get(&from) {
            return Some(*connection);
        }
        if !is_stun(datagram) {
            self.dropped.unknown_source += 1;
            return None;
        }
        if is_response(datagram) {
            let connection = self.checked.get(&from).copied();
            if connection.is_none() {
                self.dropped.unknown_source += 1;
            }
            return connection;
        }
        let Some(ufrag) = local_ufrag(datagram) else {
            self.dropped.malformed_stun += 1;
            return None;
        };
        let connection = std::str::from_utf8(ufrag).ok().and_then(|ufrag| self.by_ufrag.get(ufrag)).copied();
        if connection.is_none() {
            self.dropped.unknown_ufrag += 1;
        }
        connection
    }

    pub fn dropped(&self) -> Dropped {
        self.dropped
    }
}

/// A STUN message: first two bits zero (RFC 7983's demultiplexing) and the magic cookie.
fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= STUN_HEADER && datagram[0] < 4 && datagram[4..8] == MAGIC_COOKIE
}

/// A STUN success or error response (RFC 5389 §6: class bit C1 set).
fn is_response(message: &[u8]) -> bool {
    message[0] & 0x01 != 0
}

/// The receiver's part of a STUN message's USERNAME (before the colon).
fn local_ufrag(message: &[u8]) -> Option<&[u8]> {
    let length = usize::from(u16::from_be_bytes([message[2], message[3]]));
    let mut attributes = message.get(STUN_HEADER..STUN_HEADER + length)?;
    while let [t0, t1, l0, l1, rest @ ..] = attributes {
        let (kind, size) = (u16::from_be_bytes([*t0, *t1]), usize::from(u16::from_be_bytes([*l0, *l1])));
        let value = rest.get(..size)?;
        if kind == USERNAME {
            let colon = value.iter().position(|b| *b == b':')?;
            return Some(&value[..colon]);
        }
        // Values are padded to four bytes.
        attributes = rest.get(size.next_multiple_of(4)..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A binding request with `attributes` (type, value) after the header.
    fn stun(attributes: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in attributes {
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            body.resize(body.len().next_multiple_of(4), 0);
        }
        let mut message = vec![0x00, 0x01];
        message.extend_from_slice(&(body.len() as u16).to_be_bytes());
        message.extend_from_slice(&MAGIC_COOKIE);
        message.extend_from_slice(&[7; 12]);
        message.extend_from_slice(&body);
        message
    }

    fn address(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn stun_finds_its_connection_by_ufrag_and_media_by_nominated_address() {
        let mut demux = Demux::default();
        demux.register("sfuA", 1);
        demux.register("sfuB", 2);
        // PRIORITY first, then USERNAME (odd length, padded).
        let request = stun(&[(0x0024, &[0, 0, 0, 1]), (USERNAME, b"sfuB:browser1")]);
        assert_eq!(demux.route(address(5000), &request), Some(2));
        // Media from there is not routed until the agent nominates the address.
        let srtp = [0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        assert_eq!(demux.route(address(5000), &srtp), None);
        demux.nominate(2, address(5000));
        assert_eq!(demux.route(address(5000), &srtp), Some(2));
        assert_eq!(demux.dropped(), Dropped { unknown_source: 1, ..Dropped::default() });
    }

    #[test]
    fn a_stun_response_goes_to_the_connection_that_checked_its_source_and_no_further() {
        let mut demux = Demux::default();
        let mut response = stun(&[]);
        response[..2].copy_from_slice(&[0x01, 0x01]);
        assert_eq!(demux.route(address(7), &response), None, "nobody checked it");
        demux.checking(3, address(7));
        assert_eq!(demux.route(address(7), &response), Some(3));
        assert_eq!(demux.route(address(7), &[0x16, 0xfe, 0xfd]), None, "only STUN: DTLS needs a vouched address");
        demux.forget(3);
        assert_eq!(demux.route(address(7), &response), None);
        assert_eq!(demux.dropped().unknown_source, 3);
    }

    #[test]
    fn strangers_and_malformed_stun_are_dropped_and_counted() {
        let mut demux = Demux::default();
        demux.register("sfuA", 1);
        assert_eq!(demux.route(address(1), &stun(&[(USERNAME, b"guess:me")])), None);
        assert_eq!(demux.route(address(1), &stun(&[(USERNAME, b"no-colon")])), None);
        assert_eq!(demux.route(address(1), &stun(&[(0x0024, &[0; 4])])), None, "no USERNAME");
        let mut cut = stun(&[(USERNAME, b"sfuA:x")]);
        cut.truncate(24);
        assert_eq!(demux.route(address(1), &cut), None, "length past the end");
        assert_eq!(demux.route(address(1), &[0x16, 0xfe, 0xfd]), None, "DTLS from nowhere");
        assert_eq!(demux.dropped(), Dropped { unknown_source: 1, malformed_stun: 3, unknown_ufrag: 1 });
    }

    #[test]
    fn a_connection_keeps_its_four_newest_addresses_and_forgetting_it_clears_them() {
        let mut demux = Demux::default();
        demux.register("sfuA", 1);
        for port in 1..=5 {
            demux.nominate(1, address(port));
        }
        assert_eq!(demux.route(address(1), &[0x80]), None, "the oldest went");
        assert_eq!(demux.route(address(5), &[0x80]), Some(1));
        // Another connection nominated an address this one had: it moves.
        demux.nominate(2, address(5));
        assert_eq!(demux.route(address(5), &[0x80]), Some(2));
        demux.forget(1);
        assert_eq!(demux.route(address(4), &[0x80]), None);
        assert_eq!(demux.route(address(5), &[0x80]), Some(2), "not 1's any more");
        assert_eq!(demux.route(address(9), &stun(&[(USERNAME, b"sfuA:x")])), None, "its ufrag is gone");
    }

    proptest! {
        #[test]
        fn any_datagram_is_routed_or_dropped_without_panicking(datagram in prop::collection::vec(any::<u8>(), 0..120)) {
            let mut demux = Demux::default();
            demux.register("sfuA", 1);
            demux.route(address(1), &datagram);
            // And as the body of a STUN message.
            let mut message = stun(&[]);
            message[2..4].copy_from_slice(&(datagram.len() as u16).to_be_bytes());
            message.extend_from_slice(&datagram);
            demux.route(address(1), &message);
        }
    }
}
