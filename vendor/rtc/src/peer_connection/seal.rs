//! Confab's addition to webrtc-rs's `rtc` (see vendor/README.md): RTP sealed for the wire
//! without the handler pipeline.
//!
//! A media server sends each forwarded packet to every subscriber: through the pipeline, each of
//! those copies is moved through every handler's queue and the interceptor chain before SRTP and
//! ICE. A server that numbers its packets for congestion control and keeps its own statistics
//! needs neither, only the connection's SRTP context and the address its ICE agent selected.

use super::RTCPeerConnection;
use shared::error::{Error, Result};
use shared::{TaggedBytesMut, TransportContext};
use std::time::Instant;

impl RTCPeerConnection {
    /// Seals `packet`, a marshalled RTP packet whose header is `header`, with this connection's
    /// SRTP context, addressed to the ICE agent's selected pair: the datagram to send, as
    /// [`poll_write`](sansio::Protocol::poll_write) would hand it out.
    ///
    /// The packet bypasses the interceptors and is not counted in [`get_stats`](Self::get_stats).
    /// Fails before the DTLS handshake has completed, while no candidate pair is selected, or if
    /// SRTP refuses it.
    pub fn seal_rtp(&mut self, now: Instant, header: &rtp::Header, packet: &[u8]) -> Result<TaggedBytesMut> {
        let ice = &self.pipeline_context.ice_handler_context.ice_transport.agent;
        let (local, remote) = ice
            .get_selected_candidate_pair()
            .ok_or_else(|| Error::Other("no selected candidate pair to seal RTP for".to_owned()))?;
        let transport = TransportContext {
            local_addr: local.base_addr(),
            peer_addr: remote.addr(),
            transport_protocol: local.network_type().to_protocol(),
            ecn: None,
        };
        let context = self
            .pipeline_context
            .srtp_handler_context
            .local_srtp_context
            .as_mut()
            .ok_or_else(|| Error::Other("no SRTP context yet to seal RTP with".to_owned()))?;
        let message = context.encrypt_rtp_with_header(packet, header)?;
        Ok(TaggedBytesMut { now, transport, message })
    }
}
