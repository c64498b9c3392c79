//! The recorder's media core: a pure, per-participant pipeline (reorder → depacketize → time) that
//! turns RTP packets into frames ready for a muxer. It does no IO, starts no threads and never
//! reads the clock: the webrtc tasks feed it `(now, packet)` and act on the [`Output`]s it returns,
//! so tests drive it with synthetic packets and an injected clock.

mod clock;
#[cfg(test)]
mod differential;
#[cfg(test)]
mod fuzz;
mod h264;
mod interleave;
mod keyframes;
mod participant;
mod passthrough;
mod reorder;
mod track;
mod unwrap;
mod vp8;
mod vp9;

pub use clock::{SenderReport, Timeline};
pub use confab_payload::PayloadError;
pub use h264::H264Depacketizer;
pub use interleave::Interleaver;
pub use keyframes::KeyframePolicy;
pub use participant::{Output, Participant};
pub use reorder::{Released, ReorderBuffer};
pub use track::{Codec, PipelineConfig, TrackEvent, TrackPipeline};
pub use unwrap::{SequenceUnwrapper, TimestampUnwrapper};
pub use vp8::Vp8Depacketizer;
pub use vp9::Vp9Depacketizer;

/// Names one track of a [`Participant`] (or of a [`Timeline`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrackId(usize);

/// One received RTP packet, already parsed from the wire (and decrypted) by the WebRTC stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    pub sequence_number: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
    pub payload_type: u8,
    pub payload: Vec<u8>,
}

/// One complete encoded frame, as a muxer wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub data: FrameData,
    /// Decodable on its own (always true for audio).
    pub keyframe: bool,
    /// RTP timestamp extended across wrap-around (see [`TimestampUnwrapper`]).
    pub rtp_timestamp: u64,
    /// `(width, height)` in pixels, known for video keyframes only.
    pub dimensions: Option<(u16, u16)>,
}

/// A frame's bytes, in the shape its codec has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameData {
    /// A VP8 or VP9 frame, or an Opus or G.711 packet: one buffer.
    Whole(Vec<u8>),
    /// An H.264 access unit: its NAL units, without start codes or lengths, so that the muxer
    /// frames them as its container wants (Matroska: 4-byte lengths) without splitting first.
    NalUnits(Vec<Vec<u8>>),
}

impl FrameData {
    /// The buffer of a frame that is one.
    pub fn whole(&self) -> Option<&[u8]> {
        match self {
            FrameData::Whole(data) => Some(data),
            FrameData::NalUnits(_) => None,
        }
    }

    /// The NAL units of an H.264 access unit.
    pub fn nal_units(&self) -> Option<&[Vec<u8>]> {
        match self {
            FrameData::NalUnits(units) => Some(units),
            FrameData::Whole(_) => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers shared by the tests of the media modules.

    use super::RtpPacket;
    pub use super::h264::tests::{PPS, SPS_640X480, SPS_1280X720, fu_a, idr, non_idr, stap_a};

    /// A small deterministic generator (xorshift64*), so hostile-input tests are reproducible.
    pub struct Rng(pub u64);

    impl Rng {
        pub fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        pub fn bytes(&mut self, max_len: usize) -> Vec<u8> {
            let len = (self.next_u64() % (max_len as u64 + 1)) as usize;
            (0..len).map(|_| self.next_u64() as u8).collect()
        }
    }

    pub fn packet(sequence_number: u16, timestamp: u32, marker: bool, payload: Vec<u8>) -> RtpPacket {
        RtpPacket { sequence_number, timestamp, ssrc: 0x1234, marker, payload_type: 96, payload }
    }
}
