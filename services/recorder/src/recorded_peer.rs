//! One participant's (or camera's) send-only connection to the recorder, from offer to files:
//! answer the offer, relay ICE candidates through the gateway, and run the participant's
//! [`Capture`] on a blocking thread of its own (files are written synchronously) until the
//! connection ends. A publisher whose media comes on the media server's connection
//! ([`crate::media_server`]) is captured the same way, from its share of that connection. That thread takes the packets in batches every 20 ms rather than being woken
//! for each one. When the capture fails (a full disk, a write error), the thread says so at once
//! through [`Failed`], so the call finishes that participant then, not when they leave.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_call::{MediaSection, Signals, signals};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, watch};

use crate::capture::{Capture, CaptureStats};
use crate::media::Codec;
use crate::peer::{Answered, IceCandidate, Media, PeerConfig, ReceivePeer, Received, Source};
use crate::publishers::Publisher;
use crate::recording_file::{FileError, FinishedFile};

/// How often a capture adds what it saw to the process's metrics.
const METRICS_EVERY: Duration = Duration::from_secs(1);
/// How long the capture thread sleeps between batches of packets. Waking it for every packet
/// cost more CPU than all the rest of the recorder's work on a packet (docs/benchmarks.md);
/// packets keep their arrival times, and 20 ms more before one is written changes nothing in
/// a recording.
const BATCH_EVERY: Duration = Duration::from_millis(20);

/// A participant being recorded.
pub struct RecordedPeer {
    peer: Arc<ReceivePeer>,
    /// The connection is the participant's own (not the media server's, which others share).
    owns_connection: bool,
    path: PathBuf,
    stop: watch::Sender<bool>,
    capture: tokio::task::JoinHandle<Result<Captured, FileError>>,
}

/// A capture that stopped on an error by itself: the participant and its first file's path (which
/// tells this capture from a later one of the same participant).
pub struct Failed {
    pub peer_id: String,
    pub path: PathBuf,
}

/// A finished capture.
pub struct Captured {
    pub files: Vec<FinishedFile>,
    pub stats: CaptureStats,
}

impl RecordedPeer {
    /// Answers `offer_sdp` from `peer_id` and starts capturing into `path` (a `.webm` for a
    /// participant, a `.mkv` for a camera); signaling for the participant (the answer, then local
    /// candidates) goes out through `signals`, and a capture failing by itself is told on `failed`.
    pub async fn start(
        peer_id: &str,
        offer_sdp: &str,
        source: Source,
        path: PathBuf,
        config: &PeerConfig,
        signals: Signals,
        failed: mpsc::UnboundedSender<Failed>,
    ) -> anyhow::Result<Self> {
        let Answered { peer, answer_sdp, media, local_candidates } =
            ReceivePeer::answer(offer_sdp, source, config).await?;
        let (video, audio) = negotiated(&answer_sdp);
        let section = MediaSection::of_candidates(&answer_sdp);
        let _ = signals.send(signals::answer(peer_id, answer_sdp.clone()));
        tokio::spawn(signals::trickle(peer_id.to_owned(), section, local_candidates, signals));
        let capture = Capture::start(&path, source, video, audio)?;
        Ok(Self::capture(peer_id, Arc::new(peer), true, capture, media, path, failed))
    }

    /// Starts capturing `publisher` (media and codecs sorted out of the media server's connection
    /// `peer`) into `path`.
    pub fn from_media_server(
        publisher: Publisher,
        source: Source,
        path: PathBuf,
        peer: Arc<ReceivePeer>,
        failed: mpsc::UnboundedSender<Failed>,
    ) -> Result<Self, FileError> {
        let Publisher { peer_id, video, audio, media } = publisher;
        let capture = Capture::start(&path, source, video, audio)?;
        Ok(Self::capture(&peer_id, peer, false, capture, media, path, failed))
    }

    fn capture(
        peer_id: &str,
        peer: Arc<ReceivePeer>,
        owns_connection: bool,
        capture: Capture,
        media: mpsc::Receiver<Received>,
        path: PathBuf,
        failed: mpsc::UnboundedSender<Failed>,
    ) -> Self {
        let (runtime, keyframes_to) = (tokio::runtime::Handle::current(), peer.clone());
        let (stop, stopped) = watch::channel(false);
        // The capture thread logs within the recording's span (its `request.id`).
        let span = tracing::Span::current();
        let failure = Failed { peer_id: peer_id.to_owned(), path: path.clone() };
        let capture = tokio::task::spawn_blocking(move || {
            let captured = span.in_scope(|| run_capture(capture, media, stopped, &runtime, &keyframes_to));
            if captured.is_err() {
                let _ = failed.send(failure);
            }
            captured
        });
        Self { peer, owns_connection, path, stop, capture }
    }

    /// The participant's first file (later ones are numbered beside it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn add_candidate(&self, candidate: IceCandidate) {
        if !self.owns_connection {
            return;
        }
        if let Err(e) = self.peer.add_remote_candidate(candidate).await {
            tracing::debug!(error = %e, "a remote ICE candidate was refused");
        }
    }

    /// Closes the participant's own connection and finishes its files.
    pub async fn finish(self) -> Result<Captured, FileError> {
        if self.owns_connection {
            let _ = self.peer.close().await;
        }
        let _ = self.stop.send(true);
        match self.capture.await {
            Ok(files) => files,
            Err(e) => Err(FileError::Mux(if e.is_panic() { "capture panicked" } else { "capture cancelled" })),
        }
    }
}

/// Feeds received media through the capture until the connection ends or `stop` is set.
fn run_capture(
    mut capture: Capture,
    mut media: mpsc::Receiver<Received>,
    stop: watch::Receiver<bool>,
    runtime: &tokio::runtime::Handle,
    peer: &ReceivePeer,
) -> Result<Captured, FileError> {
    metrics::gauge!("recorder_participants_active").increment(1);
    let mut counted = Counted::default();
    let captured = capture_until_done(&mut capture, &mut media, &stop, runtime, peer, &mut counted);
    counted.update(capture.stats());
    metrics::gauge!("recorder_participants_active").decrement(1);
    captured?;
    let stats = capture.stats();
    let files = capture.finish(Instant::now())?;
    metrics::counter!("recorder_files_total").increment(files.len() as u64);
    metrics::counter!("recorder_written_bytes_total").increment(files.iter().map(|f| f.bytes).sum());
    Ok(Captured { files, stats })
}

/// What a capture has added to the metrics so far.
#[derive(Default)]
struct Counted {
    stats: CaptureStats,
    at: Option<Instant>,
}

impl Counted {
    fn update(&mut self, now: CaptureStats) {
        metrics::counter!("recorder_packets_total").increment(now.packets - self.stats.packets);
        metrics::counter!("recorder_packets_lost_total").increment(now.packets_lost - self.stats.packets_lost);
        metrics::counter!("recorder_keyframe_requests_total")
            .increment(now.keyframe_requests - self.stats.keyframe_requests);
        metrics::counter!("recorder_malformed_payloads_total").increment(now.malformed - self.stats.malformed);
        if now.av_drift_ms > self.stats.av_drift_ms {
            metrics::histogram!("recorder_av_drift_seconds").record(now.av_drift_ms as f64 / 1000.0);
        }
        self.stats = now;
        self.at = Some(Instant::now());
    }

    fn due(&self) -> bool {
        self.at.is_none_or(|at| at.elapsed() >= METRICS_EVERY)
    }
}

fn capture_until_done(
    capture: &mut Capture,
    media: &mut mpsc::Receiver<Received>,
    stop: &watch::Receiver<bool>,
    runtime: &tokio::runtime::Handle,
    peer: &ReceivePeer,
    counted: &mut Counted,
) -> Result<(), FileError> {
    loop {
        if counted.due() {
            counted.update(capture.stats());
        }
        loop {
            let received = match media.try_recv() {
                Ok(received) => received,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Ok(()),
            };
            let Some(track) = capture.track(received.track.codec) else { continue };
            let keyframes = match received.media {
                Media::Rtp(packet) => capture.push(track, packet, received.at)?,
                Media::SenderReport(report) => {
                    capture.sender_report(track, report, received.at);
                    Vec::new()
                }
                Media::Ended => Vec::new(),
            };
            request_keyframes(keyframes, runtime, peer);
        }
        if *stop.borrow() {
            return Ok(());
        }
        let now = Instant::now();
        if capture.next_tick().is_some_and(|due| due <= now) {
            request_keyframes(capture.tick(now)?, runtime, peer);
        }
        std::thread::sleep(BATCH_EVERY);
    }
}

fn request_keyframes(ssrcs: Vec<u32>, runtime: &tokio::runtime::Handle, peer: &ReceivePeer) {
    for ssrc in ssrcs {
        let _ = runtime.block_on(peer.request_keyframe(ssrc));
    }
}

/// The video and audio codecs accepted (the first of each), from an answer.
fn negotiated(answer_sdp: &str) -> (Option<Codec>, Option<Codec>) {
    let (mut video, mut audio) = (None, None);
    let mut section: Option<&str> = None;
    for line in answer_sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            let mut fields = m.split_whitespace();
            let (kind, port) = (fields.next(), fields.next());
            section = if port == Some("0") { None } else { kind };
        } else if let (Some(kind), Some(map)) = (section, line.strip_prefix("a=rtpmap:")) {
            let name = map.split_whitespace().nth(1).unwrap_or_default().to_ascii_lowercase();
            match kind {
                "video" if video.is_none() && name.starts_with("vp8/") => video = Some(Codec::Vp8),
                "video" if video.is_none() && name.starts_with("vp9/") => video = Some(Codec::Vp9),
                "video" if video.is_none() && name.starts_with("h264/") => video = Some(Codec::H264),
                "audio" if audio.is_none() && name.starts_with("opus/") => audio = Some(Codec::Opus),
                "audio" if audio.is_none() && name.starts_with("pcmu/") => audio = Some(Codec::Pcmu),
                "audio" if audio.is_none() && name.starts_with("pcma/") => audio = Some(Codec::Pcma),
                _ => {}
            }
        }
    }
    (video, audio)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_says_what_was_accepted() {
        let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                      m=video 9 UDP/TLS/RTP/SAVPF 98 96\r\na=rtpmap:98 VP9/90000\r\na=rtpmap:96 VP8/90000\r\n";
        assert_eq!(negotiated(answer), (Some(Codec::Vp9), Some(Codec::Opus)));
        let rejected_video =
            "m=video 0 UDP/TLS/RTP/SAVPF 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert_eq!(negotiated(rejected_video), (None, Some(Codec::Opus)));
        assert_eq!(negotiated(""), (None, None));
        let camera = "m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n\
                      m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n";
        assert_eq!(negotiated(camera), (Some(Codec::H264), Some(Codec::Pcmu)));
    }
}
