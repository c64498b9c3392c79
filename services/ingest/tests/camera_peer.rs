//! The camera as a peer of the call, end to end: GStreamer's RTSP server plays the camera, a real
//! gateway (in-process, real Redis) holds the call, the ingest worker pulls the camera and seats
//! it, and a webrtc-rs participant receives it: the camera is announced by name with role
//! `camera`, offers, and sends H.264 (a keyframe with its SPS first) and PCMU; when the
//! participant leaves, the room is empty and the camera leaves the gateway. A recorder joining
//! the call (hidden, told to the camera as `recording_started`) is offered the same media, and its
//! connection is closed when the recording stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use confab_common::tokens::SigningKeys;
use confab_ingest::frames::nal_unit_types;
use confab_ingest::settings::CallSettings;
use confab_ingest::store::CameraId;
use confab_tickets::{TICKET_AUDIENCE, TicketClaims};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use futures_util::{SinkExt, StreamExt};
use rtc::media::io::sample_builder::SampleBuilder;
use rtc::rtp::codec::h264::H264Packet;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateInit,
    RTCPeerConnectionIceEvent, RTCSessionDescription, Registry, SettingEngineBuilder, register_default_interceptors,
};

mod support;

use support::*;

const SOON: Duration = Duration::from_secs(20);

fn jwks_server(keys: &SigningKeys) -> String {
    let jwks = keys.jwks();
    let server = HttpServer::new(move || {
        let jwks = jwks.clone();
        App::new().route("/jwks", web::get().to(move || std::future::ready(HttpResponse::Ok().json(jwks.clone()))))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let url = format!("http://127.0.0.1:{}/jwks", server.addrs()[0].port());
    actix_web::rt::spawn(server.run());
    url
}

fn gateway(prefix: &str, jwks_url: &str) -> String {
    let gateway = confab_gateway::Application::build(confab_gateway::Settings {
        bind: "127.0.0.1:0".into(),
        redis_url: env("REDIS_URL"),
        redis_prefix: prefix.to_owned(),
        jwks_url: jwks_url.to_owned(),
        jwt_issuer: "confab".into(),
        allowed_origins: vec![],
        instance_id: "gw-test".into(),
        ice: Default::default(),
        limits: Default::default(),
    })
    .unwrap();
    let url = format!("ws://127.0.0.1:{}/v1/signal", gateway.port());
    actix_web::rt::spawn(gateway.run_until_stopped());
    url
}

fn member_ticket(keys: &SigningKeys, room: &str, name: &str) -> String {
    ticket(keys, room, name, "member", None)
}

fn ticket(keys: &SigningKeys, room: &str, name: &str, role: &str, recording_id: Option<String>) -> String {
    let now = chrono_now();
    keys.sign(&TicketClaims {
        iss: "confab".into(),
        aud: TICKET_AUDIENCE.into(),
        sub: uuid::Uuid::new_v4().to_string(),
        exp: now + 60,
        iat: now,
        jti: uuid::Uuid::new_v4().simple().to_string(),
        room_id: room.into(),
        display_name: name.into(),
        room_role: role.into(),
        max_participants: 4,
        recording_id,
    })
    .unwrap()
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A participant's signaling connection: what arrives, and a sender for what it says.
struct Signaling {
    incoming: mpsc::UnboundedReceiver<Value>,
    outgoing: mpsc::UnboundedSender<Value>,
}

impl Signaling {
    async fn join(gateway: &str, ticket: &str) -> Self {
        let mut request = gateway.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", format!("confab.v1, confab.ticket.{ticket}").parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let (mut write, mut read) = socket.split();
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let (outgoing, mut outgoing_rx) = mpsc::unbounded_channel::<Value>();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(message) = outgoing_rx.recv() => {
                        let bye = message.get("bye").is_some();
                        write.send(Message::text(message.to_string())).await.unwrap();
                        if bye {
                            let _ = write.close().await;
                            return;
                        }
                    }
                    frame = read.next() => match frame {
                        Some(Ok(Message::Text(text))) => {
                            let _ = incoming_tx.send(serde_json::from_str::<Value>(&text).unwrap());
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    },
                }
            }
        });
        Self { incoming, outgoing }
    }

    async fn recv(&mut self) -> Value {
        tokio::time::timeout(SOON, self.incoming.recv()).await.expect("a message in time").expect("the socket is open")
    }
}

/// The participant's receiving end: remote tracks and local candidates.
struct Viewer {
    tracks: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
    candidates: mpsc::UnboundedSender<RTCIceCandidateInit>,
}

type BoxFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

impl PeerConnectionEventHandler for Viewer {
    fn on_track<'life0, 'async_trait>(&'life0 self, track: Arc<dyn TrackRemote>) -> BoxFuture<'async_trait>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let _ = self.tracks.send(track);
        })
    }

    fn on_ice_candidate<'life0, 'async_trait>(&'life0 self, event: RTCPeerConnectionIceEvent) -> BoxFuture<'async_trait>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            if let Ok(init) = event.candidate.to_json() {
                let _ = self.candidates.send(init);
            }
        })
    }
}

/// What one remote track delivered: its MIME type, packet count and (video) first access unit.
struct Received {
    mime_type: String,
    packets: usize,
    first_frame: Option<Vec<u8>>,
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
    keys: Arc<SigningKeys>,
    gateway_url: String,
    _server: RtspServer,
    camera: CameraId,
    worker: RunningWorker,
}

async fn camera_call(world: &World) -> CameraCall {
    let signing = SigningKey::from_bytes(&[7; 32]);
    let key_pem = signing.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let keys = Arc::new(SigningKeys::from_pem(&key_pem).unwrap());
    let gateway_url = gateway(&world.prefix, &jwks_server(&keys));
    let server = RtspServer::start(&["--fps", "15"]);
    let camera = world.add_camera("Front door", &server.url(), None).await;
    let mut settings = world.settings("ingest-a");
    settings.call = Some(CallSettings {
        gateway_urls: vec![gateway_url.clone()],
        keys: keys.clone(),
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

    let mut ann = Signaling::join(&gateway_url, &member_ticket(&keys, &world.room.to_string(), "Ann")).await;
    assert!(ann.recv().await.get("welcome").is_some());

    // The camera is announced by name, with role camera, and offers at once.
    let joined = ann.recv().await;
    let camera_peer = &joined["peer_joined"]["peer"];
    assert_eq!(
        (camera_peer["display_name"].as_str(), camera_peer["role"].as_str()),
        (Some("Front door"), Some("camera"))
    );
    assert_eq!(camera_peer["user_id"], format!("camera-{camera}"));
    let camera_id = camera_peer["peer_id"].as_str().unwrap().to_owned();
    let offer = loop {
        let message = ann.recv().await;
        if message["signal"]["sdp"]["type"] == "offer" {
            assert_eq!(message["signal"]["from"], camera_id.as_str());
            break message["signal"]["sdp"]["sdp"].as_str().unwrap().to_owned();
        }
    };
    assert!(offer.contains("H264") && offer.contains("packetization-mode=1"), "{offer}");
    assert!(
        offer.contains("profile-level-id=42c0") || offer.contains("profile-level-id=42e0"),
        "constrained baseline, from the camera's SPS: {offer}"
    );
    assert!(offer.contains("PCMU/8000"), "{offer}");
    assert!(offer.contains("a=sendonly") && !offer.contains("a=sendrecv"), "{offer}");

    let (connection, tracks) = answer(&mut ann, &camera_id, offer).await;
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
    ann.outgoing.send(json!({"bye": {}})).unwrap();
    let peers = confab_domain::keys::room_peers(&world.prefix, world.room);
    let give_up = tokio::time::Instant::now() + SOON;
    loop {
        let present: u64 = redis::cmd("HLEN").arg(&peers).query_async(&mut world.redis.clone()).await.unwrap();
        if present == 0 && worker.worker.pulled().is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < give_up, "the camera stayed: {present} peers in presence");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.stop().await;
}

/// Answers the camera's offer with webrtc-rs as a browser would (every default codec), trickling
/// candidates through the gateway, until both of the camera's tracks have arrived.
async fn answer(
    signaling: &mut Signaling,
    camera_id: &str,
    offer: String,
) -> (Arc<dyn PeerConnection>, Vec<Arc<dyn TrackRemote>>) {
    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs().unwrap();
    let registry = register_default_interceptors(Registry::new(), &mut media_engine).unwrap();
    let (tracks_tx, mut tracks) = mpsc::unbounded_channel();
    let (candidates_tx, mut candidates) = mpsc::unbounded_channel();
    let connection = PeerConnectionBuilder::new()
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(SettingEngineBuilder::new().with_include_loopback_candidate(true).build())
        .with_handler(Arc::new(Viewer { tracks: tracks_tx, candidates: candidates_tx }))
        .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
        .build()
        .await
        .unwrap();
    let connection: Arc<dyn PeerConnection> = Arc::new(connection);
    connection.set_remote_description(RTCSessionDescription::offer(offer).unwrap()).await.unwrap();
    let answer = connection.create_answer(None).await.unwrap();
    connection.set_local_description(answer.clone()).await.unwrap();
    signaling
        .outgoing
        .send(json!({"signal": {"to": camera_id, "sdp": {"type": "answer", "sdp": answer.sdp}}}))
        .unwrap();

    let mut arrived = Vec::new();
    let deadline = tokio::time::Instant::now() + SOON;
    while arrived.len() < 2 {
        tokio::select! {
            Some(candidate) = candidates.recv() => {
                let candidate = json!({"candidate": candidate.candidate, "sdp_mid": candidate.sdp_mid,
                    "sdp_mline_index": candidate.sdp_mline_index});
                signaling.outgoing.send(json!({"signal": {"to": camera_id, "candidate": candidate}})).unwrap();
            }
            Some(message) = signaling.incoming.recv() => {
                if let Some(candidate) = message["signal"].get("candidate") {
                    let init = RTCIceCandidateInit {
                        candidate: candidate["candidate"].as_str().unwrap().to_owned(),
                        sdp_mid: candidate["sdp_mid"].as_str().map(str::to_owned),
                        sdp_mline_index: candidate["sdp_mline_index"].as_u64().map(|i| i as u16),
                        ..Default::default()
                    };
                    connection.add_ice_candidate(init).await.unwrap();
                }
            }
            Some(track) = tracks.recv() => arrived.push(track),
            () = tokio::time::sleep_until(deadline) => panic!("the camera's tracks did not arrive"),
        }
    }
    (connection, arrived)
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
    let recording_ticket = ticket(&keys, &room, "Recorder", "recorder", Some(uuid::Uuid::new_v4().to_string()));
    let mut recorder = if recording_first {
        let mut recorder = Signaling::join(&gateway_url, &recording_ticket).await;
        assert!(recorder.recv().await.get("welcome").is_some());
        Some(recorder)
    } else {
        None
    };
    // A participant makes it a call: the camera is pulled and joins.
    let mut ann = Signaling::join(&gateway_url, &member_ticket(&keys, &room, "Ann")).await;
    assert!(ann.recv().await.get("welcome").is_some());
    let camera_id = loop {
        let message = ann.recv().await;
        if let Some(peer_id) = message["peer_joined"]["peer"]["peer_id"].as_str() {
            break peer_id.to_owned();
        }
    };
    let mut recorder = match recorder.take() {
        Some(recorder) => recorder,
        None => {
            let mut recorder = Signaling::join(&gateway_url, &recording_ticket).await;
            let welcome = recorder.recv().await;
            let listed = welcome["welcome"]["peers"].as_array().unwrap();
            assert!(listed.iter().any(|p| p["peer_id"] == camera_id.as_str() && p["role"] == "camera"), "{welcome}");
            recorder
        }
    };
    let offer = loop {
        let message = recorder.recv().await;
        if message["signal"]["sdp"]["type"] == "offer" {
            assert_eq!(message["signal"]["from"], camera_id.as_str());
            break message["signal"]["sdp"]["sdp"].as_str().unwrap().to_owned();
        }
    };
    assert!(offer.contains("H264") && offer.contains("packetization-mode=1") && offer.contains("PCMU/8000"));
    assert!(offer.contains("a=sendonly"), "{offer}");

    let (connection, tracks) = answer(&mut recorder, &camera_id, offer).await;
    let packets = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for track in tracks {
        let packets = packets.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(_) = event {
                    packets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
    }
    let count = || packets.load(std::sync::atomic::Ordering::Relaxed);
    let give_up = tokio::time::Instant::now() + SOON;
    while count() < 60 {
        assert!(tokio::time::Instant::now() < give_up, "the camera's media reached the recorder: {} packets", count());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The recording stops: the recorder leaves, the camera is told and closes its connection.
    recorder.outgoing.send(json!({"bye": {}})).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_stop = count();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(), after_stop, "the camera still sends to a recorder that left");
    connection.close().await.unwrap();
    ann.outgoing.send(json!({"bye": {}})).unwrap();
    worker.stop().await;
}
