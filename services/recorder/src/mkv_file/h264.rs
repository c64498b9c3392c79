//! H.264 as cameras send it (an access unit's NAL units, SPS and PPS in-band before keyframes)
//! turned into what Matroska's `V_MPEG4/ISO/AVC` wants: NAL units behind 4-byte lengths in the
//! blocks, and an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) built from the SPS
//! and PPS as the track's CodecPrivate.

use h264_reader::nal::sps::{ChromaFormat, SeqParameterSet};
use h264_reader::rbsp::{BitReader, decode_nal};

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;

/// An access unit's NAL units as the helpers below take them: borrowed, empty ones skipped (a
/// NAL unit starts with its header byte).
pub(super) fn non_empty<U: AsRef<[u8]>>(nal_units: &[U]) -> Vec<&[u8]> {
    nal_units.iter().map(AsRef::as_ref).filter(|unit| !unit.is_empty()).collect()
}

fn nal_type(unit: &[u8]) -> u8 {
    unit[0] & 0x1f
}

/// Whether the access unit holds an IDR slice (a picture decodable on its own).
pub(super) fn is_keyframe(units: &[&[u8]]) -> bool {
    units.iter().any(|unit| nal_type(unit) == NAL_IDR)
}

/// The NAL units behind 4-byte big-endian lengths, as Matroska blocks carry them.
pub(super) fn length_prefixed(units: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(units.iter().map(|u| u.len() + 4).sum());
    for unit in units {
        out.extend_from_slice(&(unit.len() as u32).to_be_bytes());
        out.extend_from_slice(unit);
    }
    out
}

/// What the track header needs from the first keyframe's parameter sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DecoderConfig {
    /// The AVCDecoderConfigurationRecord.
    pub avcc: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

impl DecoderConfig {
    /// From the first SPS and PPS of an access unit; `None` if it has neither or the SPS does not
    /// parse.
    pub fn from_units(units: &[&[u8]]) -> Option<Self> {
        let sps = units.iter().find(|u| nal_type(u) == NAL_SPS && u.len() >= 4)?;
        let pps = units.iter().find(|u| nal_type(u) == NAL_PPS)?;
        let rbsp = decode_nal(sps).ok()?;
        let parsed = SeqParameterSet::from_bits(BitReader::new(&*rbsp)).ok()?;
        let (width, height) = parsed.pixel_dimensions().ok()?;
        let mut avcc = vec![
            1,      // configurationVersion
            sps[1], // AVCProfileIndication
            sps[2], // profile_compatibility
            sps[3], // AVCLevelIndication
            0xff,   // 6 reserved bits, lengthSizeMinusOne = 3
            0xe1,   // 3 reserved bits, numOfSequenceParameterSets = 1
        ];
        avcc.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        avcc.extend_from_slice(sps);
        avcc.push(1); // numOfPictureParameterSets
        avcc.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        avcc.extend_from_slice(pps);
        // High profiles add the chroma format and bit depths (ISO/IEC 14496-15 §5.3.3.1.2).
        if matches!(sps[1], 100 | 110 | 122 | 144) {
            let chroma = &parsed.chroma_info;
            let chroma_format_idc = match chroma.chroma_format {
                ChromaFormat::Monochrome => 0,
                ChromaFormat::YUV420 | ChromaFormat::Invalid(_) => 1,
                ChromaFormat::YUV422 => 2,
                ChromaFormat::YUV444 => 3,
            };
            avcc.push(0xfc | chroma_format_idc);
            avcc.push(0xf8 | (chroma.bit_depth_luma_minus8 & 0x07));
            avcc.push(0xf8 | (chroma.bit_depth_chroma_minus8 & 0x07));
            avcc.push(0); // numOfSequenceParameterSetExt
        }
        Some(Self { avcc, width, height })
    }
}
