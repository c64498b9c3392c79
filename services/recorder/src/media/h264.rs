//! Cameras send H.264 over RTP (RFC 6184, packetization-mode 1): one NAL unit per packet, several
//! small ones aggregated (STAP-A), or one large one fragmented (FU-A). The muxer wants whole access
//! units (every NAL unit of one picture, up to the marker bit) as their NAL units, with the keyframe
//! flag and, for keyframes, the picture size, which only the sequence parameter set (SPS) tells.
//! This module reassembles access units, drops any that lost a packet rather than emitting it
//! partial, and keeps the latest SPS and PPS so that a keyframe sent without them (a sender may
//! send them once, or out of band) still decodes on its own in the file.

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{BitReader, decode_nal};

use confab_payload::h264::{FU_A, NAL_IDR, NAL_PPS, NAL_SPS, STAP_A, nal_type};

use super::{Frame, FrameData, PayloadError, RtpPacket};

/// No camera picture comes near this; a sender that never sets the marker bit (or a hostile one)
/// must not make the recorder hold an ever-growing access unit.
const MAX_ACCESS_UNIT: usize = 8 * 1024 * 1024;

/// An access unit being reassembled.
#[derive(Debug)]
struct Partial {
    rtp_timestamp: u64,
    units: Vec<Vec<u8>>,
    /// A NAL unit whose FU-A fragments are still coming.
    fragment: Option<Vec<u8>>,
    size: usize,
    /// A fragment went missing: the access unit is dropped at its end.
    broken: bool,
}

impl Partial {
    fn new(rtp_timestamp: u64) -> Self {
        Self { rtp_timestamp, units: Vec::new(), fragment: None, size: 0, broken: false }
    }

    fn add_unit(&mut self, unit: Vec<u8>) {
        if self.fragment.take().is_some() {
            // A fragmented unit never got its end fragment.
            self.broken = true;
        }
        self.size += unit.len();
        self.units.push(unit);
    }

    /// Takes one RTP payload (a NAL unit, a STAP-A or a FU-A).
    fn add_payload(&mut self, payload: &[u8]) -> Result<(), PayloadError> {
        let header = payload[0];
        if header & 0x80 != 0 {
            return Err(PayloadError::Invalid("H.264 forbidden_zero_bit set"));
        }
        match nal_type(header) {
            1..=23 => self.add_unit(payload.to_vec()),
            STAP_A => {
                let mut rest = &payload[1..];
                if rest.is_empty() {
                    return Err(PayloadError::Truncated);
                }
                while !rest.is_empty() {
                    let [high, low, tail @ ..] = rest else { return Err(PayloadError::Truncated) };
                    let size = usize::from(u16::from_be_bytes([*high, *low]));
                    if size == 0 {
                        return Err(PayloadError::Invalid("empty NAL unit in a STAP-A"));
                    }
                    let unit = tail.get(..size).ok_or(PayloadError::Truncated)?;
                    if nal_type(unit[0]) == 0 || nal_type(unit[0]) > 23 {
                        return Err(PayloadError::Invalid("aggregated H.264 packet inside a STAP-A"));
                    }
                    self.add_unit(unit.to_vec());
                    rest = &tail[size..];
                }
            }
            FU_A => {
                let &[indicator, fu_header, ref body @ ..] = payload else { return Err(PayloadError::Truncated) };
                let (start, end) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0);
                if start && end {
                    return Err(PayloadError::Invalid("FU-A with both start and end bits"));
                }
                if start {
                    if self.fragment.is_some() {
                        self.broken = true;
                    }
                    let mut unit = vec![(indicator & 0xe0) | (fu_header & 0x1f)];
                    unit.extend_from_slice(body);
                    self.fragment = Some(unit);
                } else {
                    match self.fragment.as_mut() {
                        Some(unit) => unit.extend_from_slice(body),
                        None => self.broken = true,
                    }
                }
                self.size += body.len();
                if end && let Some(unit) = self.fragment.take() {
                    self.add_unit(unit);
                }
            }
            _ => return Err(PayloadError::Invalid("unsupported H.264 packetization (not single, STAP-A or FU-A)")),
        }
        if self.size > MAX_ACCESS_UNIT {
            return Err(PayloadError::Invalid("H.264 access unit too large"));
        }
        Ok(())
    }
}

/// The previous packet seen, to tell where access units begin.
#[derive(Debug, Clone, Copy)]
struct Last {
    sequence: u64,
    rtp_timestamp: u64,
    marker: bool,
}

/// Reassembles H.264 access units from packets released in sequence order.
#[derive(Debug, Default)]
pub struct H264Depacketizer {
    partial: Option<Partial>,
    last: Option<Last>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

impl H264Depacketizer {
    /// Takes the next packet (`sequence` and `rtp_timestamp` extended) and returns a frame when
    /// this packet completes an access unit. An access unit missing a packet is dropped silently
    /// (the reorder buffer reports the loss); a malformed payload drops the access unit in
    /// progress and is an error.
    pub fn push(
        &mut self,
        sequence: u64,
        rtp_timestamp: u64,
        packet: &RtpPacket,
    ) -> Result<Option<Frame>, PayloadError> {
        // H.264 payloads mark no start of an access unit: a packet begins one when it directly
        // follows the end of the previous one (its marker, or a different timestamp), or when it
        // is the first packet of all (the camera starts senders at a keyframe).
        let follows = self.last.map(|last| last.sequence + 1 == sequence);
        let begins = match (follows, self.last) {
            (None, _) => true,
            (Some(true), Some(last)) => last.marker || last.rtp_timestamp != rtp_timestamp,
            _ => false,
        };
        self.last = Some(Last { sequence, rtp_timestamp, marker: packet.marker });
        if begins {
            self.partial = Some(Partial::new(rtp_timestamp));
        } else if follows != Some(true) {
            // A gap: whatever was in progress misses a packet, and this one may be mid-unit.
            self.partial = None;
        }
        if !packet.payload.is_empty()
            && let Some(partial) = self.partial.as_mut()
            && let Err(e) = partial.add_payload(&packet.payload)
        {
            self.partial = None;
            return Err(e);
        }
        if !packet.marker {
            return Ok(None);
        }
        match self.partial.take() {
            Some(partial) if !partial.broken && partial.fragment.is_none() && !partial.units.is_empty() => {
                self.access_unit(partial)
            }
            _ => Ok(None),
        }
    }

    /// Forgets the access unit in progress (after a loss or a stream change). Where the next one
    /// begins is still told by the sequence numbers.
    pub fn reset(&mut self) {
        self.partial = None;
    }

    fn access_unit(&mut self, partial: Partial) -> Result<Option<Frame>, PayloadError> {
        let mut has_sps = false;
        let mut has_pps = false;
        let mut idr = false;
        for unit in &partial.units {
            match nal_type(unit[0]) {
                NAL_SPS => {
                    sps_dimensions(unit).ok_or(PayloadError::Invalid("H.264 SPS"))?;
                    self.sps = Some(unit.clone());
                    has_sps = true;
                }
                NAL_PPS => {
                    self.pps = Some(unit.clone());
                    has_pps = true;
                }
                NAL_IDR => idr = true,
                _ => {}
            }
        }
        // An IDR picture decodes on its own only with its parameter sets at hand.
        let keyframe = idr && self.sps.is_some() && self.pps.is_some();
        let mut units = Vec::with_capacity(partial.units.len() + 2);
        if keyframe {
            for (present, unit) in [(has_sps, &self.sps), (has_pps, &self.pps)] {
                if let (false, Some(unit)) = (present, unit) {
                    units.push(unit.clone());
                }
            }
        }
        units.extend(partial.units);
        let dimensions = if keyframe { self.sps.as_deref().and_then(sps_dimensions) } else { None };
        let data = FrameData::NalUnits(units);
        Ok(Some(Frame { data, keyframe, rtp_timestamp: partial.rtp_timestamp, dimensions }))
    }
}

/// `(width, height)` in pixels from an SPS NAL unit (with its header byte); `None` if it does not
/// parse or the size does not fit.
pub fn sps_dimensions(sps: &[u8]) -> Option<(u16, u16)> {
    let rbsp = decode_nal(sps).ok()?;
    let parsed = SeqParameterSet::from_bits(BitReader::new(&*rbsp)).ok()?;
    let (width, height) = parsed.pixel_dimensions().ok()?;
    Some((u16::try_from(width).ok()?, u16::try_from(height).ok()?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::testing::{Rng, packet};

    /// Real parameter sets from libx264 (Constrained Baseline): SPS for 640×480 (level 2.2) and
    /// 1280×720 (level 3.1), and their PPS.
    pub const SPS_640X480: [u8; 24] = [
        0x67, 0x42, 0xc0, 0x16, 0xd9, 0x00, 0xa0, 0x3d, 0xb0, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03,
        0x00, 0x02, 0x0f, 0x16, 0x2e, 0x48,
    ];
    pub const SPS_1280X720: [u8; 25] = [
        0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
        0x03, 0x00, 0x20, 0xf1, 0x83, 0x24, 0x80,
    ];
    pub const PPS: [u8; 5] = [0x68, 0xcb, 0x83, 0xcb, 0x20];

    pub fn idr(len: usize) -> Vec<u8> {
        [vec![0x65, 0x88], vec![0x5a; len]].concat()
    }

    pub fn non_idr(len: usize) -> Vec<u8> {
        [vec![0x41, 0x9a], vec![0x3c; len]].concat()
    }

    pub fn stap_a(units: &[&[u8]]) -> Vec<u8> {
        let mut p = vec![0x78];
        for unit in units {
            p.extend_from_slice(&(unit.len() as u16).to_be_bytes());
            p.extend_from_slice(unit);
        }
        p
    }

    /// `unit` (at least 3 bytes) as two or more FU-A fragments of at most `size` body bytes.
    pub fn fu_a(unit: &[u8], size: usize) -> Vec<Vec<u8>> {
        let body = &unit[1..];
        let chunks: Vec<&[u8]> = body.chunks(size.clamp(1, body.len().div_ceil(2))).collect();
        let last = chunks.len() - 1;
        chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| {
                let start = if i == 0 { 0x80 } else { 0 };
                let end = if i == last { 0x40 } else { 0 };
                [vec![(unit[0] & 0xe0) | FU_A, start | end | (unit[0] & 0x1f)], chunk.to_vec()].concat()
            })
            .collect()
    }

    pub fn nal_units(units: &[&[u8]]) -> FrameData {
        FrameData::NalUnits(units.iter().map(|unit| unit.to_vec()).collect())
    }

    /// Pushes payloads as consecutive packets of one access unit (marker on the last).
    fn push_unit(
        d: &mut H264Depacketizer,
        first_sequence: u64,
        timestamp: u64,
        payloads: Vec<Vec<u8>>,
    ) -> Vec<Result<Option<Frame>, PayloadError>> {
        let last = payloads.len() - 1;
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                let sequence = first_sequence + i as u64;
                d.push(sequence, timestamp, &packet(sequence as u16, timestamp as u32, i == last, payload))
            })
            .collect()
    }

    fn only_frame(results: Vec<Result<Option<Frame>, PayloadError>>) -> Option<Frame> {
        let mut frames: Vec<Frame> = results.into_iter().filter_map(Result::unwrap).collect();
        assert!(frames.len() <= 1);
        frames.pop()
    }

    #[test]
    fn the_test_parameter_sets_are_real() {
        assert_eq!(sps_dimensions(&SPS_640X480), Some((640, 480)));
        assert_eq!(sps_dimensions(&SPS_1280X720), Some((1280, 720)));
        assert_eq!(sps_dimensions(&[0x67, 0x42]), None);
    }

    #[test]
    fn a_keyframe_as_stap_a_then_fu_a_becomes_one_access_unit_of_nal_units_with_its_size() {
        let mut d = H264Depacketizer::default();
        let slice = idr(3000);
        let mut payloads = vec![stap_a(&[&SPS_640X480, &PPS])];
        payloads.extend(fu_a(&slice, 1100));
        assert_eq!(payloads.len(), 4);
        let frame = only_frame(push_unit(&mut d, 10, 9000, payloads)).unwrap();
        assert_eq!(
            frame,
            Frame {
                data: nal_units(&[&SPS_640X480, &PPS, &slice]),
                keyframe: true,
                rtp_timestamp: 9000,
                dimensions: Some((640, 480)),
            }
        );
        let delta = only_frame(push_unit(&mut d, 14, 12000, vec![non_idr(50)])).unwrap();
        assert_eq!((delta.data, delta.keyframe, delta.dimensions), (nal_units(&[&non_idr(50)]), false, None));
    }

    #[test]
    fn a_keyframe_without_parameter_sets_gets_the_last_ones_in_front() {
        let mut d = H264Depacketizer::default();
        only_frame(push_unit(&mut d, 1, 0, vec![stap_a(&[&SPS_1280X720, &PPS]), idr(10)])).unwrap();
        let frame = only_frame(push_unit(&mut d, 3, 3000, vec![idr(20)])).unwrap();
        assert_eq!(frame.data, nal_units(&[&SPS_1280X720, &PPS, &idr(20)]));
        assert_eq!((frame.keyframe, frame.dimensions), (true, Some((1280, 720))));
    }

    #[test]
    fn an_idr_picture_before_any_parameter_set_is_no_keyframe() {
        let mut d = H264Depacketizer::default();
        let frame = only_frame(push_unit(&mut d, 1, 0, vec![idr(10)])).unwrap();
        assert_eq!((frame.keyframe, frame.dimensions), (false, None));
    }

    #[test]
    fn an_access_unit_missing_a_fragment_is_dropped_and_the_next_one_survives() {
        let mut d = H264Depacketizer::default();
        let mut fragments = fu_a(&idr(3000), 1000);
        fragments.remove(0);
        let payloads = [vec![stap_a(&[&SPS_640X480, &PPS])], fragments].concat();
        // The sequence numbers say nothing is missing: the FU-A start bit does.
        assert_eq!(only_frame(push_unit(&mut d, 1, 0, payloads)), None);
        let frame = only_frame(push_unit(&mut d, 5, 3000, fu_a(&non_idr(2000), 900))).unwrap();
        assert_eq!(frame.data, nal_units(&[&non_idr(2000)]));
    }

    #[test]
    fn a_gap_drops_the_unit_in_progress_and_resumes_where_the_next_one_begins() {
        let mut d = H264Depacketizer::default();
        let parts = fu_a(&non_idr(3000), 1000);
        assert_eq!(d.push(1, 0, &packet(1, 0, false, parts[0].clone())), Ok(None));
        // Sequence 2 is lost; 3 ends the unit.
        assert_eq!(d.push(3, 0, &packet(3, 0, true, parts[2].clone())), Ok(None));
        // A unit after the marker is whole again.
        let frame = only_frame(push_unit(&mut d, 4, 3000, vec![non_idr(5)])).unwrap();
        assert_eq!(frame.rtp_timestamp, 3000);
        // Lost marker packet: the timestamp change tells where the next unit begins.
        assert_eq!(d.push(5, 6000, &packet(5, 6000, false, non_idr(6))), Ok(None));
        let frame = only_frame(push_unit(&mut d, 6, 9000, vec![non_idr(7)])).unwrap();
        assert_eq!(frame.data, nal_units(&[&non_idr(7)]));
        // After a gap mid-unit, packets are ignored until a unit begins.
        assert_eq!(d.push(9, 9000, &packet(9, 9000, true, non_idr(8))), Ok(None));
        assert!(d.push(10, 12000, &packet(10, 12000, true, non_idr(9))).unwrap().is_some());
    }

    #[test]
    fn other_packetizations_and_broken_payloads_are_errors_not_frames() {
        let mut d = H264Depacketizer::default();
        let cases: [(&[u8], PayloadError); 7] = [
            (
                &[0x79, 0, 1, 0x41],
                PayloadError::Invalid("unsupported H.264 packetization (not single, STAP-A or FU-A)"),
            ),
            (&[0x7d, 0x85], PayloadError::Invalid("unsupported H.264 packetization (not single, STAP-A or FU-A)")),
            (&[0x60], PayloadError::Invalid("unsupported H.264 packetization (not single, STAP-A or FU-A)")),
            (&[0x7c], PayloadError::Truncated),
            (&[0x7c, 0xc5, 1], PayloadError::Invalid("FU-A with both start and end bits")),
            (&[0x78, 0x00, 0x05, 0x41], PayloadError::Truncated),
            (&[0xe5, 1, 2], PayloadError::Invalid("H.264 forbidden_zero_bit set")),
        ];
        for (i, (payload, error)) in cases.into_iter().enumerate() {
            let sequence = i as u64 + 1;
            assert_eq!(d.push(sequence, sequence, &packet(i as u16, i as u32, true, payload.to_vec())), Err(error));
        }
        let broken_sps = stap_a(&[&[0x67, 0x42], &PPS]);
        assert_eq!(d.push(8, 100, &packet(8, 100, true, broken_sps)), Err(PayloadError::Invalid("H.264 SPS")));
    }

    #[test]
    fn random_and_truncated_payloads_never_panic() {
        let mut rng = Rng(0x5eed_2640_abcd_0006);
        let mut d = H264Depacketizer::default();
        let valid = stap_a(&[&SPS_640X480, &PPS, &idr(30)]);
        for cut in 0..=valid.len() {
            let _ = d.push(cut as u64, 0, &packet(cut as u16, 0, true, valid[..cut].to_vec()));
        }
        for i in 0..20_000u64 {
            let mut payload = rng.bytes(24);
            if let Some(first) = payload.first_mut() {
                // Mostly the packetizations cameras use, so the parsers go deep.
                *first = [0x78, 0x7c, 0x65, 0x41, 0x67, *first][(rng.next_u64() % 6) as usize];
            }
            let marker = rng.next_u64() & 1 == 0;
            let _ = d.push(i, i / 3, &packet(i as u16, (i / 3) as u32, marker, payload));
        }
    }
}
