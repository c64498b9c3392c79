//! The media server on its UDP ports: each media thread owns a [`MediaServer`] and one socket,
//! and carries datagrams, the time and its rooms' call events in, and datagrams and signals out.
//! Rooms are spread over the threads by id ([`shard_of`]) and a room lives on one thread with all
//! its connections, so the packet path never waits for, or hands packets to, another thread (the
//! design and its reasons: docs/architecture.md). Datagrams go in and out in batches
//! ([`crate::udp_batch`]): the datagrams one read brought are handled one by one, and what they
//! produce is sent a system call's worth at a time. Each thread runs a single-threaded tokio runtime. Rooms talk to their thread through
//! [`MediaHandle`]; what the server says to a room's participants goes to that room's channel,
//! which its seat in the call drains ([`crate::seat`]).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use confab_domain::{CallRole, RoomMode};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::connection::ConnectionKind;
use crate::server::{Incoming, MediaServer, Outgoing, Output, Stats};
use crate::udp_batch::{BatchSocket, SEND_BATCH};
use crate::wake::Wake;

/// How often the metrics are brought up to date.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// What the server tells a room's call.
#[derive(Debug)]
pub enum ToRoom {
    /// A signal for one participant.
    Signal { to: String, connection: ConnectionKind, message: Outgoing },
    /// The dominant speaker changed: everyone is told.
    Speaker { peer_id: String },
}

enum Command {
    Open { room: String, mode: RoomMode, signals: mpsc::UnboundedSender<ToRoom> },
    Close { room: String },
    Joined { room: String, peer: String, role: CallRole },
    Left { room: String, peer: String },
    Signal { room: String, from: String, connection: ConnectionKind, message: Incoming },
    LetSpeak { room: String, peer: String },
    Silence { room: String, peer: String },
}

/// Datagrams in and out, for the metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub datagrams_in: AtomicU64,
    pub datagrams_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

/// How rooms reach their media thread. Cheap to clone; every call is a message.
#[derive(Clone)]
pub struct MediaHandle {
    /// Each thread's commands, by its index.
    shards: Arc<[mpsc::UnboundedSender<Command>]>,
}

impl MediaHandle {
    /// Serves `room`; what the server says to its participants goes to `signals`.
    pub fn open(&self, room: &str, mode: RoomMode, signals: mpsc::UnboundedSender<ToRoom>) {
        self.send(room, Command::Open { room: room.to_owned(), mode, signals });
    }

    pub fn close(&self, room: &str) {
        self.send(room, Command::Close { room: room.to_owned() });
    }

    pub fn joined(&self, room: &str, peer: &str, role: CallRole) {
        self.send(room, Command::Joined { room: room.to_owned(), peer: peer.to_owned(), role });
    }

    pub fn left(&self, room: &str, peer: &str) {
        self.send(room, Command::Left { room: room.to_owned(), peer: peer.to_owned() });
    }

    pub fn signal(&self, room: &str, from: &str, connection: ConnectionKind, message: Incoming) {
        self.send(room, Command::Signal { room: room.to_owned(), from: from.to_owned(), connection, message });
    }

    /// A moderator let `peer` speak in `room`.
    pub fn let_speak(&self, room: &str, peer: &str) {
        self.send(room, Command::LetSpeak { room: room.to_owned(), peer: peer.to_owned() });
    }

    /// A moderator took the word back from `peer`.
    pub fn silence(&self, room: &str, peer: &str) {
        self.send(room, Command::Silence { room: room.to_owned(), peer: peer.to_owned() });
    }

    fn send(&self, room: &str, command: Command) {
        // The media threads end only with the process.
        let _ = self.shards[shard_of(room, self.shards.len())].send(command);
    }
}

/// Which of `shards` media threads serves `room`: the same for a room id in every process (FNV-1a),
/// so a room's connections all land on one thread.
pub fn shard_of(room: &str, shards: usize) -> usize {
    let hash = room
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    (hash % shards.max(1) as u64) as usize
}

/// Starts a media thread on each socket, telling the participants of its rooms to reach it at
/// the address paired with it.
pub fn start(sockets: Vec<(std::net::UdpSocket, SocketAddr)>, counters: Arc<Counters>) -> io::Result<MediaHandle> {
    let reports = Arc::new(Mutex::new(vec![Stats::default(); sockets.len()]));
    let mut shards = Vec::with_capacity(sockets.len());
    for (index, (socket, advertised)) in sockets.into_iter().enumerate() {
        let (commands, receive) = mpsc::unbounded_channel();
        socket.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let socket = {
            let _in_runtime = runtime.enter();
            UdpSocket::from_std(socket)?
        };
        let report = Report { shard: index, reports: Arc::clone(&reports), counters: Arc::clone(&counters) };
        std::thread::Builder::new().name(format!("confab-media-{index}")).spawn(move || {
            runtime.block_on(run(BatchSocket::new(socket), MediaServer::new(advertised), receive, report));
        })?;
        shards.push(commands);
    }
    Ok(MediaHandle { shards: shards.into() })
}

/// How a media thread reports: its stats in its slot, the metrics from every thread's.
struct Report {
    shard: usize,
    reports: Arc<Mutex<Vec<Stats>>>,
    counters: Arc<Counters>,
}

impl Report {
    fn record(&self, server: &MediaServer) {
        let total = {
            let mut reports = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
            reports[self.shard] = server.stats();
            crate::metrics::total(&reports)
        };
        crate::metrics::record(&total, &self.counters, server.estimates());
    }
}

async fn run(
    mut socket: BatchSocket,
    mut server: MediaServer,
    mut commands: mpsc::UnboundedReceiver<Command>,
    report: Report,
) {
    let mut rooms: HashMap<String, mpsc::UnboundedSender<ToRoom>> = HashMap::new();
    let mut report_every = tokio::time::interval(REPORT_EVERY);
    let mut sending = Sending::new(Arc::clone(&report.counters));
    let mut timers = Wake::default();
    loop {
        let wake = timers.next(Instant::now(), || server.poll_timeout()).map(tokio::time::Instant::from_std);
        // When the datagrams being handled were read, if that is what woke the loop.
        let mut received_at = None;
        tokio::select! {
            received = socket.receive() => match received {
                Ok(()) => {
                    let now = Instant::now();
                    received_at = Some(now);
                    // What each datagram produced is sent as soon as a system call's worth has
                    // gathered, not after the whole read: a packet for N viewers is N datagrams,
                    // and a read of 32 packets' would hold the first copies back (and their
                    // memory) until the last were made.
                    for index in 0..socket.received_count() {
                        let Some((from, datagram)) = socket.received_at(index) else { continue };
                        sending.received(datagram.len());
                        server.datagram(from, datagram, now);
                        sending.take_outputs(&mut server, &mut socket, &rooms);
                        if socket.queued() >= SEND_BATCH {
                            sending.flush(&mut socket, received_at).await;
                        }
                    }
                    timers.input_handled();
                }
                // ICMP errors surface here on Linux (a participant's port closed): not ours.
                Err(error) => tracing::debug!(%error, "receiving datagrams"),
            },
            command = commands.recv() => match command {
                Some(command) => {
                    apply(&mut server, &mut rooms, command);
                    timers.input_handled();
                }
                None => return,
            },
            () = sleep_until(wake) => {
                let now = Instant::now();
                if timers.timers_due(now) {
                    server.timeout(now);
                }
            }
            _ = report_every.tick() => report.record(&server),
        }
        sending.take_outputs(&mut server, &mut socket, &rooms);
        sending.flush(&mut socket, received_at).await;
    }
}

/// The server's outputs on their way: datagrams through the socket, signals to their rooms'
/// channels; counted, and the forwarding latency measured.
struct Sending {
    counters: Arc<Counters>,
    forwarding_latency: metrics::Histogram,
    /// Datagrams and bytes queued since the last flush.
    queued: (u64, u64),
}

impl Sending {
    fn new(counters: Arc<Counters>) -> Self {
        Self { counters, forwarding_latency: metrics::histogram!("sfu_forwarding_latency_seconds"), queued: (0, 0) }
    }

    /// Counts a datagram read.
    fn received(&self, bytes: usize) {
        self.counters.datagrams_in.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Queues the server's datagrams on `socket` and hands its signals to their rooms.
    fn take_outputs(
        &mut self,
        server: &mut MediaServer,
        socket: &mut BatchSocket,
        rooms: &HashMap<String, mpsc::UnboundedSender<ToRoom>>,
    ) {
        while let Some(output) = server.poll_output() {
            match output {
                Output::Transmit { to, datagram } => {
                    self.queued.0 += 1;
                    self.queued.1 += datagram.len() as u64;
                    socket.queue(to, datagram);
                }
                Output::Signal { room, to, connection, message } => {
                    if let Some(signals) = rooms.get(&room) {
                        let _ = signals.send(ToRoom::Signal { to, connection, message });
                    }
                }
                Output::Speaker { room, peer_id } => {
                    if let Some(signals) = rooms.get(&room) {
                        let _ = signals.send(ToRoom::Speaker { peer_id });
                    }
                }
            }
        }
    }

    /// Sends what is queued; if it was made from datagrams read at `received_at`, the time since
    /// is a forwarding latency.
    async fn flush(&mut self, socket: &mut BatchSocket, received_at: Option<Instant>) {
        if socket.queued() == 0 {
            return;
        }
        let refused = socket.flush().await;
        if refused > 0 {
            tracing::debug!(datagrams = refused, "the kernel refused datagrams");
        }
        let (datagrams, bytes) = std::mem::take(&mut self.queued);
        self.counters.datagrams_out.fetch_add(datagrams, Ordering::Relaxed);
        self.counters.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        if let Some(received_at) = received_at {
            self.forwarding_latency.record(received_at.elapsed());
        }
    }
}

fn apply(server: &mut MediaServer, rooms: &mut HashMap<String, mpsc::UnboundedSender<ToRoom>>, command: Command) {
    let now = Instant::now();
    match command {
        Command::Open { room, mode, signals } => {
            server.open_room(&room, mode);
            rooms.insert(room, signals);
        }
        Command::Close { room } => {
            server.close_room(&room);
            rooms.remove(&room);
        }
        Command::Joined { room, peer, role } => server.peer_joined(&room, &peer, role, now),
        Command::Left { room, peer } => server.peer_left(&room, &peer, now),
        Command::Signal { room, from, connection, message } => server.signal(&room, &from, connection, message, now),
        Command::LetSpeak { room, peer } => server.let_speak(&room, &peer),
        Command::Silence { room, peer } => server.silence(&room, &peer, now),
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_always_lands_on_the_same_thread_and_rooms_spread_over_all() {
        assert_eq!(shard_of("room-a", 1), 0);
        assert_eq!(shard_of("room-a", 4), shard_of("room-a", 4));
        let mut rooms_per_shard = [0; 4];
        for room in 0..1000 {
            rooms_per_shard[shard_of(&format!("0192a3b4-{room:04}"), 4)] += 1;
        }
        assert!(rooms_per_shard.iter().all(|rooms| (150..350).contains(rooms)), "{rooms_per_shard:?}");
    }
}
