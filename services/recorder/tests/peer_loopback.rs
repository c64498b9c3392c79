//! The recorder's receive side against a real webrtc-rs sender on loopback: a participant-like
//! peer offers send-only VP8 and Opus, `ReceivePeer` answers, candidates trickle in-process, and
//! what arrives goes through the media pipeline into a WebM file that an independent Matroska
//! reader then checks. A camera's offer (H.264, PCMU) is answered with exactly those; a
//! participant's H.264 is refused.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use confab_call::MediaSection;
use confab_recorder::capture::Capture;
use confab_recorder::media::Codec;
use confab_recorder::peer::{Answered, IceCandidate, Media, ReceivePeer, Source};
use confab_testkit::SenderPeer;
use matroska_demuxer::{Frame as ReadFrame, MatroskaFile};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use tokio::sync::mpsc;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, RTCPeerConnectionState, RTCSessionDescription, StatsSelector,
};

mod support;

use support::*;

/// The sender, DTLS server here, is connected once it has sent its Finished; the recorder has its
/// SRTP keys only when that arrives, and nothing outside `ReceivePeer` shows when it has. Media
/// sent in between is lost (a first keyframe with it, and this sender, unlike a browser, does not
/// answer the PLI), so the test leaves the handshake this long to land.
const HANDSHAKE_LANDS: Duration = Duration::from_millis(200);

/// What the recorder side made of the call.
struct Recorded {
    path: PathBuf,
    sender_reports: usize,
    keyframe_requests: usize,
}

/// The recorder's participant task in miniature: channel → `Capture` (media core + WebM file),
/// keyframe requests back to the sender. Counts the RTP packets it has taken in `taken`.
async fn record(
    answered_peer: Arc<ReceivePeer>,
    mut media: mpsc::Receiver<confab_recorder::peer::Received>,
    path: PathBuf,
    taken: Arc<AtomicUsize>,
) -> Recorded {
    let mut capture = Capture::start(&path, Source::Participant, Some(Codec::Vp8), Some(Codec::Opus)).unwrap();
    let mut ended = 0;
    let (mut sender_reports, mut keyframe_requests) = (0, 0);
    loop {
        let deadline = capture.next_tick().map(tokio::time::Instant::from_std);
        let received = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, media.recv()).await {
                Ok(received) => received,
                Err(_) => {
                    let keyframes = capture.tick(Instant::now()).unwrap();
                    keyframe_requests += request_keyframes(&answered_peer, keyframes).await;
                    continue;
                }
            },
            None => media.recv().await,
        };
        let Some(received) = received else { break };
        let track = capture.track(received.track.codec).expect("only VP8 and Opus were negotiated");
        let keyframes = match received.media {
            Media::Rtp(packet) => {
                taken.fetch_add(1, Ordering::Relaxed);
                capture.push(track, packet, received.at).unwrap()
            }
            Media::SenderReport(report) => {
                sender_reports += 1;
                capture.sender_report(track, report, received.at);
                Vec::new()
            }
            Media::Ended => {
                ended += 1;
                if ended == 2 {
                    break;
                }
                Vec::new()
            }
        };
        keyframe_requests += request_keyframes(&answered_peer, keyframes).await;
    }
    let files = capture.finish(Instant::now()).unwrap();
    assert_eq!(files.len(), 1, "no resolution change was sent");
    Recorded { path, sender_reports, keyframe_requests }
}

async fn request_keyframes(peer: &ReceivePeer, ssrcs: Vec<u32>) -> usize {
    for &ssrc in &ssrcs {
        peer.request_keyframe(ssrc).await.unwrap();
    }
    ssrcs.len()
}

/// Trickles candidates both ways, each placed in the section its side's description bundles on.
async fn exchange_candidates(
    (peer, answer): (Arc<ReceivePeer>, MediaSection),
    mut local: mpsc::UnboundedReceiver<IceCandidate>,
    (sender, offer): (Arc<dyn PeerConnection>, MediaSection),
    mut remote: mpsc::UnboundedReceiver<IceCandidate>,
) {
    let to_sender = async move {
        while let Some(candidate) = local.recv().await {
            sender.add_ice_candidate(confab_call::rtc_candidate(answer.place(candidate))).await.unwrap();
        }
    };
    let to_recorder = async move {
        while let Some(candidate) = remote.recv().await {
            peer.add_remote_candidate(offer.place(candidate)).await.unwrap();
        }
    };
    tokio::join!(to_sender, to_recorder);
}

async fn three_seconds_of_vp8_and_opus_are_recorded() {
    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs().unwrap();
    let mut sender = SenderPeer::new(media_engine).await;
    let video = sample_track(RtpCodecKind::Video, VIDEO_SSRC, vp8());
    let audio = sample_track(RtpCodecKind::Audio, AUDIO_SSRC, opus());
    let video_transceiver = sender.add_send_only(Arc::clone(&video)).await;
    let audio_transceiver = sender.add_send_only(Arc::clone(&audio)).await;
    let offer = sender.connection.create_offer(None).await.unwrap();
    sender.connection.set_local_description(offer.clone()).await.unwrap();
    assert!(offer.sdp.contains("a=sendonly"), "the participant offers send-only");

    let Answered { peer, answer_sdp, media, local_candidates } =
        ReceivePeer::answer(&offer.sdp, Source::Participant, &loopback_config()).await.unwrap();
    assert!(answer_sdp.contains("a=recvonly"), "{answer_sdp}");
    let sections = (MediaSection::of_candidates(&offer.sdp), MediaSection::of_candidates(&answer_sdp));
    sender.connection.set_remote_description(RTCSessionDescription::answer(answer_sdp).unwrap()).await.unwrap();
    let peer = Arc::new(peer);
    let remote_candidates = std::mem::replace(&mut sender.events.candidates, mpsc::unbounded_channel().1);
    tokio::spawn(exchange_candidates(
        (Arc::clone(&peer), sections.1),
        local_candidates,
        (Arc::clone(&sender.connection), sections.0),
        remote_candidates,
    ));

    let dir = TempDir::new("peer-loopback");
    let taken = Arc::new(AtomicUsize::new(0));
    let recording = tokio::spawn(record(Arc::clone(&peer), media, dir.0.join("p1.webm"), Arc::clone(&taken)));

    sender.events.state.wait_for(|state| *state == RTCPeerConnectionState::Connected).await.unwrap();
    tokio::time::sleep(HANDSHAKE_LANDS).await;
    let video_pt = SenderPeer::payload_type(&video_transceiver).await;
    let audio_pt = SenderPeer::payload_type(&audio_transceiver).await;
    tokio::join!(send_video(video, video_pt), send_audio(audio, audio_pt));
    confab_testkit::eventually("every RTP packet sent reaches the capture", Duration::from_secs(5), || async {
        let stats = sender.connection.get_stats(Instant::now(), StatsSelector::None).await;
        let sent: u64 = stats.outbound_rtp_streams().map(|stream| stream.sent_rtp_stream_stats.packets_sent).sum();
        (sent > 0 && taken.load(Ordering::Relaxed) as u64 >= sent).then_some(())
    })
    .await;
    peer.close().await.unwrap();
    let recorded = recording.await.unwrap();
    sender.connection.close().await.unwrap();
    assert_eq!(peer.dropped(), 0, "the media channel never overflowed");

    let bytes = std::fs::read(&recorded.path).unwrap();
    let mut mkv = MatroskaFile::open(Cursor::new(bytes)).unwrap();
    let tracks: Vec<(String, Option<(u64, u64)>)> = mkv
        .tracks()
        .iter()
        .map(|t| (t.codec_id().to_string(), t.video().map(|v| (v.pixel_width().get(), v.pixel_height().get()))))
        .collect();
    let video_number = 1 + tracks.iter().position(|(id, _)| id == "V_VP8").expect("a V_VP8 track") as u64;
    let audio_number = 1 + tracks.iter().position(|(id, _)| id == "A_OPUS").expect("an A_OPUS track") as u64;
    assert_eq!(tracks[video_number as usize - 1].1, Some((u64::from(WIDTH), u64::from(HEIGHT))));
    let duration_ms = mkv.info().duration().expect("a Duration");
    let (mut video_frames, mut audio_frames, mut keyframes) = (0, 0, 0);
    let mut frame = ReadFrame::default();
    while let Ok(true) = mkv.next_frame(&mut frame) {
        if frame.track == video_number {
            video_frames += 1;
            keyframes += usize::from(frame.is_keyframe == Some(true));
        } else if frame.track == audio_number {
            audio_frames += 1;
        }
    }
    println!(
        "video {video_frames}/{VIDEO_FRAMES} ({keyframes} key), audio {audio_frames}/{AUDIO_FRAMES}, \
         duration {duration_ms} ms, sender reports {}, keyframe requests {}",
        recorded.sender_reports, recorded.keyframe_requests
    );
    assert!(video_frames * 10 >= VIDEO_FRAMES * 9, "video frames written: {video_frames} of {VIDEO_FRAMES}");
    assert!(audio_frames * 10 >= AUDIO_FRAMES * 9, "audio frames written: {audio_frames} of {AUDIO_FRAMES}");
    assert!(keyframes >= 3, "keyframes written: {keyframes}");
    assert!((2_000.0..=4_000.0).contains(&duration_ms), "duration {duration_ms} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_only_vp8_and_opus_participant_is_recorded_into_webm_over_loopback() {
    tokio::time::timeout(Duration::from_secs(60), three_seconds_of_vp8_and_opus_are_recorded())
        .await
        .expect("the call was recorded within 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h264_only_offer_gets_an_answer_that_rejects_the_video() {
    let mut media_engine = MediaEngine::default();
    let h264 = RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".to_owned(),
            ..codec("video/H264", 90_000, 0)
        },
        payload_type: 102,
    };
    media_engine.register_codec(h264, RtpCodecKind::Video).unwrap();
    let sender = SenderPeer::new(media_engine).await;
    let camera = sample_track(RtpCodecKind::Video, VIDEO_SSRC, codec("video/H264", 90_000, 0));
    sender.add_send_only(camera).await;
    let offer = sender.connection.create_offer(None).await.unwrap();
    assert!(offer.sdp.contains("H264"), "{}", offer.sdp);

    let answered = tokio::time::timeout(
        Duration::from_secs(20),
        ReceivePeer::answer(&offer.sdp, Source::Participant, &loopback_config()),
    )
    .await
    .expect("answered within 20 s")
    .expect("an unsupported codec is a rejected m-line, not an error");
    let video_line = answered.answer_sdp.lines().find(|line| line.starts_with("m=video")).expect("a video m-line");
    assert!(video_line.starts_with("m=video 0 "), "video rejected: {video_line}");
    assert!(!answered.answer_sdp.contains("H264"), "{}", answered.answer_sdp);
    answered.peer.close().await.unwrap();
    sender.connection.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cameras_offer_gets_an_answer_accepting_exactly_its_h264_profile_and_pcmu() {
    let fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f";
    let h264 = RTCRtpCodec { sdp_fmtp_line: fmtp.to_owned(), ..codec("video/H264", 90_000, 0) };
    let pcmu = codec("audio/PCMU", 8_000, 0);
    let mut media_engine = MediaEngine::default();
    for (codec, payload_type, kind) in [(&h264, 102, RtpCodecKind::Video), (&pcmu, 0, RtpCodecKind::Audio)] {
        let parameters = RTCRtpCodecParameters { rtp_codec: codec.clone(), payload_type };
        media_engine.register_codec(parameters, kind).unwrap();
    }
    let sender = SenderPeer::new(media_engine).await;
    sender.add_send_only(sample_track(RtpCodecKind::Video, VIDEO_SSRC, h264)).await;
    sender.add_send_only(sample_track(RtpCodecKind::Audio, AUDIO_SSRC, pcmu)).await;
    let offer = sender.connection.create_offer(None).await.unwrap();

    let config = loopback_config();
    let answer = |source| ReceivePeer::answer(&offer.sdp, source, &config);
    let answered = tokio::time::timeout(Duration::from_secs(20), answer(Source::Camera))
        .await
        .expect("answered within 20 s")
        .unwrap();
    let sdp = &answered.answer_sdp;
    let section = |kind: &str| sdp.split("m=").find(|s| s.starts_with(kind)).expect("an m-line").to_owned();
    let (video, audio) = (section("video"), section("audio"));
    assert!(!video.starts_with("video 0 ") && video.contains("H264/90000"), "{video}");
    assert!(video.contains("profile-level-id=4d001f") && video.contains("packetization-mode=1"), "{video}");
    assert!(!audio.starts_with("audio 0 ") && audio.contains("PCMU/8000"), "{audio}");
    assert!(video.contains("a=recvonly") && audio.contains("a=recvonly"));
    assert!(!sdp.contains("VP8") && !sdp.contains("opus"), "{sdp}");
    answered.peer.close().await.unwrap();

    // The same offer from a participant: neither codec is accepted.
    let answered = tokio::time::timeout(Duration::from_secs(20), answer(Source::Participant))
        .await
        .expect("answered within 20 s")
        .unwrap();
    assert!(!answered.answer_sdp.contains("H264") && !answered.answer_sdp.contains("PCMU"));
    answered.peer.close().await.unwrap();
    sender.connection.close().await.unwrap();
}
