//! The simulcast layers the SFU benchmark's publisher sends, shared by the load tool (`sfu-load`)
//! and the bare relay (`rtp-relay`), which forwards only the top layer as an SFU would to a
//! viewer who asked for it.

/// One layer of the publisher's simulcast: its RTP stream id, SSRC and the IVF file it plays.
pub struct Layer {
    pub rid: &'static str,
    pub ssrc: u32,
    /// The clip's file name in the clip directory (`deploy/local/bench-sfu` encodes them).
    pub file: &'static str,
}

/// Low to high: 320x180 at ~150 kbit/s, 640x360 at ~500 kbit/s, 1280x720 at ~1.5 Mbit/s.
pub const LAYERS: [Layer; 3] = [
    Layer { rid: "q", ssrc: 0x5f00_0001, file: "layer-q-320x180.ivf" },
    Layer { rid: "h", ssrc: 0x5f00_0002, file: "layer-h-640x360.ivf" },
    Layer { rid: "f", ssrc: 0x5f00_0003, file: "layer-f-1280x720.ivf" },
];

/// The layer every subscriber receives: the 720p one.
pub const FORWARDED: &Layer = &LAYERS[2];

/// What a bare-relay subscriber sends the relay to be added to its fan-out.
pub const SUBSCRIBE: &[u8] = b"subscribe";
