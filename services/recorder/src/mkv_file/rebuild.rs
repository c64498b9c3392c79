//! Rebuilds a camera file that a crashed recorder left behind (or one whose writing a full disk
//! cut short): it plays up to its last complete cluster but has no Cues, no Segment size and no
//! Duration, so players cannot seek in it. Its frames are read back and written again, without
//! decoding, into a finished file that then takes its place (as `webm_file::rebuild` does for
//! participants' files, whose `rebuild_with` also finds room for it on a full disk).

use std::io;
use std::path::Path;

use matroska_demuxer::{Frame as ReadFrame, MatroskaFile, TrackType};

use super::{CameraFile, G711};
use crate::recording_file::FinishedFile;
use crate::webm_file::{Lenient, rebuild_with};

/// Rebuilds `path` in place. `None` when it holds no keyframe (it is then removed); an error when
/// even its header cannot be read.
pub fn rebuild(path: &Path) -> io::Result<Option<FinishedFile>> {
    rebuild_with(path, remux)
}

/// Writes the frames of the crashed camera file into a finished one at `target`.
fn remux(crashed: Lenient, target: &Path) -> io::Result<Option<FinishedFile>> {
    let unreadable = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("crashed camera file: {what}"));
    let mut crashed = MatroskaFile::open(crashed).map_err(|_| unreadable("no readable header"))?;
    let scale_ns = crashed.info().timestamp_scale().get();
    let (mut video, mut audio) = (None, None);
    for track in crashed.tracks() {
        match (track.track_type(), track.codec_id()) {
            (TrackType::Video, "V_MPEG4/ISO/AVC") => {
                let config = track.codec_private().and_then(ParameterSets::from_avcc);
                video = Some((track.track_number().get(), config.ok_or_else(|| unreadable("no avcC"))?));
            }
            (TrackType::Audio, "A_MS/ACM") => {
                // WAVEFORMATEX: the format tag comes first.
                let codec = match track.codec_private().and_then(|p| p.get(..2)) {
                    Some([7, 0]) => G711::MuLaw,
                    Some([6, 0]) => G711::ALaw,
                    _ => continue,
                };
                audio = Some((track.track_number().get(), codec));
            }
            _ => {}
        }
    }
    let Some((video_track, parameter_sets)) = video else { return Err(unreadable("no H.264 track")) };

    let mut rebuilt = CameraFile::create(target, audio.map(|(_, codec)| codec))?;
    let mut read = ReadFrame::default();
    // A truncated last block ends the reading: what comes before it is all there is.
    while let Ok(true) = crashed.next_frame(&mut read) {
        let timestamp_ns = read.timestamp.saturating_mul(scale_ns);
        if read.track == video_track {
            let keyframe = read.is_keyframe.unwrap_or(false);
            rebuilt.write_video(timestamp_ns, &parameter_sets.nal_units(&read.data, keyframe))?;
        } else if audio.is_some_and(|(track, _)| track == read.track) {
            rebuilt.write_audio(timestamp_ns, &read.data)?;
        }
    }
    rebuilt.finish()
}

/// What the track's AVCDecoderConfigurationRecord holds: the length of the NAL unit lengths in
/// blocks, and the SPS and PPS (which keyframes written by `CameraFile` carry in-band anyway).
struct ParameterSets {
    length_size: usize,
    units: Vec<Vec<u8>>,
}

impl ParameterSets {
    fn from_avcc(avcc: &[u8]) -> Option<Self> {
        let length_size = usize::from(avcc.get(4)? & 0x03) + 1;
        let mut rest = avcc.get(5..)?;
        let mut units = Vec::new();
        for mask in [0x1f, 0xff] {
            let (&count, tail) = rest.split_first()?;
            rest = tail;
            for _ in 0..(count & mask) {
                let size = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
                units.push(rest.get(2..2 + size)?.to_vec());
                rest = &rest[2 + size..];
            }
        }
        Some(Self { length_size, units })
    }

    /// A block's length-prefixed NAL units; a keyframe without its own SPS gets the track's
    /// parameter sets in front.
    fn nal_units<'a>(&'a self, block: &'a [u8], keyframe: bool) -> Vec<&'a [u8]> {
        let mut units = Vec::new();
        let mut rest = block;
        while rest.len() > self.length_size {
            let (length, tail) = rest.split_at(self.length_size);
            let size = length.iter().fold(0usize, |n, b| n << 8 | usize::from(*b));
            let Some(unit) = tail.get(..size) else { break };
            units.push(unit);
            rest = &tail[size..];
        }
        let has_sps = units.iter().any(|unit| unit.first().is_some_and(|b| b & 0x1f == 7));
        let prefix = if keyframe && !has_sps { self.units.iter().map(Vec::as_slice).collect() } else { Vec::new() };
        [prefix, units].concat()
    }
}
