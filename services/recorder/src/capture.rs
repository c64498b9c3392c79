//! One participant's (or camera's) capture: RTP from the WebRTC receive side goes through the
//! media core into that participant's WebM file (a camera's Matroska file), and what the core asks
//! for (keyframes) goes back to the caller, which sends the PLIs. Synchronous and file-writing: the
//! caller runs it off the async runtime.

use std::path::PathBuf;
use std::time::Instant;

use crate::media::{Codec, Frame, Output, Participant, PipelineConfig, RtpPacket, SenderReport, TrackId};
use crate::mkv_file::{CameraRecording, G711};
use crate::peer::Source;
use crate::recording_file::{FileError, FinishedFile, MediaKind};
use crate::webm_file::{ParticipantFile, VideoCodec};

/// What one participant's capture saw, for the recording's stats.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CaptureStats {
    pub packets: u64,
    pub packets_lost: u64,
    pub keyframe_requests: u64,
    pub malformed: u64,
    /// How far audio and video would have drifted apart without RTCP sender reports.
    pub av_drift_ms: u64,
}

/// Where a capture's frames go.
enum Files {
    /// A participant's VP8/VP9 and Opus.
    Webm(ParticipantFile),
    /// A camera's H.264 and G.711.
    Matroska(CameraRecording),
}

impl Files {
    fn write(&mut self, kind: MediaKind, timestamp_ns: u64, frame: &Frame) -> Result<Option<FinishedFile>, FileError> {
        match self {
            Files::Webm(file) => file.write(kind, timestamp_ns, frame),
            Files::Matroska(recording) => Ok(recording.write(kind, timestamp_ns, frame)?),
        }
    }

    fn finish(self) -> Result<Option<FinishedFile>, FileError> {
        match self {
            Files::Webm(file) => file.finish(),
            Files::Matroska(recording) => Ok(recording.finish()?),
        }
    }
}

pub struct Capture {
    participant: Participant,
    stats: CaptureStats,
    tracks: Vec<(TrackId, Codec)>,
    files: Files,
    /// Files completed so far (a resolution change starts a new one).
    finished: Vec<FinishedFile>,
}

impl Capture {
    /// Starts a capture into `path` for the negotiated tracks: at most one video and one audio
    /// track. A participant's (VP8 or VP9, Opus) go into WebM, a camera's (H.264, PCMU or PCMA)
    /// into Matroska; other codecs are not recorded.
    pub fn start(
        path: impl Into<PathBuf>,
        source: Source,
        video: Option<Codec>,
        audio: Option<Codec>,
    ) -> Result<Self, FileError> {
        let (video, audio, files) = match source {
            Source::Participant => {
                let video = video.filter(|codec| matches!(codec, Codec::Vp8 | Codec::Vp9));
                let audio = audio.filter(|codec| *codec == Codec::Opus);
                let video_codec = if video == Some(Codec::Vp9) { VideoCodec::Vp9 } else { VideoCodec::Vp8 };
                (video, audio, Files::Webm(ParticipantFile::create(path, video_codec, audio.is_some())?))
            }
            Source::Camera => {
                let video = video.filter(|codec| *codec == Codec::H264);
                let g711 = match audio {
                    Some(Codec::Pcmu) => Some(G711::MuLaw),
                    Some(Codec::Pcma) => Some(G711::ALaw),
                    _ => None,
                };
                let audio = audio.filter(|_| g711.is_some());
                (video, audio, Files::Matroska(CameraRecording::create(path, g711)?))
            }
        };
        let mut participant = Participant::new(PipelineConfig::default());
        let tracks = video.into_iter().chain(audio).map(|codec| (participant.add_track(codec), codec)).collect();
        Ok(Self { participant, stats: CaptureStats::default(), tracks, files, finished: Vec::new() })
    }

    /// The track receiving `codec`, if it was negotiated.
    pub fn track(&self, codec: Codec) -> Option<TrackId> {
        self.tracks.iter().find(|(_, c)| *c == codec).map(|(track, _)| *track)
    }

    /// Takes one packet; returns the SSRCs that need a keyframe request now.
    pub fn push(&mut self, track: TrackId, packet: RtpPacket, now: Instant) -> Result<Vec<u32>, FileError> {
        self.stats.packets += 1;
        let outputs = self.participant.push(track, packet, now);
        self.apply(outputs)
    }

    pub fn sender_report(&mut self, track: TrackId, report: SenderReport, now: Instant) {
        self.participant.sender_report(track, report, now);
    }

    /// When [`Capture::tick`] is next due.
    pub fn next_tick(&self) -> Option<Instant> {
        self.participant.poll_timeout()
    }

    /// Lets timers run (loss decisions, keyframe requests); returns SSRCs needing a keyframe.
    pub fn tick(&mut self, now: Instant) -> Result<Vec<u32>, FileError> {
        let outputs = self.participant.handle_timeout(now);
        self.apply(outputs)
    }

    pub fn stats(&self) -> CaptureStats {
        let av_drift_ms = u64::try_from(self.participant.av_drift().as_millis()).unwrap_or(u64::MAX);
        CaptureStats { av_drift_ms, ..self.stats }
    }

    /// Writes what is still buffered and closes the file; every file this capture produced.
    pub fn finish(mut self, now: Instant) -> Result<Vec<FinishedFile>, FileError> {
        let outputs = self.participant.finish(now);
        self.apply(outputs)?;
        let Self { files, mut finished, .. } = self;
        finished.extend(files.finish()?);
        Ok(finished)
    }

    fn apply(&mut self, outputs: Vec<Output>) -> Result<Vec<u32>, FileError> {
        let mut keyframes = Vec::new();
        for output in outputs {
            match output {
                Output::Frame { track, timestamp_ns, frame } => {
                    let video = self.tracks.iter().any(|(t, codec)| *t == track && codec.is_video());
                    let kind = if video { MediaKind::Video } else { MediaKind::Audio };
                    if let Some(done) = self.files.write(kind, timestamp_ns, &frame)? {
                        self.finished.push(done);
                    }
                }
                Output::KeyframeNeeded { ssrc, .. } => {
                    self.stats.keyframe_requests += 1;
                    keyframes.push(ssrc);
                }
                Output::Loss { packets, .. } => self.stats.packets_lost += packets,
                Output::Malformed { error, .. } => {
                    self.stats.malformed += 1;
                    tracing::debug!(%error, "dropped a malformed payload");
                }
                Output::SsrcChanged { .. } | Output::ResolutionChanged { .. } => {}
            }
        }
        Ok(keyframes)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn packet(sequence_number: u16, timestamp: u32, ssrc: u32, marker: bool, payload: Vec<u8>) -> RtpPacket {
        RtpPacket { sequence_number, timestamp, ssrc, marker, payload_type: 96, payload }
    }

    /// A VP8 frame in one RTP packet: descriptor (S=1, PID 0), then the frame; a keyframe carries
    /// the 10-byte header with its size.
    fn vp8_payload(keyframe: bool, width: u16, height: u16) -> Vec<u8> {
        let mut payload = vec![0x10];
        if keyframe {
            payload.extend_from_slice(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a]);
            payload.extend_from_slice(&width.to_le_bytes());
            payload.extend_from_slice(&height.to_le_bytes());
        } else {
            payload.extend_from_slice(&[0x01, 0x00, 0x00]);
        }
        payload.extend(std::iter::repeat_n(0xab, 300));
        payload
    }

    #[test]
    fn two_seconds_of_vp8_and_opus_become_one_finished_webm_file() {
        let dir = std::env::temp_dir().join(format!("confab-capture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut capture =
            Capture::start(dir.join("ann.webm"), Source::Participant, Some(Codec::Vp8), Some(Codec::Opus)).unwrap();
        let (video, audio) = (capture.track(Codec::Vp8).unwrap(), capture.track(Codec::Opus).unwrap());
        assert_eq!(capture.track(Codec::Vp9), None);

        let start = Instant::now();
        let mut asked_for_keyframe = false;
        // 2 s: video at 25 fps, the first keyframe only as the fourth frame (then one a second),
        // audio every 20 ms, in arrival order.
        for ms in (0..2000u32).step_by(20) {
            let now = start + Duration::from_millis(ms.into());
            let seq = (ms / 20) as u16;
            let opus = packet(seq, ms * 48, 0xa0, true, vec![0xfc; 80]);
            asked_for_keyframe |= !capture.push(audio, opus, now).unwrap().is_empty();
            if ms % 40 == 0 {
                let frame = ms / 40;
                let vp8 = vp8_payload(frame % 25 == 3, 640, 360);
                let pushed = capture.push(video, packet(frame as u16, ms * 90, 0xb0, true, vp8), now).unwrap();
                asked_for_keyframe |= pushed.contains(&0xb0);
            }
        }
        assert!(asked_for_keyframe, "a keyframe is requested while none has come");
        let stats = capture.stats();
        assert_eq!((stats.packets, stats.packets_lost, stats.malformed), (150, 0, 0));
        assert!(stats.keyframe_requests >= 1);
        let files = capture.finish(start + Duration::from_secs(3)).unwrap();
        assert_eq!(files.len(), 1);
        let file = &files[0];
        assert_eq!(file.codecs, ["vp8", "opus"]);
        assert_eq!(file.dimensions, Some((640, 360)));
        assert!((1800..=2100).contains(&file.duration_ms), "{} ms", file.duration_ms);
        assert_eq!(std::fs::metadata(&file.path).unwrap().len(), file.bytes);
        assert_eq!(file.sha256.len(), 64);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sender_reports_that_move_video_120_ms_against_audio_show_as_av_drift() {
        let dir = std::env::temp_dir().join(format!("confab-capture-drift-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut capture =
            Capture::start(dir.join("bo.webm"), Source::Participant, Some(Codec::Vp8), Some(Codec::Opus)).unwrap();
        let (video, audio) = (capture.track(Codec::Vp8).unwrap(), capture.track(Codec::Opus).unwrap());
        let start = Instant::now();
        // Captured together at RTP timestamp 0, but video reaches the recorder 120 ms after audio.
        capture.push(audio, packet(0, 0, 0xa0, true, vec![0xfc; 80]), start).unwrap();
        capture
            .push(video, packet(0, 0, 0xb0, true, vp8_payload(true, 640, 360)), start + Duration::from_millis(120))
            .unwrap();
        assert_eq!(capture.stats().av_drift_ms, 0);

        // Both report the same wallclock for capture time 1 s.
        let ntp_time = 3_970_000_001u64 << 32;
        capture.sender_report(audio, SenderReport { ntp_time, rtp_timestamp: 48_000 }, start + Duration::from_secs(1));
        capture.sender_report(
            video,
            SenderReport { ntp_time, rtp_timestamp: 90_000 },
            start + Duration::from_millis(1120),
        );
        assert_eq!(capture.stats().av_drift_ms, 120);
        capture.finish(start + Duration::from_secs(2)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_camera_is_captured_into_matroska_and_a_new_picture_size_starts_the_next_file() {
        use crate::media::testing::{PPS, SPS_640X480, SPS_1280X720, fu_a, idr, non_idr, stap_a};
        let dir = std::env::temp_dir().join(format!("confab-capture-camera-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut capture =
            Capture::start(dir.join("door.mkv"), Source::Camera, Some(Codec::H264), Some(Codec::Pcmu)).unwrap();
        let (video, audio) = (capture.track(Codec::H264).unwrap(), capture.track(Codec::Pcmu).unwrap());
        assert_eq!(capture.track(Codec::Opus), None);

        let start = Instant::now();
        let mut video_seq = 0u16;
        // 4 s at 25 fps, a keyframe a second (SPS and PPS aggregated, the slice fragmented); from
        // 2 s on the camera sends 1280×720. PCMU every 20 ms.
        for ms in (0..4000u32).step_by(20) {
            let now = start + Duration::from_millis(ms.into());
            let pcmu = packet((ms / 20) as u16, ms * 8, 0xa0, false, vec![0xff; 160]);
            capture.push(audio, pcmu, now).unwrap();
            if ms % 40 != 0 {
                continue;
            }
            let timestamp = ms * 90;
            let payloads = if ms % 1000 == 0 {
                let sps: &[u8] = if ms < 2000 { &SPS_640X480 } else { &SPS_1280X720 };
                [vec![stap_a(&[sps, &PPS])], fu_a(&idr(2500), 1000)].concat()
            } else {
                vec![non_idr(300)]
            };
            let last = payloads.len() - 1;
            for (i, payload) in payloads.into_iter().enumerate() {
                capture.push(video, packet(video_seq, timestamp, 0xb0, i == last, payload), now).unwrap();
                video_seq += 1;
            }
        }
        let stats = capture.stats();
        assert_eq!((stats.packets_lost, stats.malformed), (0, 0));
        let files = capture.finish(start + Duration::from_secs(5)).unwrap();
        assert_eq!(files.len(), 2, "a file per picture size");
        assert_eq!(files[0].path, dir.join("door.mkv"));
        assert_eq!(files[1].path, dir.join("door-2.mkv"));
        assert_eq!(files[0].dimensions, Some((640, 480)));
        assert_eq!(files[1].dimensions, Some((1280, 720)));
        for file in &files {
            assert_eq!(file.content_type, "video/x-matroska");
            assert_eq!(file.codecs, ["h264", "pcm_mulaw"]);
            assert!((1800..=2100).contains(&file.duration_ms), "{} ms", file.duration_ms);
            assert_eq!(std::fs::metadata(&file.path).unwrap().len(), file.bytes);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_disk_is_an_error_from_the_capture_not_a_panic() {
        // Every write to /dev/full fails with ENOSPC, as on a full disk.
        let mut capture =
            Capture::start("/dev/full", Source::Participant, Some(Codec::Vp8), Some(Codec::Opus)).unwrap();
        let (video, audio) = (capture.track(Codec::Vp8).unwrap(), capture.track(Codec::Opus).unwrap());
        let start = Instant::now();
        let mut failure = None;
        for ms in (0..3000u32).step_by(20) {
            let now = start + Duration::from_millis(ms.into());
            let seq = (ms / 20) as u16;
            let pushed = capture.push(audio, packet(seq, ms * 48, 0xa0, true, vec![0xfc; 80]), now).and_then(|_| {
                capture.push(video, packet(seq, ms * 90, 0xb0, true, vp8_payload(ms % 1000 == 0, 320, 240)), now)
            });
            if let Err(e) = pushed {
                failure = Some(e);
                break;
            }
        }
        let failure = failure.expect("writing to a full disk fails within 3 s of media");
        assert!(matches!(&failure, FileError::Io(e) if e.raw_os_error() == Some(28)), "{failure}");
    }
}
