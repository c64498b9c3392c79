//! Just enough EBML (RFC 8794) to write Matroska: elements are built into byte vectors, with the
//! IDs given as their encoded bytes (marker bits included, as the Matroska spec lists them).

/// Matroska element IDs used here (RFC 9559).
pub(super) mod id {
    pub const EBML: u32 = 0x1a45_dfa3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42f7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42f2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42f3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const VOID: u32 = 0xec;

    pub const SEGMENT: u32 = 0x1853_8067;
    pub const SEEK_HEAD: u32 = 0x114d_9b74;
    pub const SEEK: u32 = 0x4dbb;
    pub const SEEK_ID: u32 = 0x53ab;
    pub const SEEK_POSITION: u32 = 0x53ac;

    pub const INFO: u32 = 0x1549_a966;
    pub const TIMESTAMP_SCALE: u32 = 0x2a_d7b1;
    pub const DURATION: u32 = 0x4489;
    pub const MUXING_APP: u32 = 0x4d80;
    pub const WRITING_APP: u32 = 0x5741;

    pub const TRACKS: u32 = 0x1654_ae6b;
    pub const TRACK_ENTRY: u32 = 0xae;
    pub const TRACK_NUMBER: u32 = 0xd7;
    pub const TRACK_UID: u32 = 0x73c5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const FLAG_LACING: u32 = 0x9c;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63a2;
    pub const VIDEO: u32 = 0xe0;
    pub const PIXEL_WIDTH: u32 = 0xb0;
    pub const PIXEL_HEIGHT: u32 = 0xba;
    pub const AUDIO: u32 = 0xe1;
    pub const SAMPLING_FREQUENCY: u32 = 0xb5;
    pub const CHANNELS: u32 = 0x9f;
    pub const BIT_DEPTH: u32 = 0x6264;

    pub const CLUSTER: u32 = 0x1f43_b675;
    pub const TIMESTAMP: u32 = 0xe7;
    pub const SIMPLE_BLOCK: u32 = 0xa3;

    pub const CUES: u32 = 0x1c53_bb6b;
    pub const CUE_POINT: u32 = 0xbb;
    pub const CUE_TIME: u32 = 0xb3;
    pub const CUE_TRACK_POSITIONS: u32 = 0xb7;
    pub const CUE_TRACK: u32 = 0xf7;
    pub const CUE_CLUSTER_POSITION: u32 = 0xf1;
}

/// The "unknown" size of a live Segment: 8 bytes, all value bits set.
pub(super) const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

/// The bytes of an element ID (its encoded form, leading zero bytes dropped).
pub(super) fn id_bytes(id: u32) -> Vec<u8> {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    bytes[skip..].to_vec()
}

/// A data size in the shortest variable-length form (all-ones values are reserved for "unknown").
pub(super) fn size(value: u64) -> Vec<u8> {
    let length = (1..=8).find(|n| value < (1u64 << (7 * n)) - 1).expect("an EBML size below 2^56 - 1");
    sized(value, length)
}

/// A data size written in exactly `length` bytes, so that it can be patched in place later.
pub(super) fn sized(value: u64, length: usize) -> Vec<u8> {
    let marked = value | (1u64 << (7 * length));
    marked.to_be_bytes()[8 - length..].to_vec()
}

/// A whole element: ID, size, payload.
pub(super) fn element(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = id_bytes(id);
    out.extend(size(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

/// A master element made of the concatenated `children`.
pub(super) fn master(id: u32, children: &[Vec<u8>]) -> Vec<u8> {
    element(id, &children.concat())
}

/// An unsigned integer element in its shortest big-endian form (at least one byte).
pub(super) fn uint(id: u32, value: u64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    element(id, &bytes[skip..])
}

/// An unsigned integer element of exactly 8 bytes, for positions patched after the fact.
pub(super) fn uint8(id: u32, value: u64) -> Vec<u8> {
    element(id, &value.to_be_bytes())
}

/// A 64-bit float element.
pub(super) fn float(id: u32, value: f64) -> Vec<u8> {
    element(id, &value.to_be_bytes())
}

pub(super) fn string(id: u32, value: &str) -> Vec<u8> {
    element(id, value.as_bytes())
}

/// A Void element of exactly `total` bytes (at least 2), reserving room to be overwritten later.
pub(super) fn void(total: usize) -> Vec<u8> {
    assert!(total >= 2, "a Void element takes at least 2 bytes");
    // A one-byte size fits payloads up to 126 bytes; bigger reservations use an 8-byte size.
    let (size_length, payload) = if total - 2 <= 126 { (1, total - 2) } else { (8, total - 9) };
    let mut out = id_bytes(id::VOID);
    out.extend(sized(payload as u64, size_length));
    out.resize(total, 0);
    out
}
