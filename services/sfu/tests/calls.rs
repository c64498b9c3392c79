//! Calls through the media server with real WebRTC peers (webrtc-rs `rtc`) on the other side:
//! ICE, DTLS and SRTP as a browser does them, in one process without sockets.

mod support;

use confab_domain::{CallRole, RoomMode, RoomRole};
use confab_sfu::connection::ConnectionKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use confab_sfu::server::{Incoming, Shown};
use proptest::prelude::*;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::packetizer::Depacketizer;
use support::{CLIP_PROFILE, Call, ROOM, h264_clip};

#[test]
fn a_published_camera_reaches_every_other_participant_once_renumbered_on_their_own_connection() {
    let mut call = Call::new(RoomMode::Meeting);
    let teacher = call.join("ann", RoomRole::Owner);
    let students: Vec<usize> = ["bob", "cat", "dan"].iter().map(|s| call.join(s, RoomRole::Member)).collect();
    call.publish_camera(teacher);
    let all_see = call.run(&[teacher], |call| students.iter().all(|s| call.received_from(*s, "ann") >= 60));
    assert!(all_see, "every student receives the camera");
    for &student in &students {
        let received = &call.participants[student].received;
        let numbers: Vec<u16> = received.iter().map(|(_, packet)| packet.header.sequence_number).collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "consecutive numbers: {numbers:?}");
        assert_eq!(call.participants[student].streams, ["ann"], "the stream is the publisher's peer id");
    }
    assert_eq!(call.received_from(teacher, "ann"), 0, "nobody receives their own camera");

    // A student who cannot decode asks for a keyframe: the teacher is asked, once for the
    // three students asking together (the throttle).
    let before = call.participants[teacher].keyframe_requests;
    for &student in &students {
        call.ask_for_keyframes(student);
    }
    let asked = call.run(&[teacher], |call| call.participants[teacher].keyframe_requests > before);
    assert!(asked, "the teacher is asked for a keyframe");
    call.run(&[teacher], |call| students.iter().all(|s| call.received_from(*s, "ann") >= 90));
    assert_eq!(call.participants[teacher].keyframe_requests, before + 1);

    // The teacher leaves: each student's connection is offered anew without the camera.
    call.leave(teacher);
    let received: Vec<usize> = students.iter().map(|s| call.received_from(*s, "ann")).collect();
    let renegotiated = call.run(&[teacher], |call| students.iter().all(|s| call.participants[*s].offers == 2));
    assert!(renegotiated, "every student is offered the connection without the camera");
    let after: Vec<usize> = students.iter().map(|s| call.received_from(*s, "ann")).collect();
    assert_eq!(after, received, "nothing of a departed publisher is forwarded");
}

#[test]
fn a_cameras_h264_and_pcmu_reach_everyone_in_their_own_codecs_as_whole_frames_from_a_keyframe() {
    // A lecture: a camera publishes there too, and its viewers only watch.
    let mut call = Call::new(RoomMode::Lecture);
    let viewers = ["ann", "bob"].map(|p| call.join(p, RoomRole::Member));
    let camera = call.join_as("door", CallRole::Camera);
    call.publish_h264_camera(camera, CLIP_PROFILE);
    let enough = |call: &Call| {
        viewers.iter().all(|n| frames_from(call, *n, "door").len() >= 45 && audio_packets(call, *n, "door") >= 45)
    };
    assert!(call.run(&[camera], enough), "both viewers receive the camera's video and sound");
    let clip = h264_clip();
    for n in viewers {
        let viewer = &call.participants[n];
        assert_eq!(viewer.streams, ["door", "door"], "both tracks are in the camera's stream");
        let mut codecs: Vec<(&str, &str)> =
            viewer.codecs.iter().map(|(_, mime, fmtp)| (mime.as_str(), fmtp.as_str())).collect();
        codecs.sort();
        assert_eq!(codecs[0], ("audio/PCMU", ""));
        assert_eq!(codecs[1].0, "video/H264");
        let fmtp = codecs[1].1;
        assert!(
            fmtp.contains("packetization-mode=1") && fmtp.contains(&format!("profile-level-id={CLIP_PROFILE}")),
            "{fmtp}"
        );
        // Whole frames, byte for byte the clip's, in order from one of its keyframes.
        let frames = frames_from(&call, n, "door");
        let first = clip.iter().position(|unit| *unit == frames[0]).expect("a frame of the clip");
        assert_eq!(clip[first][4] & 0x1f, 7, "the first frame is a keyframe (SPS, PPS, IDR)");
        for (i, frame) in frames.iter().enumerate() {
            assert!(*frame == clip[(first + i) % clip.len()], "frame {i} after the first is the clip's next");
        }
    }
    let door = &call.participants[camera];
    assert!(door.subscribe.is_none() && door.offers == 0, "a camera receives nothing");

    // A viewer who lost a picture asks for a keyframe: the camera is asked.
    let before = call.participants[camera].keyframe_requests;
    call.ask_for_keyframes(viewers[0]);
    assert!(call.run(&[camera], |call| call.participants[camera].keyframe_requests > before), "the PLI reaches it");
}

#[test]
fn a_camera_that_publishes_after_a_subscribe_connection_was_made_is_offered_at_its_profile() {
    let mut call = Call::new(RoomMode::Meeting);
    let [ann, bob] = ["ann", "bob"].map(|p| call.join(p, RoomRole::Member));
    call.publish_camera(ann);
    assert!(call.run(&[ann], |call| call.received_from(bob, "ann") >= 10), "Bob's subscribe connection is up");
    let camera = call.join_as("door", CallRole::Camera);
    call.publish_h264_camera(camera, CLIP_PROFILE);
    let frames = |call: &Call| frames_from(call, bob, "door").len();
    assert!(call.run(&[ann, camera], |call| frames(call) >= 30), "Bob receives the camera on the same connection");
    let (_, _, fmtp) = call.participants[bob].codecs.iter().find(|(_, mime, _)| mime == "video/H264").unwrap();
    // Its profile (Main, constraint_set1) at level 5.2: the connection could not learn the level.
    assert!(fmtp.contains("profile-level-id=4d4034") && fmtp.contains("packetization-mode=1"), "{fmtp}");
    assert!(call.received_from(ann, "door") > 0, "Ann receives it too");
    let from_ann = call.received_from(bob, "ann");
    assert!(call.run(&[ann, camera], |call| call.received_from(bob, "ann") > from_ann + 30), "and Ann's VP8 goes on");
}

#[test]
fn participants_who_publish_after_a_camera_reach_those_who_received_only_the_camera() {
    let mut call = Call::new(RoomMode::Meeting);
    let [ann, bob, cat] = ["ann", "bob", "cat"].map(|p| call.join(p, RoomRole::Member));
    let camera = call.join_as("door", CallRole::Camera);
    call.publish_h264_camera(camera, CLIP_PROFILE);
    assert!(call.run(&[camera], |call| frames_from(call, bob, "door").len() >= 10), "Bob's connection carries H.264");
    call.publish_camera(ann);
    call.publish_microphone(cat);
    let codec_of = |call: &Call, publisher: &str| {
        let codecs = &call.participants[bob].codecs;
        codecs.iter().find(|(track, _, _)| track.starts_with(publisher)).map(|(_, mime, _)| mime.clone())
    };
    let both = |call: &Call| call.received_from(bob, "ann") >= 30 && call.received_from(bob, "cat") >= 30;
    assert!(call.run(&[ann, cat, camera], both), "Bob receives Ann's VP8 and Cat's Opus on the same connection");
    assert_eq!(codec_of(&call, "ann").as_deref(), Some("video/VP8"));
    assert_eq!(codec_of(&call, "cat").as_deref(), Some("audio/opus"));
}

#[test]
fn a_subscriber_that_takes_no_h264_gets_the_cameras_sound_only_and_is_not_offered_it_again_and_again() {
    let mut call = Call::new(RoomMode::Meeting);
    let [ann, bob] = ["ann", "bob"].map(|p| call.join(p, RoomRole::Member));
    call.participants[bob].decodes_h264 = false;
    call.publish_camera(ann);
    assert!(call.run(&[ann], |call| call.received_from(bob, "ann") >= 10), "Bob's connection is up, without H.264");
    let offers = call.participants[bob].offers;
    let camera = call.join_as("door", CallRole::Camera);
    call.publish_h264_camera(camera, CLIP_PROFILE);
    assert!(call.run(&[ann, camera], |call| call.received_from(bob, "door") >= 30), "Bob hears the camera");
    call.run_within(Duration::from_secs(1), &[ann, camera], |_| false);
    let from_camera = call.participants[bob].codecs.iter().filter(|(track, _, _)| track.starts_with("door"));
    assert_eq!(from_camera.map(|(_, mime, _)| mime.as_str()).collect::<Vec<_>>(), ["audio/PCMU"], "no video");
    let more = call.participants[bob].offers - offers;
    assert!(more <= 2, "offered {more} more times for the camera's two tracks");
}

#[test]
fn a_cameras_offer_without_h264_is_refused_with_a_clear_code() {
    let mut call = Call::new(RoomMode::Meeting);
    let _ann = call.join("ann", RoomRole::Member);
    let camera = call.join_as("door", CallRole::Camera);
    call.publish_camera(camera);
    assert!(call.run(&[], |call| !call.participants[camera].refusals.is_empty()));
    assert_eq!(call.participants[camera].refusals, [(ConnectionKind::Publish, "unsupported_codecs")]);
    assert!(call.answers.is_empty(), "nothing is answered");
}

/// The frames participant `n` received on the H.264 track of `publisher`, each checked whole
/// (consecutive sequence numbers, one timestamp, the marker on its last packet) and
/// depacketized into Annex B.
fn frames_from(call: &Call, n: usize, publisher: &str) -> Vec<Vec<u8>> {
    let participant = &call.participants[n];
    let Some((track, _, _)) =
        participant.codecs.iter().find(|(t, mime, _)| t.starts_with(publisher) && mime == "video/H264")
    else {
        return Vec::new();
    };
    let packets: Vec<_> = participant.received.iter().filter(|(t, _)| t == track).map(|(_, p)| p).collect();
    let mut frames = Vec::new();
    let mut depacketizer = H264Packet::default();
    let mut frame = Vec::new();
    for (i, packet) in packets.iter().enumerate() {
        if i > 0 {
            let previous = packets[i - 1];
            assert_eq!(packet.header.sequence_number, previous.header.sequence_number.wrapping_add(1));
            assert!(previous.header.marker || packet.header.timestamp == previous.header.timestamp);
        }
        frame.extend_from_slice(&depacketizer.depacketize(&packet.payload).expect("an H.264 payload"));
        if packet.header.marker {
            frames.push(std::mem::take(&mut frame));
        }
    }
    frames
}

fn audio_packets(call: &Call, n: usize, publisher: &str) -> usize {
    let participant = &call.participants[n];
    let audio = |track: &String| {
        participant
            .codecs
            .iter()
            .any(|(t, mime, _)| t == track && t.starts_with(publisher) && mime.starts_with("audio/"))
    };
    participant.received.iter().filter(|(track, _)| audio(track)).count()
}

#[test]
fn a_participant_whose_page_reloaded_starts_afresh_and_is_seen_again_at_once() {
    let mut call = Call::new(RoomMode::Meeting);
    let [ann, bob] = ["ann", "bob"].map(|p| call.join(p, RoomRole::Member));
    call.publish_camera(ann);
    call.publish_camera(bob);
    let both = |call: &Call, from: [usize; 2]| {
        call.received_from(bob, "ann") > from[0] && call.received_from(ann, "bob") > from[1]
    };
    assert!(call.run(&[ann, bob], |call| both(call, [30, 30])));
    // Ann's page reloads: same peer id, new connections; she offers her camera again.
    call.reload(ann);
    call.publish_camera(ann);
    let before = [call.received_from(bob, "ann"), 0];
    let back = call.run_within(Duration::from_secs(5), &[ann, bob], |call| both(call, [before[0] + 30, 30]));
    assert!(back, "Bob sees Ann's new camera and Ann, on a new subscribe connection, sees Bob within seconds");
}

#[test]
fn each_subscriber_gets_the_simulcast_layer_its_tile_needs_and_a_paused_one_gets_none() {
    let mut call = Call::new(RoomMode::Lecture);
    let teacher = call.join("ann", RoomRole::Owner);
    let [full, small, away] = ["bob", "cat", "dan"].map(|s| call.join(s, RoomRole::Member));
    call.publish_simulcast_camera(teacher);
    let flowing = call.run(&[teacher], |call| [full, small, away].iter().all(|s| call.received_from(*s, "ann") >= 30));
    assert!(flowing, "every student receives the camera");
    assert!(call.keyframe_sizes(full, "ann", 0).iter().all(|size| *size == (1280, 720)), "the top layer by default");

    call.show(small, "ann", Shown::Tile(320, 180));
    call.show(away, "ann", Shown::Paused);
    let (before_small, before_away) = (call.received_from(small, "ann"), call.received_from(away, "ann"));
    let moved = call.run(&[teacher], |call| !call.keyframe_sizes(small, "ann", before_small).is_empty());
    assert!(moved, "the small tile receives a keyframe of its layer");
    assert_eq!(call.keyframe_sizes(small, "ann", before_small), [(320, 180)]);
    assert_eq!(call.received_from(away, "ann"), before_away, "a paused track sends nothing");
    assert!(call.keyframe_sizes(full, "ann", 0).iter().all(|size| *size == (1280, 720)));
    let numbers: Vec<u16> = call.participants[small].received.iter().map(|(_, p)| p.header.sequence_number).collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "no gap at the switch");
}

#[test]
fn the_recorder_receives_the_top_layer_whatever_others_show_and_publishes_nothing() {
    let mut call = Call::new(RoomMode::Meeting);
    let teacher = call.join("ann", RoomRole::Owner);
    let student = call.join("bob", RoomRole::Member);
    let recorder = call.join_as("rec", CallRole::Recorder);
    call.publish_simulcast_camera(teacher);
    assert!(call.run(&[teacher], |call| call.received_from(student, "ann") > 0));
    call.show(student, "ann", Shown::Tile(320, 180));
    let small = call.received_from(student, "ann");
    let recorded = call.run(&[teacher], |call| {
        call.keyframe_sizes(recorder, "ann", 0).len() >= 2 && !call.keyframe_sizes(student, "ann", small).is_empty()
    });
    assert!(recorded, "the recorder receives Ann's camera");
    assert!(call.keyframe_sizes(recorder, "ann", 0).iter().all(|size| *size == (1280, 720)), "the top layer");
    assert_eq!(call.keyframe_sizes(student, "ann", small), [(320, 180)], "while Bob's small tile gets the low one");

    call.publish_microphone(recorder);
    assert!(call.run(&[], |call| !call.participants[recorder].refusals.is_empty()));
    assert_eq!(call.participants[recorder].refusals, [(ConnectionKind::Publish, "not_allowed_to_publish")]);
}

#[test]
fn a_subscriber_whose_downlink_is_squeezed_gets_a_lower_layer_and_climbs_back_when_it_widens() {
    let mut call = Call::new(RoomMode::Meeting);
    let teacher = call.join("ann", RoomRole::Owner);
    let student = call.join("bob", RoomRole::Member);
    call.publish_simulcast_camera(teacher);
    let top = |call: &Call, from: usize| call.keyframe_sizes(student, "ann", from).last() == Some(&(1280, 720));
    assert!(call.run(&[teacher], |call| top(call, 0)), "the top layer while the link is wide");
    // The top layer is about 270 kbit/s, the middle one 120: the link now carries 200.
    call.downlink_limit = Some(200_000);
    let squeezed = call.received_from(student, "ann");
    let lower = |call: &Call| call.keyframe_sizes(student, "ann", squeezed).last().is_some_and(|size| size.0 < 1280);
    assert!(call.run(&[teacher], lower), "a lower layer once the estimate falls");
    call.downlink_limit = None;
    let widened = call.received_from(student, "ann");
    // Trials of each layer up, 3 s apart (longer after one fails on a busy machine).
    let climbed = call.run_within(Duration::from_secs(60), &[teacher], |call| top(call, widened));
    assert!(climbed, "back to the top layer when the link widens");
}

#[test]
fn a_publishers_answer_caps_its_video() {
    let mut call = Call::new(RoomMode::Meeting);
    let teacher = call.join("ann", RoomRole::Owner);
    call.publish_camera(teacher);
    call.run(&[], |call| !call.answers.is_empty());
    assert!(call.answers[0].contains("m=video"));
    assert!(call.answers[0].contains("\r\nb=TIAS:2500000\r\n"), "the cap is stated");
}

#[test]
fn a_subscriber_gets_sender_reports_that_map_its_copys_timestamps_to_the_publishers_clock() {
    let mut call = Call::new(RoomMode::Meeting);
    let teacher = call.join("ann", RoomRole::Owner);
    let student = call.join("bob", RoomRole::Member);
    call.publish_camera(teacher);
    let reported = |call: &Call| !call.participants[student].sender_reports.is_empty();
    assert!(call.run(&[teacher], |call| reported(call) && call.received_from(student, "ann") > 60));
    let (ssrc, ntp, rtp) = *call.participants[student].sender_reports.last().unwrap();
    let (_, newest) = call.participants[student].received.last().unwrap();
    assert_eq!(ssrc, newest.header.ssrc, "about the copy it receives");
    // When the newest packet was captured, by the report's mapping, against now: the same
    // moment give or take the time it took to get here (one process, one clock).
    let ticks = newest.header.timestamp.wrapping_sub(rtp) as i32;
    let captured = ntp_seconds(ntp) + f64::from(ticks) / 90_000.0;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - captured).abs() < 0.25, "the report's clock is {:.3} s off", now - captured);
}

/// An NTP timestamp (seconds since 1900 in 32.32 fixed point) as seconds since 1970.
fn ntp_seconds(ntp: u64) -> f64 {
    const FROM_1900_TO_1970: f64 = 2_208_988_800.0;
    (ntp >> 32) as f64 + (ntp & 0xffff_ffff) as f64 / 4_294_967_296.0 - FROM_1900_TO_1970
}

#[test]
fn a_lecture_viewer_publishes_only_while_let_speak() {
    let mut call = Call::new(RoomMode::Lecture);
    let teacher = call.join("ann", RoomRole::Owner);
    let viewer = call.join("bob", RoomRole::Member);
    let other = call.join("cat", RoomRole::Member);
    call.publish_camera(viewer);
    let refused = call.run(&[], |call| !call.participants[viewer].refusals.is_empty());
    assert!(refused);
    assert_eq!(call.participants[viewer].refusals, [(ConnectionKind::Publish, "not_allowed_to_publish")]);

    call.server.let_speak(support::ROOM, "bob");
    call.publish_camera(viewer);
    let seen = |call: &Call| [teacher, other].iter().all(|n| call.received_from(*n, "bob") >= 30);
    assert!(call.run(&[viewer], seen), "once let speak, Bob is seen by all");

    let offers: Vec<usize> = [teacher, other].iter().map(|n| call.participants[*n].offers).collect();
    call.server.silence(support::ROOM, "bob", Instant::now());
    let renegotiated =
        |call: &Call| [teacher, other].iter().zip(&offers).all(|(n, o)| call.participants[*n].offers > *o);
    assert!(call.run(&[viewer], renegotiated), "his track ends for everyone");
    // Bob's client keeps sending for a second (a modified one might): none of it is forwarded.
    let received = call.received_from(teacher, "bob");
    call.run_within(Duration::from_secs(1), &[viewer], |_| false);
    assert_eq!(call.received_from(teacher, "bob"), received, "nothing of Bob's is forwarded any more");
}

#[test]
fn a_track_request_for_a_track_not_received_is_refused_even_before_anything_is_received() {
    let mut call = Call::new(RoomMode::Meeting);
    let ann = call.join("ann", RoomRole::Owner);
    let request = Incoming::TrackRequest { track_id: "bob-0".to_owned(), shown: Shown::Paused };
    call.server.signal(ROOM, "ann", ConnectionKind::Subscribe, request, Instant::now());
    assert!(call.run(&[], |call| !call.participants[ann].refusals.is_empty()), "refused");
    assert_eq!(call.participants[ann].refusals, [(ConnectionKind::Subscribe, "unknown_track")]);
}

#[test]
fn the_room_is_told_its_dominant_speaker_from_the_levels_in_the_audio_packets() {
    let mut call = Call::new(RoomMode::Meeting);
    let [ann, bob] = ["ann", "bob"].map(|p| call.join(p, RoomRole::Member));
    call.publish_microphone(ann);
    call.publish_microphone(bob);
    (call.participants[ann].level, call.participants[bob].level) = (30, 100);
    assert!(call.run(&[ann, bob], |call| !call.speakers.is_empty()), "a speaker is found");
    assert_eq!(call.speakers, ["ann"]);
    assert!(call.run(&[ann, bob], |call| call.received_from(bob, "ann") > 10), "and heard");
    (call.participants[ann].level, call.participants[bob].level) = (127, 20);
    assert!(call.run(&[ann, bob], |call| call.speakers.len() == 2), "the speaker changes");
    assert_eq!(call.speakers, ["ann", "bob"]);
}

/// Ann's camera to Bob while `lose` has one in twenty of the media datagrams on one hop (5 %)
/// dropped: at least 99 % of the frames Ann sends meanwhile reach Bob, NACKs repairing the rest.
/// The call, for what else a test looks at.
fn five_percent_lost_and_repaired(lose: fn(&mut Call, Option<u64>)) -> Call {
    let mut call = Call::new(RoomMode::Meeting);
    let teacher = call.join("ann", RoomRole::Owner);
    let student = call.join("bob", RoomRole::Member);
    call.publish_camera(teacher);
    assert!(call.run(&[teacher], |call| call.received_from(student, "ann") >= 30));
    lose(&mut call, Some(20));
    let from = call.received_from(student, "ann");
    let timestamps = |call: &Call| -> std::collections::BTreeSet<u32> {
        let received = call.participants[student].received.iter().skip(from);
        received.map(|(_, packet)| packet.header.timestamp).collect()
    };
    assert!(call.run(&[teacher], |call| call.lost >= 10 && timestamps(call).len() >= 200));
    lose(&mut call, None);
    // The last losses' retransmissions arrive.
    call.run_within(Duration::from_millis(300), &[teacher], |_| false);
    let frames = timestamps(&call);
    let (first, last) = (*frames.first().unwrap(), *frames.last().unwrap());
    let sent = (last - first) / 3000 + 1;
    let share = frames.len() as f64 / f64::from(sent);
    assert!(share >= 0.99, "{} of {sent} frames arrived ({share:.3}) with {} datagrams lost", frames.len(), call.lost);
    call
}

#[test]
fn packets_lost_between_a_publisher_and_the_server_are_repaired_by_nack() {
    five_percent_lost_and_repaired(|call, every| call.lose_every = every);
}

#[test]
fn packets_lost_between_the_server_and_a_subscriber_are_sent_again_from_the_publishers_cache() {
    let call = five_percent_lost_and_repaired(|call, every| call.lose_downlink_every = every);
    let counts = call.server.stats().counts;
    assert!(counts.resent >= 10 && counts.nacked >= counts.resent, "{counts:?}");
}

#[test]
fn a_subscriber_that_nacks_everything_gets_no_more_than_its_retransmission_budget() {
    let mut call = Call::new(RoomMode::Meeting);
    let teacher = call.join("ann", RoomRole::Owner);
    let student = call.join("bob", RoomRole::Member);
    call.publish_simulcast_camera(teacher);
    assert!(call.run(&[teacher], |call| call.received_from(student, "ann") >= 60));
    let newest = call.participants[student].received.last().unwrap().1.header.sequence_number;
    let before = call.server.stats().counts;
    // 100 NACKs of the last 60 packets of every stream, at once.
    for _ in 0..100 {
        call.nack(student, newest, 60);
    }
    call.run_within(Duration::from_millis(100), &[], |_| false);
    let counts = call.server.stats().counts;
    let (asked, resent) = (counts.nacked - before.nacked, counts.resent - before.resent);
    assert!(asked >= 6_000, "{asked} asked for");
    // A second of the 1 Mbit/s budget, about 110 of the top layer's 1,100-byte packets (fewer
    // of the smaller layers' would fit more), not the 6,000 asked for.
    assert!((10..=1_000).contains(&resent), "{resent} of {asked} sent again");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]


    /// Garbage on the media port — from strangers, and from a participant's own verified
    /// addresses (where it reaches the WebRTC stack) — is dropped: no panic, and the call goes on.
    #[test]
    fn garbage_on_the_media_port_is_dropped_and_the_call_goes_on(
        datagrams in prop::collection::vec((0..3usize, datagram()), 500),
    ) {
        let mut call = Call::new(RoomMode::Meeting);
        let teacher = call.join("ann", RoomRole::Owner);
        let student = call.join("bob", RoomRole::Member);
        call.publish_camera(teacher);
        prop_assert!(call.run(&[teacher], |call| call.received_from(student, "ann") >= 10));
        let stranger: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let [publisher, _] = call.addresses(teacher);
        let [_, subscriber] = call.addresses(student);
        for (from, datagram) in datagrams {
            let from = [stranger, publisher, subscriber][from];
            call.server.datagram(from, &datagram, Instant::now());
        }
        let before = call.received_from(student, "ann");
        prop_assert!(call.run(&[teacher], |call| call.received_from(student, "ann") >= before + 30));
        let dropped = call.server.stats().demux_drops;
        prop_assert!(dropped.unknown_source + dropped.malformed_stun + dropped.unknown_ufrag > 0);
    }
}

/// A datagram that looks like STUN, DTLS, RTP or RTCP by its first byte (RFC 7983), or is empty.
fn datagram() -> impl Strategy<Value = Vec<u8>> {
    let first = prop_oneof![0u8..4, 20u8..64, 128u8..192, Just(0x80), Just(0x81)];
    (first, prop::collection::vec(any::<u8>(), 0..1400)).prop_map(|(first, mut rest)| {
        if !rest.is_empty() {
            rest[0] = first;
        }
        rest
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever a camera offers that is not H.264 in packetization-mode 1 — garbage, an SDP
    /// fragment, H.264 in another mode — is refused with `unsupported_codecs`; an offer that names
    /// it but cannot be applied, with `invalid_description`. Never a panic, never an answer.
    #[test]
    fn a_cameras_hostile_offer_is_refused_with_a_code(offer in hostile_camera_offer()) {
        let mut call = Call::new(RoomMode::Meeting);
        let camera = call.join_as("door", CallRole::Camera);
        call.server.signal(ROOM, "door", ConnectionKind::Publish, Incoming::Offer(offer), Instant::now());
        prop_assert!(call.run(&[], |call| !call.participants[camera].refusals.is_empty()));
        let (connection, code) = call.participants[camera].refusals[0];
        prop_assert_eq!(connection, ConnectionKind::Publish);
        prop_assert!(["unsupported_codecs", "invalid_description"].contains(&code), "{}", code);
        prop_assert!(call.answers.is_empty());
    }
}

/// Offers no camera should make: bytes, or SDP-looking lines mixing H.264 format parameters of
/// any mode with whatever else.
fn hostile_camera_offer() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("v=0".to_owned()),
        Just("m=video 9 UDP/TLS/RTP/SAVPF 102".to_owned()),
        Just("a=rtpmap:102 H264/90000".to_owned()),
        Just("a=fmtp:102 packetization-mode=1;profile-level-id=42e01f".to_owned()),
        Just("a=fmtp:102 packetization-mode=0;profile-level-id=42e01f".to_owned()),
        Just("a=rtpmap:96 VP8/90000".to_owned()),
        ".{0,80}",
    ];
    // A whole description naming H.264 in packetization-mode 1, without ICE or DTLS.
    let no_transport = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n\
        c=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n";
    prop_oneof![
        ".{0,400}",
        prop::collection::vec(line, 0..12).prop_map(|lines| lines.join("\r\n")),
        Just(no_transport.to_owned()),
    ]
}
