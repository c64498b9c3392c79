//! The participant's webrtc-rs peer, built as in the recorder's own tests.

use std::sync::Arc;

use confab_call::IceCandidate;
use tokio::sync::{mpsc, watch};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, RTCPeerConnectionState, Registry, SettingEngineBuilder,
    register_default_interceptors,
};

pub struct SenderPeer {
    pub connection: Arc<dyn PeerConnection>,
    pub candidates: mpsc::UnboundedReceiver<IceCandidate>,
    pub state: watch::Receiver<RTCPeerConnectionState>,
}

/// A browser-like sending peer: default codecs and interceptors (sender reports, NACK
/// responder), host candidates on this machine's interfaces.
pub async fn sender_peer() -> anyhow::Result<SenderPeer> {
    let (handler, events) = confab_call::peer_events();
    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs()?;
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
    let connection = PeerConnectionBuilder::new()
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(SettingEngineBuilder::new().build())
        .with_handler(handler)
        .with_udp_addrs(vec!["0.0.0.0:0".to_owned()])
        .build()
        .await?;
    Ok(SenderPeer { connection: Arc::new(connection), candidates: events.candidates, state: events.state })
}
