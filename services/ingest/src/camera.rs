//! Pulling one camera: connect with retina (RTSP over TCP, interleaved), take its H.264 video and
//! G.711 audio, publish the frames, and keep its status row current. Any failure (unreachable,
//! refused credentials, unsupported codec, a stream that ends or stalls) becomes a `failed`
//! status with the reason, and the camera is tried again after a capped exponential backoff. It
//! runs as its own task until the worker stops it, so one camera's trouble never touches another.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confab_common::camera_url::{self, CameraUrl, HostError, HostPolicy};
use confab_common::secret_box::SecretBox;
use futures_util::StreamExt;
use retina::client::{Credentials, PlayOptions, Session, SessionOptions, SetupOptions, Transport};
use retina::codec::h26x::Framing;
use retina::codec::{CodecItem, FrameFormat, ParameterSetInsertion, ParametersRef};
use sqlx::PgPool;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::backoff;
use crate::frames::{AudioFrame, G711, MediaFrame, VideoFrame, split_length_prefixed};
use crate::meter::Meter;
use crate::settings::Timings;
use crate::status::{CameraStatus, State};
use crate::store::{self, Camera, CameraId};

/// What every camera task shares.
#[derive(Clone)]
pub struct Context {
    pub db: PgPool,
    pub worker_id: String,
    pub secrets: Option<Arc<SecretBox>>,
    pub host_policy: HostPolicy,
    pub timings: Timings,
}

/// Why a connection ended or could not be made: a short label for metrics and the sentence
/// operators read in `last_error`. Never contains credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: &'static str,
    pub message: String,
}

impl Failure {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    /// A retina error while connecting, by what an operator should check.
    fn connecting(e: &retina::Error) -> Self {
        match e.status_code() {
            Some(401 | 403) => Self::new("auth", "authentication failed: the camera refused the username or password"),
            Some(404) => Self::new("refused", "the camera has no stream at this path (404)"),
            Some(code) => Self::new("refused", format!("the camera refused the stream ({code}): {}", first_line(e))),
            None if e.to_string().starts_with("Unable to connect") => {
                Self::new("unreachable", format!("camera unreachable: {}", first_line(e)))
            }
            None => Self::new("protocol", format!("RTSP error: {}", first_line(e))),
        }
    }
}

/// `message` with every `rtsp://…`/`rtsps://…` word replaced: `last_error` is shown to every
/// member of the room, and a camera URL's path may be a secret of its own.
pub fn without_urls(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.to_ascii_lowercase().find("rtsp") {
        let tail = &rest[at..];
        let lower = tail.to_ascii_lowercase();
        if lower.starts_with("rtsp://") || lower.starts_with("rtsps://") {
            out.push_str(&rest[..at]);
            out.push_str("<camera URL>");
            let end =
                tail.find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>')).unwrap_or(tail.len());
            rest = &tail[end..];
        } else {
            out.push_str(&rest[..at + 4]);
            rest = &tail[4..];
        }
    }
    out.push_str(rest);
    out
}

/// The first line of an error: retina appends connection details on further lines.
fn first_line(e: &impl std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

/// Pulls the camera until `stop` turns true (or the camera is deleted), publishing frames on
/// `frames`.
pub async fn pull(ctx: Context, id: CameraId, frames: broadcast::Sender<MediaFrame>, mut stop: watch::Receiver<bool>) {
    let mut report = Reporter::new(&ctx, id);
    let mut failures_in_row = 0u32;
    loop {
        let camera = match store::find_camera_by_id(&ctx.db, id).await {
            Ok(Some(camera)) => Some(camera),
            Ok(None) => return,
            Err(e) => {
                metrics::counter!("ingest_db_errors_total").increment(1);
                tracing::warn!(camera.id = %id, error = %e, "cannot read the camera");
                None
            }
        };
        let mut connected_at = None;
        if let Some(camera) = camera {
            let session = Connection { ctx: &ctx, camera: &camera, report: &mut report, frames: &frames };
            let failure = tokio::select! {
                failure = session.run(&mut connected_at) => failure,
                _ = stop.changed() => return,
            };
            metrics::counter!("ingest_camera_failures_total", "reason" => failure.kind).increment(1);
            tracing::warn!(camera.id = %id, room.id = %camera.room_id, reason = failure.kind, error = %failure.message, "camera connection failed");
            report.status.state = State::Failed;
            report.status.frame_rate = None;
            report.status.bitrate_kbps = None;
            report.status.last_error = Some(without_urls(&failure.message));
            report.write().await;
        }
        // A connection that delivered for a while is a fresh start for the backoff.
        if connected_at.is_some_and(|at: Instant| at.elapsed() >= ctx.timings.backoff_max) {
            failures_in_row = 0;
        }
        failures_in_row = failures_in_row.saturating_add(1);
        let wait = backoff::delay(ctx.timings.backoff_min, ctx.timings.backoff_max, failures_in_row);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        report.status.reconnects = report.status.reconnects.saturating_add(1);
        metrics::counter!("ingest_camera_reconnects_total").increment(1);
    }
}

/// Keeps the camera's status and writes it to Postgres.
struct Reporter {
    db: PgPool,
    id: CameraId,
    worker_id: String,
    status: CameraStatus,
    written_at: Option<Instant>,
}

impl Reporter {
    fn new(ctx: &Context, id: CameraId) -> Self {
        Self {
            db: ctx.db.clone(),
            id,
            worker_id: ctx.worker_id.clone(),
            status: CameraStatus::default(),
            written_at: None,
        }
    }

    async fn write(&mut self) {
        self.written_at = Some(Instant::now());
        match store::upsert_camera_status(&self.db, self.id, &self.worker_id, &self.status).await {
            Ok(true) => {}
            Ok(false) => tracing::debug!(camera.id = %self.id, "status row belongs to another worker"),
            Err(e) => {
                metrics::counter!("ingest_db_errors_total").increment(1);
                tracing::warn!(camera.id = %self.id, error = %e, "cannot write the camera status");
            }
        }
    }

    fn due(&self, every: Duration) -> bool {
        self.written_at.is_none_or(|at| at.elapsed() >= every)
    }
}

/// One connection to a camera, from DESCRIBE until it fails.
struct Connection<'a> {
    ctx: &'a Context,
    camera: &'a Camera,
    report: &'a mut Reporter,
    frames: &'a broadcast::Sender<MediaFrame>,
}

/// H.264 with 4-byte lengths (split into NAL units as it arrives) and SPS and PPS in front of
/// every keyframe, so that a viewer joining at any keyframe can decode it; G.711 needs no framing.
const FRAME_FORMAT: FrameFormat = FrameFormat {
    h26x_framing: Framing::FourByteLength,
    parameter_set_insertion: ParameterSetInsertion::EachKeyFrame,
    ..FrameFormat::SIMPLE
};

/// The streams chosen from what the camera describes.
struct Chosen {
    video: usize,
    audio: Option<(usize, G711)>,
}

impl Connection<'_> {
    /// Connects and forwards frames; returns why it stopped (it never stops on its own accord).
    /// `connected_at` is set when the first frame arrives.
    async fn run(self, connected_at: &mut Option<Instant>) -> Failure {
        let Connection { ctx, camera, report, frames } = self;
        report.status.state = State::Connecting;
        report.write().await;
        let connecting = tokio::time::timeout(ctx.timings.connect_timeout, connect(ctx, camera, &mut report.status));
        let (mut session, chosen) = match connecting.await {
            Ok(Ok(connected)) => connected,
            Ok(Err(failure)) => return failure,
            Err(_) => {
                let secs = ctx.timings.connect_timeout.as_secs_f32();
                return Failure::new("unreachable", format!("camera unreachable: no answer within {secs:.0} s"));
            }
        };
        let mut meter = Meter::new(ctx.timings.meter_window);
        loop {
            let item = match tokio::time::timeout(ctx.timings.stall_after, session.next()).await {
                Err(_) => {
                    let secs = ctx.timings.stall_after.as_secs_f32();
                    return Failure::new("stalled", format!("stream stalled: no frame for {secs:.0} s"));
                }
                Ok(None) => return Failure::new("lost", "connection lost: the camera ended the stream"),
                Ok(Some(Err(e))) => return Failure::new("lost", format!("connection lost: {}", first_line(&e))),
                Ok(Some(Ok(item))) => item,
            };
            match item {
                CodecItem::VideoFrame(frame) if frame.stream_id() == chosen.video => {
                    let now = Instant::now();
                    if frame.has_new_parameters() || report.status.width.is_none() {
                        video_parameters(&session.streams()[chosen.video], &mut report.status, camera.id);
                    }
                    let keyframe = frame.is_random_access_point();
                    let pts = Duration::from_secs_f64(frame.timestamp().elapsed_secs().max(0.0));
                    let access_unit = Bytes::from(frame.into_data());
                    meter.record(now.into_std(), access_unit.len());
                    metrics::counter!("ingest_video_frames_total").increment(1);
                    metrics::counter!("ingest_received_bytes_total").increment(access_unit.len() as u64);
                    let nal_units = split_length_prefixed(&access_unit);
                    let _ = frames.send(MediaFrame::Video(VideoFrame { nal_units, keyframe, pts }));
                    if report.status.state != State::Connected {
                        *connected_at = Some(now);
                        report.status.state = State::Connected;
                        report.status.last_error = None;
                        tracing::info!(camera.id = %camera.id, room.id = %camera.room_id, reconnects = report.status.reconnects, "camera connected");
                        report.write().await;
                    } else if report.due(ctx.timings.status_every) {
                        if let Some(rates) = meter.rates(now.into_std()) {
                            report.status.frame_rate = Some(rates.frame_rate);
                            report.status.bitrate_kbps = Some(rates.bitrate_kbps);
                        }
                        report.write().await;
                    }
                }
                CodecItem::AudioFrame(frame) => {
                    let Some((_, codec)) = chosen.audio.filter(|(i, _)| *i == frame.stream_id()) else { continue };
                    let payload = Bytes::copy_from_slice(frame.data());
                    metrics::counter!("ingest_audio_frames_total").increment(1);
                    metrics::counter!("ingest_received_bytes_total").increment(payload.len() as u64);
                    let pts = Duration::from_secs_f64(frame.timestamp().elapsed_secs().max(0.0));
                    let duration = Duration::from_secs_f64(f64::from(frame.frame_length().get()) / 8000.0);
                    let _ = frames.send(MediaFrame::Audio(AudioFrame { codec, payload, pts, duration }));
                }
                _ => {}
            }
        }
    }
}

/// Width and height from the stream's current parameters (SPS), when it has them.
fn video_parameters(stream: &retina::client::Stream, status: &mut CameraStatus, id: CameraId) {
    if let Some(ParametersRef::Video(params)) = stream.parameters() {
        let (width, height) = params.pixel_dimensions();
        let size = (i32::try_from(width).ok(), i32::try_from(height).ok());
        if (status.width, status.height) != size && status.width.is_some() {
            tracing::info!(camera.id = %id, width, height, "the camera changed its video parameters");
        }
        (status.width, status.height) = size;
    }
}

/// DESCRIBE, choose the streams, SETUP and PLAY.
async fn connect(
    ctx: &Context,
    camera: &Camera,
    status: &mut CameraStatus,
) -> Result<(retina::client::Demuxed, Chosen), Failure> {
    let url = checked_address(&camera.rtsp_url, &ctx.host_policy).await?;
    let creds = match &camera.credentials {
        Some(sealed) => Some(open_credentials(ctx.secrets.as_deref(), sealed)?),
        None => None,
    };
    let options = SessionOptions::default().creds(creds).user_agent("confab-ingest".to_owned());
    let mut session = Session::describe(url, options).await.map_err(|e| Failure::connecting(&e))?;
    let chosen = choose_streams(session.streams(), status)?;
    let setup = || SetupOptions::default().transport(Transport::default()).frame_format(FRAME_FORMAT);
    session.setup(chosen.video, setup()).await.map_err(|e| Failure::connecting(&e))?;
    if let Some((audio, _)) = chosen.audio {
        session.setup(audio, setup()).await.map_err(|e| Failure::connecting(&e))?;
    }
    let play = PlayOptions::default().initial_timestamp(retina::client::InitialTimestampPolicy::Permissive);
    let playing = session.play(play).await.map_err(|e| Failure::connecting(&e))?;
    let demuxed = playing.demuxed().map_err(|e| Failure::connecting(&e))?;
    Ok((demuxed, chosen))
}

/// Picks the first video stream, which must be H.264, and the first audio stream if it is
/// G.711; records the codecs in the status.
fn choose_streams(streams: &[retina::client::Stream], status: &mut CameraStatus) -> Result<Chosen, Failure> {
    let video = streams.iter().position(|s| s.media() == "video");
    let Some(video) = video else {
        status.codec = None;
        return Err(Failure::new("unsupported_codec", "the camera offers no video stream"));
    };
    let codec = streams[video].encoding_name().to_owned();
    if codec != "h264" {
        let reason = format!("unsupported video codec {codec}: only H.264 is forwarded (set the camera to H.264)");
        status.codec = Some(codec);
        (status.width, status.height) = (None, None);
        return Err(Failure::new("unsupported_codec", reason));
    }
    status.codec = Some(codec);
    let audio = streams.iter().position(|s| s.media() == "audio");
    let (audio, label) = match audio {
        None => (None, "none".to_owned()),
        Some(i) => match G711::from_encoding_name(streams[i].encoding_name()) {
            Some(g711) => (Some((i, g711)), g711.as_str().to_owned()),
            None => (None, format!("{} (not forwarded)", streams[i].encoding_name())),
        },
    };
    status.audio = Some(label);
    Ok(Chosen { video, audio })
}

#[derive(serde::Deserialize)]
struct SealedCredentials {
    username: String,
    password: String,
}

/// The camera's username and password, from the blob the API sealed.
fn open_credentials(secrets: Option<&SecretBox>, sealed: &[u8]) -> Result<Credentials, Failure> {
    let secrets = secrets.ok_or_else(|| {
        Failure::new("credentials", "the camera has credentials but CONFAB_CAMERA_KEY is not set on the ingest worker")
    })?;
    let plain = secrets
        .open(sealed)
        .map_err(|_| Failure::new("credentials", "the camera's credentials cannot be opened with CONFAB_CAMERA_KEY"))?;
    let SealedCredentials { username, password } = serde_json::from_slice(&plain)
        .map_err(|_| Failure::new("credentials", "the camera's stored credentials are malformed"))?;
    Ok(Credentials { username, password })
}

/// The URL to connect to: the camera's host resolved now and every address checked against
/// the operator's policy (so a name that resolves elsewhere since the API checked it, DNS
/// rebinding, gains nothing), with the host replaced by the checked address.
async fn checked_address(raw: &str, policy: &HostPolicy) -> Result<url::Url, Failure> {
    let camera_url = CameraUrl::parse(raw).map_err(|e| Failure::new("config", e.to_string()))?;
    if camera_url.scheme() != "rtsp" {
        return Err(Failure::new("config", "rtsps:// cameras are not supported yet: use rtsp://"));
    }
    let addresses = camera_url::resolve(&camera_url, policy).await.map_err(|e| match e {
        HostError::Unresolvable => Failure::new("unreachable", format!("camera unreachable: {e}")),
        HostError::NotAllowed(_) => Failure::new("forbidden_address", e.to_string()),
    })?;
    let address = addresses.first().ok_or_else(|| Failure::new("unreachable", "camera unreachable"))?;
    let mut url = url::Url::parse(camera_url.as_str()).map_err(|_| Failure::new("config", "invalid camera URL"))?;
    let rewritten = url.set_ip_host(address.ip()).and_then(|()| url.set_port(Some(address.port())));
    rewritten.map_err(|()| Failure::new("config", "invalid camera URL"))?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::without_urls;

    #[test]
    fn urls_are_kept_out_of_error_messages() {
        assert_eq!(
            without_urls("404 for rtsp://10.0.0.5:554/secret-token?x=1 (DESCRIBE)"),
            "404 for <camera URL> (DESCRIBE)"
        );
        assert_eq!(without_urls("RTSPS://Cam/a and rtsp://b"), "<camera URL> and <camera URL>");
        assert_eq!(without_urls("RTSP framing error: bad header"), "RTSP framing error: bad header");
    }
}
