//! The media server's connection to the recorder (docs/protocol.md, "Recording through the
//! SFU"). In a room whose media goes through the SFU, participants send the recorder nothing: the
//! SFU offers it one `subscribe` connection carrying every publisher's tracks, and offers again as
//! publishers come and go. Here the recorder answers those offers on one connection, trickles its
//! candidates to the SFU, and sorts the media by publisher on a task of its own
//! ([`crate::publishers`]), so that a slow moment of the call's task (finishing a file) holds no
//! packet back. Each publisher whose tracks settled comes out of [`MediaServerLink::next_publisher`]
//! to be captured like a participant that offered itself ([`crate::recorded_peer`]).

use std::sync::Arc;
use std::time::Instant;

use confab_call::{MediaSection, Signals, signals};
use confab_protocol::signal::Signal;
use tokio::sync::mpsc;

use crate::peer::{Answered, IceCandidate, PeerConfig, ReceivePeer, Received};
use crate::publishers::{Publisher, Publishers};

/// How the SFU's signals name the connection (docs/protocol.md).
const SUBSCRIBE: &str = "subscribe";

/// The recorder's connection with one SFU seat.
pub struct MediaServerLink {
    sfu: String,
    peer: Arc<ReceivePeer>,
    publishers: mpsc::UnboundedReceiver<Publisher>,
    signals: Signals,
}

impl MediaServerLink {
    /// Answers the first offer of the SFU seat `sfu`.
    pub async fn answer(sfu: &str, offer_sdp: &str, config: &PeerConfig, signals: Signals) -> anyhow::Result<Self> {
        let Answered { peer, answer_sdp, media, local_candidates } =
            ReceivePeer::answer_media_server(offer_sdp, config).await?;
        let section = MediaSection::of_candidates(&answer_sdp);
        let _ = signals.send(on_subscribe(signals::answer(sfu, answer_sdp)));
        tokio::spawn(signals::trickle_on(SUBSCRIBE, sfu.to_owned(), section, local_candidates, signals.clone()));
        let (settled, publishers) = mpsc::unbounded_channel();
        tokio::spawn(sort_by_publisher(media, settled, config.media_channel_capacity));
        Ok(Self { sfu: sfu.to_owned(), peer: Arc::new(peer), publishers, signals })
    }

    /// Whether this is the connection with SFU seat `peer_id`.
    pub fn is_with(&self, peer_id: &str) -> bool {
        self.sfu == peer_id
    }

    /// The SFU offered again (tracks came or went).
    pub async fn offered_again(&self, offer_sdp: &str) -> anyhow::Result<()> {
        let answer_sdp = self.peer.renegotiate(offer_sdp).await?;
        let _ = self.signals.send(on_subscribe(signals::answer(&self.sfu, answer_sdp)));
        Ok(())
    }

    pub async fn add_candidate(&self, candidate: IceCandidate) {
        if let Err(e) = self.peer.add_remote_candidate(candidate).await {
            tracing::debug!(error = %e, "a remote ICE candidate was refused");
        }
    }

    /// The next publisher to capture; `None` once the connection is gone.
    pub async fn next_publisher(&mut self) -> Option<Publisher> {
        self.publishers.recv().await
    }

    /// The connection, which publishers' captures ask keyframes on.
    pub fn peer(&self) -> Arc<ReceivePeer> {
        Arc::clone(&self.peer)
    }

    /// Closes the connection: every publisher's channel closes, and with it its capture.
    pub async fn close(self) {
        let _ = self.peer.close().await;
    }
}

/// Marks a signal as one about the `subscribe` connection.
fn on_subscribe(signal: Signal) -> Signal {
    Signal { connection: SUBSCRIBE.to_owned(), ..signal }
}

/// Sorts the connection's media by publisher until the connection is gone, handing each
/// publisher on to `settled` when its capture is to start.
async fn sort_by_publisher(
    mut media: mpsc::Receiver<Received>,
    settled: mpsc::UnboundedSender<Publisher>,
    capacity: usize,
) {
    let mut publishers = Publishers::new(capacity);
    loop {
        let next_start = publishers.next_start().map(tokio::time::Instant::from_std);
        tokio::select! {
            received = media.recv() => match received {
                Some(received) => publishers.route(received, Instant::now()),
                None => break,
            },
            () = sleep_until(next_start) => {
                for publisher in publishers.due(Instant::now()) {
                    if settled.send(publisher).is_err() {
                        return;
                    }
                }
            }
        }
    }
    if publishers.dropped() > 0 {
        tracing::warn!(dropped = publishers.dropped(), "publishers' media dropped: their captures fell behind");
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
