//! The camera as a peer of the call, end to end: GStreamer's RTSP server plays the camera, a real
//! gateway (in-process, real Redis) holds the call, the ingest worker pulls the camera and seats
//! it, and a webrtc-rs participant receives it: the camera is announced by name with role
//! `camera`, offers, and sends H.264 (a keyframe with its SPS first) and PCMU; when the
//! participant leaves, the room is empty and the camera leaves the gateway. A recorder joining
//! the call (hidden, told to the camera as `recording_started`) is offered the same media, and its
//! connection is closed when the recording stops. While the media server's seat is in the call,
//! the camera offers it its `publish` connection instead of offering viewers or the recorder
//! (which get it from the SFU), and offers them again once it has left.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use confab_call::{MediaSection, rtc_candidate, signals};
use confab_common::tokens::SigningKeys;
use confab_ingest::settings::CallSettings;
use confab_ingest::store::CameraId;
use confab_protocol::signal::Signal;
use confab_protocol::signal::signal::Payload;
use confab_testkit::{Gateway, Kind, Signaling, TestKeys, eventually, next};
use rtc::media::io::sample_builder::SampleBuilder;
use rtc::rtp::codec::h264::H264Packet;
use tokio::sync::watch;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{MediaEngine, PeerConnection, RTCPeerConnectionState, RTCSessionDescription};

mod support;

use support::*;

const SOON: Duration = Duration::from_secs(20);

/// What one remote track delivered: its MIME type, packet count and (video) first access unit.
struct Received {
    mime_type: String,
    packets: usize,
    first_frame: Option<Vec<u8>>,
}

/// The types of the NAL units of an access unit as rtc-rtp's `H264Packet` assembles it on the
/// viewer's side: Annex B (1 = non-IDR slice, 5 = IDR slice, 7 = SPS, 8 = PPS).
fn nal_unit_types(annex_b: &[u8]) -> Vec<u8> {
    annex_b.windows(4).filter(|w| w[..3] == [0, 0, 1]).map(|w| w[3] & 0x1f).collect()
}

async fn read_track(track: Arc<dyn TrackRemote>, enough: usize) -> Received {
    let ssrc = *track.ssrcs().await.first().unwrap();
    let mime_type = track.codec(ssrc).await.map(|codec| codec.mime_type).unwrap_or_default();
    let mut builder = SampleBuilder::new(64, H264Packet::default(), 90_000);
    let mut received = Received { mime_type, packets: 0, first_frame: None };
    while let Some(event) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(packet) = event else { continue };
        received.packets += 1;
        if received.mime_type.eq_ignore_ascii_case("video/H264") && received.first_frame.is_none() {
            builder.push(Instant::now(), packet);
            if let Some(sample) = builder.pop(Instant::now()) {
                received.first_frame = Some(sample.data.to_vec());
            }
        }
        if received.packets >= enough {
            break;
        }
    }
    received
}

/// A room's camera (GStreamer's RTSP server), a gateway, and an ingest worker that brings the
/// camera into the room's call once someone is there.
struct CameraCall {
    keys: TestKeys,
    gateway_url: String,
    _server: RtspServer,
    camera: CameraId,
    worker: RunningWorker,
}

async fn camera_call(world: &World) -> CameraCall {
    let keys = TestKeys::default();
    let Gateway { url: gateway_url, .. } =
        confab_testkit::gateway(&world.prefix, &confab_testkit::jwks_server(&keys.keys), "gw-test");
    let server = RtspServer::start(&["--fps", "15"]);
    let camera = world.add_camera("Front door", &server.url(), None).await;
    let mut settings = world.settings("ingest-a");
    settings.call = Some(CallSettings {
        gateway_urls: vec![gateway_url.clone()],
        keys: Arc::new(SigningKeys::from_pem(&keys.pem).unwrap()),
        jwt_issuer: "confab".into(),
        bind_addrs: vec!["127.0.0.1:0".into()],
        include_loopback_candidates: true,
    });
    let worker = world.worker(settings);
    CameraCall { keys, gateway_url, _server: server, camera, worker }
}

#[actix_web::test]
async fn the_camera_joins_the_call_by_name_sends_h264_and_pcmu_and_leaves_when_the_room_empties() {
    let world = world().await;
    let CameraCall { keys, gateway_url, _server, camera, worker } = camera_call(&world).await;

    let ticket = keys.ticket(&world.room.to_string(), "Ann", "member", None);
    let (mut ann, _) = Signaling::join(&gateway_url, &ticket).await;

    // The camera is announced by name, with role camera, and offers at once.
    let camera_peer = next!(ann, PeerJoined).peer.expect("the peer who joined");
    assert_eq!((camera_peer.display_name.as_str(), camera_peer.role.as_str()), ("Front door", "camera"));
    assert_eq!(camera_peer.user_id, format!("camera-{camera}"));
    let (from, offer) = next_offer(&mut ann).await;
    assert_eq!(from, camera_peer.peer_id);
    assert!(offer.contains("H264") && offer.contains("packetization-mode=1"), "{offer}");
    assert!(
        offer.contains("profile-level-id=42c0") || offer.contains("profile-level-id=42e0"),
        "constrained baseline, from the camera's SPS: {offer}"
    );
    assert!(offer.contains("PCMU/8000"), "{offer}");
    assert!(offer.contains("a=sendonly") && !offer.contains("a=sendrecv"), "{offer}");

    let (connection, tracks, _) = answer(&mut ann, &camera_peer.peer_id, offer).await;
    let reading: Vec<_> = tracks.into_iter().map(|track| tokio::spawn(read_track(track, 60))).collect();
    let mut received = Vec::new();
    for task in reading {
        received.push(tokio::time::timeout(SOON, task).await.expect("media flowed in time").unwrap());
    }
    received.sort_by(|a, b| a.mime_type.cmp(&b.mime_type));
    assert_eq!(received[0].mime_type.to_ascii_lowercase(), "audio/pcmu");
    assert_eq!(received[1].mime_type.to_ascii_lowercase(), "video/h264");
    assert!(received[0].packets >= 60 && received[1].packets >= 60);
    let first_frame = received[1].first_frame.as_ref().expect("a whole H.264 frame was assembled");
    let types = nal_unit_types(first_frame);
    assert_eq!(types.first(), Some(&7), "the first frame a viewer gets starts with the SPS: {types:?}");
    assert!(types.contains(&8) && types.contains(&5), "then the PPS and an IDR slice: {types:?}");
    connection.close().await.unwrap();

    // Ann leaves: the room is empty and the camera leaves the gateway.
    ann.bye().await;
    let peers = confab_domain::keys::room_peers(&world.prefix, world.room);
    eventually("the camera leaves the empty room", SOON, || async {
        let present: u64 = redis::cmd("HLEN").arg(&peers).query_async(&mut world.redis.clone()).await.unwrap();
        (present == 0 && worker.worker.pulled().is_empty()).then_some(())
    })
    .await;
    worker.stop().await;
}

/// The next offer: who made it, and its SDP.
async fn next_offer(signaling: &mut Signaling) -> (String, String) {
    signaling
        .next_of(|kind| match kind {
            Kind::Signal(Signal { from, payload: Some(Payload::Sdp(offer)), .. }) if offer.r#type == "offer" => {
                Some((from, offer.sdp))
            }
            _ => None,
        })
        .await
}

/// Answers the camera's offer with webrtc-rs as a browser would (every default codec), trickling
/// candidates through the gateway, until both of the camera's tracks have arrived; the connection,
/// the tracks and the connection's state.
async fn answer(
    signaling: &mut Signaling,
    camera_id: &str,
    offer: String,
) -> (Arc<dyn PeerConnection>, Vec<Arc<dyn TrackRemote>>, watch::Receiver<RTCPeerConnectionState>) {
    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs().unwrap();
    let (connection, mut events) = confab_testkit::loopback_connection(media_engine).await;
    connection.set_remote_description(RTCSessionDescription::offer(offer).unwrap()).await.unwrap();
    let answer = connection.create_answer(None).await.unwrap();
    connection.set_local_description(answer.clone()).await.unwrap();
    let section = MediaSection::of_candidates(&answer.sdp);
    signaling.send_signal(signals::answer(camera_id, answer.sdp)).await;

    let mut arrived = Vec::new();
    let deadline = tokio::time::Instant::now() + SOON;
    while arrived.len() < 2 {
        tokio::select! {
            Some(candidate) = events.candidates.recv() => {
                signaling.signal(camera_id, Payload::Candidate(section.place(candidate))).await;
            }
            Some(message) = signaling.recv_within(SOON) => {
                if let Kind::Signal(Signal { payload: Some(Payload::Candidate(candidate)), .. }) = message {
                    connection.add_ice_candidate(rtc_candidate(candidate)).await.unwrap();
                }
            }
            Some(track) = events.tracks.recv() => arrived.push(track),
            () = tokio::time::sleep_until(deadline) => panic!("the camera's tracks did not arrive"),
        }
    }
    (connection, arrived, events.state)
}

#[actix_web::test]
async fn a_recorder_joining_the_call_is_offered_the_camera_until_the_recording_stops() {
    the_recorder_is_offered_the_camera(false).await;
}

#[actix_web::test]
async fn a_camera_joining_a_recorded_call_offers_the_recorder_at_once() {
    the_recorder_is_offered_the_camera(true).await;
}

/// A recorder (joined before the camera when `recording_first`, else after it) gets the camera's
/// offer, its media, and no more media once it leaves.
async fn the_recorder_is_offered_the_camera(recording_first: bool) {
    let world = world().await;
    let CameraCall { keys, gateway_url, _server, worker, .. } = camera_call(&world).await;
    let room = world.room.to_string();
    // The recorder joins as the API's recorders do: hidden, with the recording's id.
    let recording_ticket = || keys.ticket(&room, "Recorder", "recorder", Some(uuid::Uuid::new_v4().to_string()));
    let mut recorder =
        if recording_first { Some(Signaling::join(&gateway_url, &recording_ticket()).await.0) } else { None };
    // A participant makes it a call: the camera is pulled and joins.
    let (mut ann, _) = Signaling::join(&gateway_url, &keys.ticket(&room, "Ann", "member", None)).await;
    let camera_id = next!(ann, PeerJoined).peer.expect("the peer who joined").peer_id;
    let mut recorder = match recorder.take() {
        Some(recorder) => recorder,
        None => {
            let (recorder, welcome) = Signaling::join(&gateway_url, &recording_ticket()).await;
            let listed = welcome.peers.iter().any(|peer| peer.peer_id == camera_id && peer.role == "camera");
            assert!(listed, "{:?}", welcome.peers);
            recorder
        }
    };
    let (from, offer) = next_offer(&mut recorder).await;
    assert_eq!(from, camera_id);
    assert!(offer.contains("H264") && offer.contains("packetization-mode=1") && offer.contains("PCMU/8000"));
    assert!(offer.contains("a=sendonly"), "{offer}");

    let (connection, tracks, mut state) = answer(&mut recorder, &camera_id, offer).await;
    let packets = Arc::new(AtomicUsize::new(0));
    for track in tracks {
        let packets = packets.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(_) = event {
                    packets.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let count = || packets.load(Ordering::Relaxed);
    eventually("the camera's media reaches the recorder", SOON, || std::future::ready((count() >= 60).then_some(())))
        .await;

    // The recording stops: the recorder leaves, the camera is told and closes its connection. The
    // recorder's end of it stops being connected once nothing more comes from the camera, media
    // included (it is `disconnected` then).
    recorder.bye().await;
    let gone = state.wait_for(|state| *state != RTCPeerConnectionState::Connected);
    tokio::time::timeout(SOON, gone).await.expect("the camera still sends to a recorder that left").unwrap();
    connection.close().await.unwrap();
    ann.bye().await;
    worker.stop().await;
}

/// The media server's seat in the call, played by a bare signaling client: what the camera sends
/// it is the camera's part of the protocol (the SFU's own part is tested in tests/stack).
#[actix_web::test]
async fn the_camera_publishes_to_the_media_server_while_the_call_goes_through_it_and_offers_viewers_again_after() {
    let world = world().await;
    let CameraCall { keys, gateway_url, _server, worker, .. } = camera_call(&world).await;
    let room = world.room.to_string();
    let (mut ann, _) = Signaling::join(&gateway_url, &keys.ticket(&room, "Ann", "member", None)).await;
    let camera_id = next!(ann, PeerJoined).peer.expect("the peer who joined").peer_id;
    let (from, _) = next_offer(&mut ann).await;
    assert_eq!(from, camera_id, "a mesh call: the camera offers Ann");

    // The SFU takes its seat: the camera offers it its `publish` connection, and Ann nothing more.
    let (mut sfu, _) = Signaling::join(&gateway_url, &keys.ticket(&room, "SFU", "sfu", None)).await;
    let publish = sfu
        .next_of(|kind| match kind {
            Kind::Signal(Signal { from, connection, payload: Some(Payload::Sdp(offer)), .. }) => {
                Some((from, connection, offer))
            }
            _ => None,
        })
        .await;
    let (from, connection, offer) = publish;
    assert_eq!((from.as_str(), connection.as_str(), offer.r#type.as_str()), (camera_id.as_str(), "publish", "offer"));
    assert!(offer.sdp.contains("H264") && offer.sdp.contains("packetization-mode=1"), "{}", offer.sdp);
    assert!(offer.sdp.contains("PCMU/8000") && offer.sdp.contains("a=sendonly"), "{}", offer.sdp);
    let changed = ann.next_of(|kind| match kind {
        Kind::MediaChanged(changed) => Some(changed),
        _ => None,
    });
    assert!(changed.await.sfu.is_some(), "Ann is told the call goes through the SFU");
    while let Some(kind) = ann.recv_within(Duration::from_secs(1)).await {
        let offered = matches!(&kind, Kind::Signal(Signal { payload: Some(Payload::Sdp(_)), .. }));
        assert!(!offered, "the camera offers Ann while the SFU serves the call: {kind:?}");
    }

    // A recording starts: through the SFU the recorder gets the camera from the SFU, not from it.
    let recording_ticket = keys.ticket(&room, "Recorder", "recorder", Some(uuid::Uuid::new_v4().to_string()));
    let (mut recorder, _) = Signaling::join(&gateway_url, &recording_ticket).await;
    while let Some(kind) = recorder.recv_within(Duration::from_secs(2)).await {
        let offered = matches!(&kind, Kind::Signal(Signal { payload: Some(Payload::Sdp(_)), .. }));
        assert!(!offered, "the camera offers the recorder while the SFU serves the call: {kind:?}");
    }

    // The SFU leaves: back to mesh, the camera offers Ann again (a mesh offer, no `connection`),
    // and the recorder.
    sfu.bye().await;
    let again = ann
        .next_of(|kind| match kind {
            Kind::Signal(Signal { from, connection, payload: Some(Payload::Sdp(offer)), .. })
                if offer.r#type == "offer" =>
            {
                Some((from, connection))
            }
            _ => None,
        })
        .await;
    assert_eq!(again, (camera_id.clone(), String::new()), "the camera offers Ann again, peer to peer");
    let (from, _) = next_offer(&mut recorder).await;
    assert_eq!(from, camera_id, "the camera offers the recorder again");
    recorder.bye().await;
    ann.bye().await;
    worker.stop().await;
}
