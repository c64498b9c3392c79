//! A synthetic participant's webrtc-rs connection: it sends what a test gives its tracks and is
//! signaled through a gateway like a browser (offer, trickled candidates both ways, the answer).

use std::sync::Arc;

use confab_call::{MediaSection, PeerEvents, peer_events, rtc_candidate};
use confab_protocol::signal::signal::Payload;
use confab_protocol::signal::{SessionDescription, Signal};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, RTCPeerConnectionState, RTCSessionDescription, Registry,
    SettingEngineBuilder, register_default_interceptors,
};
use webrtc::rtp_transceiver::RtpTransceiver;

use crate::Kind;
use crate::signaling::Signaling;

/// A participant-like peer on loopback; like a browser it sends sender reports and answers NACKs
/// and PLIs.
pub struct SenderPeer {
    pub connection: Arc<dyn PeerConnection>,
    pub events: PeerEvents,
}

/// A webrtc-rs connection on loopback with the default interceptors (sender reports, NACKs,
/// PLIs, as a browser has them), and its events.
pub async fn loopback_connection(mut media_engine: MediaEngine) -> (Arc<dyn PeerConnection>, PeerEvents) {
    let (handler, events) = peer_events();
    let registry = register_default_interceptors(Registry::new(), &mut media_engine).unwrap();
    let connection = PeerConnectionBuilder::new()
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(SettingEngineBuilder::new().with_include_loopback_candidate(true).build())
        .with_handler(handler)
        .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
        .build()
        .await
        .unwrap();
    (Arc::new(connection), events)
}

impl SenderPeer {
    pub async fn new(media_engine: MediaEngine) -> Self {
        let (connection, events) = loopback_connection(media_engine).await;
        Self { connection, events }
    }

    /// Adds `track` send-only.
    pub async fn add_send_only(&self, track: Arc<TrackLocalStaticSample>) -> Arc<dyn RtpTransceiver> {
        confab_call::add_send_only(&self.connection, track).await.unwrap()
    }

    /// Offers the tracks to `to` through `signaling` and trickles candidates both ways until the
    /// connection is up. Every message on the way must be `to`'s answer or candidates.
    pub async fn connect_through(&mut self, signaling: &mut Signaling, to: &str) {
        self.connect_as(signaling, to, "").await;
    }

    /// [`SenderPeer::connect_through`] for the participant's `connection` to the media server
    /// (`publish`): every signal both ways names it.
    pub async fn connect_as(&mut self, signaling: &mut Signaling, to: &str, connection: &str) {
        let offer = self.connection.create_offer(None).await.unwrap();
        self.connection.set_local_description(offer.clone()).await.unwrap();
        let section = MediaSection::of_candidates(&offer.sdp);
        let signal = |payload| Signal {
            to: to.to_owned(),
            connection: connection.to_owned(),
            payload: Some(payload),
            ..Signal::default()
        };
        signaling
            .send_signal(signal(Payload::Sdp(SessionDescription { r#type: "offer".into(), sdp: offer.sdp })))
            .await;
        loop {
            tokio::select! {
                Some(candidate) = self.events.candidates.recv() => {
                    signaling.send_signal(signal(Payload::Candidate(section.place(candidate)))).await;
                }
                message = signaling.recv() => {
                    let Kind::Signal(Signal { from, payload: Some(payload), connection: named, .. }) = message else {
                        panic!("expected {to}'s answer or candidates, got {message:?}")
                    };
                    assert_eq!(from, to, "only {to} signals this participant");
                    assert_eq!(named, connection, "signals about this connection");
                    match payload {
                        Payload::Sdp(answer) => {
                            assert_eq!(answer.r#type, "answer");
                            let answer = RTCSessionDescription::answer(answer.sdp).unwrap();
                            self.connection.set_remote_description(answer).await.unwrap();
                        }
                        Payload::Candidate(candidate) => {
                            self.connection.add_ice_candidate(rtc_candidate(candidate)).await.unwrap();
                        }
                        other => panic!("a mesh peer sends no {other:?}"),
                    }
                }
                _ = self.events.state.wait_for(|state| *state == RTCPeerConnectionState::Connected) => return,
            }
        }
    }

    /// Closes the connection once what was written has had time to leave: samples written are
    /// queued for the network, and a connection closed at once would cut the last packets off.
    pub async fn close(&self) {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        self.connection.close().await.unwrap();
    }

    /// The payload type negotiated for a transceiver's sender (known once the answer is applied).
    pub async fn payload_type(transceiver: &Arc<dyn RtpTransceiver>) -> u8 {
        confab_call::negotiated_payload_type(transceiver).await.expect("the track was accepted")
    }
}
