//! What a service sends its peers through the gateway: offers, answers and trickled candidates,
//! as typed `signal` messages on a channel the [`crate::Call`] drains. A signal about a
//! connection to the media server names it (`connection`, docs/protocol.md); a mesh one does not.

use confab_protocol::signal::{IceCandidate, SessionDescription, Signal, signal::Payload};
use tokio::sync::mpsc;

use crate::MediaSection;

/// Where a service's signals for its peers go (see [`crate::Call::signals`]).
pub type Signals = mpsc::UnboundedSender<Signal>;

pub fn offer(to: &str, sdp: String) -> Signal {
    description(to, "offer", sdp)
}

/// An offer of the seat's `publish` connection to the media server's seat `to`.
pub fn publish_offer(to: &str, sdp: String) -> Signal {
    Signal { connection: PUBLISH.to_owned(), ..description(to, "offer", sdp) }
}

/// The media server's name for the connection a peer sends its media on.
pub const PUBLISH: &str = "publish";

pub fn answer(to: &str, sdp: String) -> Signal {
    description(to, "answer", sdp)
}

fn description(to: &str, kind: &str, sdp: String) -> Signal {
    let description = SessionDescription { r#type: kind.to_owned(), sdp };
    Signal { to: to.to_owned(), payload: Some(Payload::Sdp(description)), ..Signal::default() }
}

/// Trickles a connection's local `candidates` to peer `to`, each placed in `section` of the
/// connection's local description, until the connection or the call is gone.
pub async fn trickle(
    to: String,
    section: MediaSection,
    candidates: mpsc::UnboundedReceiver<IceCandidate>,
    signals: Signals,
) {
    trickle_on("", to, section, candidates, signals).await;
}

/// [`trickle`] for a connection with the media server: each candidate names the `connection`
/// (`publish` or `subscribe`, docs/protocol.md).
pub async fn trickle_on(
    connection: &str,
    to: String,
    section: MediaSection,
    mut candidates: mpsc::UnboundedReceiver<IceCandidate>,
    signals: Signals,
) {
    while let Some(candidate) = candidates.recv().await {
        let payload = Some(Payload::Candidate(section.place(candidate)));
        let signal = Signal { to: to.clone(), connection: connection.to_owned(), payload, ..Signal::default() };
        if signals.send(signal).is_err() {
            return;
        }
    }
}
