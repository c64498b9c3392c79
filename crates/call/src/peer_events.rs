//! webrtc-rs reports a connection's events through a handler trait; the services want them as
//! channels they can `select!` on. This is the one adapter: gathered candidates, connection states
//! and remote tracks go out on channels, and whoever does not want one of them drops its receiver.

use std::pin::Pin;
use std::sync::Arc;

use confab_protocol::signal::IceCandidate;
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{PeerConnectionEventHandler, RTCPeerConnectionIceEvent, RTCPeerConnectionState};

/// A connection's events, to be taken by the service.
pub struct PeerEvents {
    /// Local candidates as they are gathered, without their media section
    /// ([`crate::MediaSection::place`] says it).
    pub candidates: mpsc::UnboundedReceiver<IceCandidate>,
    pub state: watch::Receiver<RTCPeerConnectionState>,
    /// Tracks the remote peer sends.
    pub tracks: mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>,
}

/// The handler to build a connection with; its events arrive on the paired [`PeerEvents`].
pub struct EventChannels {
    candidates: mpsc::UnboundedSender<IceCandidate>,
    state: watch::Sender<RTCPeerConnectionState>,
    tracks: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

/// A handler for a new connection and the channels its events come on.
pub fn peer_events() -> (Arc<EventChannels>, PeerEvents) {
    let (candidates, candidates_rx) = mpsc::unbounded_channel();
    let (state, state_rx) = watch::channel(RTCPeerConnectionState::New);
    let (tracks, tracks_rx) = mpsc::unbounded_channel();
    let events = PeerEvents { candidates: candidates_rx, state: state_rx, tracks: tracks_rx };
    (Arc::new(EventChannels { candidates, state, tracks }), events)
}

type BoxFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

// `PeerConnectionEventHandler` is an `async_trait` trait; these are the signatures that macro
// would write, spelled out (once, here) to avoid a dependency for three methods.
impl PeerConnectionEventHandler for EventChannels {
    fn on_ice_candidate<'life0, 'async_trait>(&'life0 self, event: RTCPeerConnectionIceEvent) -> BoxFuture<'async_trait>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            if let Some(candidate) = crate::ice::gathered(&event) {
                let _ = self.candidates.send(candidate);
            }
        })
    }

    fn on_connection_state_change<'life0, 'async_trait>(
        &'life0 self,
        state: RTCPeerConnectionState,
    ) -> BoxFuture<'async_trait>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.state.send_replace(state);
        })
    }

    fn on_track<'life0, 'async_trait>(&'life0 self, track: Arc<dyn TrackRemote>) -> BoxFuture<'async_trait>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let _ = self.tracks.send(track);
        })
    }
}
