//! What a selective forwarding unit decides for each packet of a published video track and each
//! subscriber: which simulcast layer the subscriber gets ([`target_layer`]), when it may switch
//! (only at a keyframe of the new layer, [`DownTrack`]), how often the publisher is asked for
//! one ([`KeyframeThrottle`]), and how forwarded packets are renumbered so that the subscriber
//! sees one continuous stream — one SSRC, sequence numbers without jumps, timestamps that keep
//! time — however often the layer changes ([`Rewriter`]), and what a subscriber's NACK is
//! answered from ([`PacketCache`], one per published layer, mapped back by
//! [`DownTrack::original`]). VP8's own picture numbers are re-based the same way
//! ([`Vp8PictureIds`]).
//!
//! Time and packets in, decisions out: no sockets, no clock, no WebRTC stack. The packet's
//! keyframe flag comes from the codec's payload header ([`Codec::starts_keyframe`]).

mod codec;
mod down_track;
mod keyframe_throttle;
mod layers;
mod packet_cache;
mod rewrite;
#[cfg(test)]
mod tests;
mod vp8_picture_ids;

use std::time::Instant;

pub use codec::Codec;
pub use down_track::{DownTrack, Verdict};
pub use keyframe_throttle::{KEYFRAME_REQUEST_INTERVAL, KeyframeThrottle};
pub use layers::{UPGRADE_HEADROOM, target_layer};
pub use packet_cache::{Cached, MAX_AGE, MAX_PACKET, PacketCache};
pub use rewrite::{Forwarded, Original, Rewriter};
pub use vp8_picture_ids::{Renumbering, Vp8PictureIds};

/// A simulcast layer of a published track, from 0 (the lowest resolution) up.
pub type Layer = u8;

/// What the forwarding core needs of one incoming RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming {
    pub layer: Layer,
    pub sequence_number: u16,
    pub timestamp: u32,
    /// The packet begins a keyframe (its first packet), so a decoder can start from it.
    pub starts_keyframe: bool,
    pub arrived: Instant,
}
