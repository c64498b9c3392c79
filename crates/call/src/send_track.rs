//! A send-only track of samples, the way every sender here (a camera's connection, the tests' and
//! the benchmark's synthetic participants) builds one: one encoding with a known SSRC, added to
//! the connection send-only, and the payload type the other side accepted once it answered.

use std::sync::Arc;
use std::time::Instant;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::peer_connection::PeerConnection;
use webrtc::rtp_transceiver::RtpTransceiver;

/// A codec without format parameters or feedback.
pub fn codec(mime_type: &str, clock_rate: u32, channels: u16) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: mime_type.to_owned(),
        clock_rate,
        channels,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

/// VP8, as a browser's camera sends it.
pub fn vp8() -> RTCRtpCodec {
    codec("video/VP8", 90_000, 0)
}

/// Opus, stereo at 48 kHz, as a browser's microphone sends it.
pub fn opus() -> RTCRtpCodec {
    codec("audio/opus", 48_000, 2)
}

/// A `kind` track of stream `stream` sending `codec` with SSRC `ssrc`.
pub fn sample_track(
    stream: &str,
    kind: RtpCodecKind,
    ssrc: u32,
    codec: RTCRtpCodec,
) -> Result<Arc<TrackLocalStaticSample>, webrtc::error::Error> {
    let encoding = RTCRtpEncodingParameters {
        rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
        codec,
        ..Default::default()
    };
    let track =
        MediaStreamTrack::new(stream.to_owned(), format!("{stream}-{kind}"), format!("{kind}"), kind, vec![encoding]);
    Ok(Arc::new(TrackLocalStaticSample::new(Instant::now(), track)?))
}

/// Adds `track` to `connection`, send-only.
pub async fn add_send_only(
    connection: &Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticSample>,
) -> Result<Arc<dyn RtpTransceiver>, webrtc::error::Error> {
    let init = RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Sendonly, ..Default::default() };
    connection.add_transceiver_from_track(track, Some(init)).await
}

/// The payload type the other side accepted for a transceiver's sender, once its answer is
/// applied; `None` when it refused the track.
pub async fn negotiated_payload_type(transceiver: &Arc<dyn RtpTransceiver>) -> Option<u8> {
    let sender = transceiver.sender().await.ok()??;
    let parameters = sender.get_parameters().await.ok()?;
    parameters.rtp_parameters.codecs.first().map(|codec| codec.payload_type)
}
