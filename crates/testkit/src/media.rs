//! A participant's camera and microphone for tests: the committed clips (`clips/`: real VP8 in
//! IVF, real Opus in Ogg) read into frames and played into webrtc-rs tracks in real time, as a
//! camera and a microphone would send them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rtc::media::Sample;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;

/// The SSRC of a participant's camera track.
pub const VIDEO_SSRC: u32 = 0x1111_0001;
/// The SSRC of a participant's microphone track.
pub const AUDIO_SSRC: u32 = 0x2222_0002;

pub use confab_call::{codec, opus, vp8};

/// A participant's send-only track of `kind`.
pub fn sample_track(kind: RtpCodecKind, ssrc: u32, codec: RTCRtpCodec) -> Arc<TrackLocalStaticSample> {
    confab_call::sample_track("participant", kind, ssrc, codec).unwrap()
}

/// A committed test clip (how they were made: `clips/README.md`).
pub fn clip(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clips").join(name)
}

/// The length of every Opus packet in `clips/audio.ogg` (`-frame_duration 20`).
pub const OPUS_FRAME: Duration = Duration::from_millis(20);
const OPUS_FRAME_SAMPLES: u64 = 960;

/// A clip's encoded frames, each with its presentation time from the clip's start.
pub struct Clip {
    pub frames: Vec<(Duration, Vec<u8>)>,
    /// How long the last frame lasts.
    pub last_duration: Duration,
}

/// The VP8 frames of an IVF file, timed by the file's timebase.
pub fn read_ivf(path: &std::path::Path) -> Clip {
    use rtc::media::io::ivf_reader::IVFReader;
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let (mut reader, header) = IVFReader::new(file).unwrap();
    assert_eq!(&header.four_cc, b"VP80", "{} is not VP8", path.display());
    let tick = |ticks: u64| {
        Duration::from_nanos(ticks * 1_000_000_000 * u64::from(header.timebase_numerator)) / header.timebase_denominator
    };
    let mut frames = Vec::new();
    // The reader ends with an error at the end of the file; the frame count says where that is.
    for _ in 0..header.num_frames {
        let (payload, frame) = reader.parse_next_frame().unwrap();
        frames.push((tick(frame.timestamp), payload.to_vec()));
    }
    assert!(!frames.is_empty() && reader.parse_next_frame().is_err(), "{}: frame count", path.display());
    let last_duration = match frames.as_slice() {
        [.., (before, _), (last, _)] => *last - *before,
        _ => tick(1),
    };
    Clip { frames, last_duration }
}

/// The Opus packets of an Ogg Opus file, split by the pages' segment tables (a page holds many
/// packets; a packet may continue on the next page), without the `OpusHead` and `OpusTags`
/// headers. Every packet must be one [`OPUS_FRAME`] long, which the pages' granule positions show.
pub fn read_ogg_opus(path: &std::path::Path) -> Clip {
    let data = std::fs::read(path).unwrap();
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let mut partial = Vec::new();
    let mut rest = data.as_slice();
    let mut granule_checked: Option<(u64, usize)> = None;
    while !rest.is_empty() {
        assert!(rest.len() >= 27 && &rest[..4] == b"OggS", "{}: not an Ogg page", path.display());
        let end_of_stream = rest[5] & 0x04 != 0;
        let granule = u64::from_le_bytes(rest[6..14].try_into().unwrap());
        let segments = usize::from(rest[26]);
        let (table, mut body) = rest[27..].split_at(segments);
        for &lacing in table {
            let (segment, after) = body.split_at(usize::from(lacing));
            partial.extend_from_slice(segment);
            body = after;
            if lacing < 255 {
                packets.push(std::mem::take(&mut partial));
            }
        }
        // Audio pages: the granule position counts 48 kHz samples through the page's last
        // complete packet (the final page may end short, trimmed to the audio's length).
        if packets.len() > 2 && granule != u64::MAX {
            if let Some((before, counted)) = granule_checked
                && !end_of_stream
            {
                let samples = (packets.len() - counted) as u64 * OPUS_FRAME_SAMPLES;
                assert_eq!(granule - before, samples, "{}: packets are not 20 ms", path.display());
            }
            granule_checked = Some((granule, packets.len()));
        }
        rest = body;
    }
    assert!(partial.is_empty(), "{}: the last packet is cut off", path.display());
    assert!(packets.len() > 2 && packets[0].starts_with(b"OpusHead") && packets[1].starts_with(b"OpusTags"));
    let frames = packets.into_iter().skip(2).enumerate().map(|(n, packet)| (OPUS_FRAME * n as u32, packet)).collect();
    Clip { frames, last_duration: OPUS_FRAME }
}

/// What [`play_clips`] sent.
#[derive(Debug, Clone, Copy)]
pub struct Played {
    pub video_frames: usize,
    pub audio_packets: usize,
    /// Where the media sent ends: the end of the later track's last sample.
    pub media_time: Duration,
}

/// Plays the first `length` of the committed clips into the tracks (built with [`VIDEO_SSRC`] and
/// [`AUDIO_SSRC`]) in real time, like a camera and a microphone: video and audio start at the
/// same instant and each frame is written at its own time in the clip.
pub async fn play_clips(
    video: &TrackLocalStaticSample,
    video_payload_type: u8,
    audio: &TrackLocalStaticSample,
    audio_payload_type: u8,
    length: Duration,
) -> Played {
    let video_clip = read_ivf(&clip("video.ivf"));
    let audio_clip = read_ogg_opus(&clip("audio.ogg"));
    // (time in the clip, duration, whether video, frame): both tracks, in time order.
    let mut schedule = Vec::new();
    let mut played = Played { video_frames: 0, audio_packets: 0, media_time: Duration::ZERO };
    for (clip, is_video) in [(&video_clip, true), (&audio_clip, false)] {
        let ends =
            clip.frames.iter().skip(1).map(|(at, _)| *at).chain([clip.frames.last().unwrap().0 + clip.last_duration]);
        for ((at, frame), end) in clip.frames.iter().zip(ends).take_while(|((at, _), _)| *at < length) {
            schedule.push((*at, end - *at, is_video, frame));
            played.media_time = played.media_time.max(end);
            if is_video {
                played.video_frames += 1;
            } else {
                played.audio_packets += 1;
            }
        }
    }
    schedule.sort_by_key(|(at, _, is_video, _)| (*at, !*is_video));
    let start = tokio::time::Instant::now();
    for (at, duration, is_video, frame) in schedule {
        tokio::time::sleep_until(start + at).await;
        let sample = Sample { data: frame.clone().into(), duration, ..Sample::new((start + at).into_std()) };
        let (track, ssrc, payload_type) = match is_video {
            true => (video, VIDEO_SSRC, video_payload_type),
            false => (audio, AUDIO_SSRC, audio_payload_type),
        };
        track.sample_writer(ssrc, payload_type).write_sample(&sample).await.unwrap();
    }
    played
}
