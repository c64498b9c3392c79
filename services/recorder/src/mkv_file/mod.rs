//! Writes a camera's H.264 (and G.711, if it sends audio) into a Matroska file. WebM, which
//! `webm_file` writes with libwebm, cannot carry H.264, and MP4 needs its index (the `moov` box)
//! written at the end, so a killed recorder would leave an unplayable MP4; a Matroska file
//! written cluster by cluster plays up to its last complete cluster. The subset of Matroska needed
//! is small, so rather than add a muxer dependency (or FFmpeg bindings) the EBML is written here by
//! hand (`ebml`), from what `h264` makes of the camera's NAL units.

mod camera_file;
mod camera_recording;
mod ebml;
mod h264;
mod rebuild;
#[cfg(test)]
mod tests;

pub use camera_file::CameraFile;
pub use camera_recording::CameraRecording;
pub use rebuild::rebuild;

/// The media type of a camera's file.
pub const CONTENT_TYPE: &str = "video/x-matroska";

/// A camera's G.711 variant (RTP payload types 0 and 8): 8 kHz, mono, one byte per sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711 {
    /// PCMU.
    MuLaw,
    /// PCMA.
    ALaw,
}

impl G711 {
    const SAMPLE_RATE: u32 = 8_000;

    /// The FFmpeg codec name, as recordings list codecs.
    fn codec_name(self) -> &'static str {
        match self {
            G711::MuLaw => "pcm_mulaw",
            G711::ALaw => "pcm_alaw",
        }
    }

    /// The WAVEFORMATEX that Matroska's `A_MS/ACM` track carries as CodecPrivate.
    fn wave_format_ex(self) -> [u8; 18] {
        let format_tag: u16 = match self {
            G711::MuLaw => 7, // WAVE_FORMAT_MULAW
            G711::ALaw => 6,  // WAVE_FORMAT_ALAW
        };
        let mut format = [0u8; 18];
        format[0..2].copy_from_slice(&format_tag.to_le_bytes());
        format[2..4].copy_from_slice(&1u16.to_le_bytes()); // nChannels
        format[4..8].copy_from_slice(&Self::SAMPLE_RATE.to_le_bytes()); // nSamplesPerSec
        format[8..12].copy_from_slice(&Self::SAMPLE_RATE.to_le_bytes()); // nAvgBytesPerSec
        format[12..14].copy_from_slice(&1u16.to_le_bytes()); // nBlockAlign
        format[14..16].copy_from_slice(&8u16.to_le_bytes()); // wBitsPerSample
        // [16..18] cbSize 0: no extra format bytes
        format
    }
}
