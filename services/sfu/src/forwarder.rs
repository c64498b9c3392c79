//! The media of one room's published tracks, routed: each incoming RTP packet is found by its SSRC
//! (a track and, for video, a simulcast layer), kept for retransmission, and handed to every
//! subscriber's copy of the track, which forwards it renumbered or drops it
//! ([`crate::forward::DownTrack`]); subscribers waiting for a layer's keyframe make one rate-limited
//! request to the publisher; a subscriber's NACK is answered from the cache. Pure: packets, time
//! and subscriber feedback in, [`Action`]s out into a buffer the caller reuses, so a forwarded
//! packet allocates nothing here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::forward::{
    Cached, Codec, DownTrack, Incoming, KeyframeThrottle, Layer, PacketCache, Renumbering, Verdict, Vp8PictureIds,
    target_layer,
};

/// The most simulcast layers a track may have (browsers send up to three).
pub const MAX_LAYERS: usize = 4;
/// Packets kept per published stream for retransmission.
const CACHE_PACKETS: usize = 512;
/// Over how long a layer's bitrate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// A published track, by its index in the forwarder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrackId(pub usize);

/// One subscriber's copy of one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DownId {
    pub track: TrackId,
    pub index: usize,
}

/// What the forwarder asks of the I/O around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the packet just given (its payload, for VP8 after [`Forwarder::rewrite_payload`]) to
    /// this copy's subscriber, on the copy's own SSRC, with these numbers.
    Forward { down: DownId, sequence_number: u16, timestamp: u32, marker: bool, starts_segment: bool },
    /// Send again, to this copy's subscriber, the cached packet of `layer` numbered `original` there
    /// (the caller reads its payload from [`Forwarder::cached`]), with these numbers.
    Resend { down: DownId, layer: Layer, original: u16, sequence_number: u16, timestamp: u32, marker: bool },
    /// Ask the publisher for a keyframe (PLI) on this SSRC.
    RequestKeyframe { track: TrackId, ssrc: u32 },
}

/// An RTP packet from a publisher, as the WebRTC stack hands it over (decrypted).
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// The publisher's connection, as the I/O numbers them: SSRCs are only unique within one.
    pub connection: u64,
    pub ssrc: u32,
    pub sequence_number: u16,
    pub timestamp: u32,
    pub marker: bool,
    /// Its payload, where the codec's header says whether a keyframe starts; kept for
    /// retransmission.
    pub payload: &'a [u8],
}

/// What a copy of a video track costs its subscriber ([`Forwarder::costs`]), bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub now: u64,
    pub upgrade: Option<u64>,
}

/// Why a track could not be published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishError {
    /// No layer, more than [`MAX_LAYERS`], or a layer (or track) that does not exist.
    Layers,
    /// The connection already sends that SSRC in another stream, or the layer has another SSRC.
    SsrcInUse,
}

/// What the forwarder dropped, for the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drops {
    pub unknown_ssrc: u64,
    pub oversized: u64,
    pub nack_misses: u64,
}

/// Copies moved from one simulcast layer to another (at the new layer's keyframe), for the
/// metrics: a copy's first layer and its return from a pause are not switches.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LayerSwitches {
    pub up: u64,
    pub down: u64,
}

/// A published track: audio (one stream) or video (one stream per simulcast layer).
struct Track {
    connection: u64,
    codec: Option<Codec>,
    clock_rate: u32,
    layers: Vec<Stream>,
    throttle: KeyframeThrottle,
    downs: Vec<Option<Down>>,
}

struct Stream {
    /// `None` until the layer's SSRC is known.
    ssrc: Option<u32>,
    /// The picture size of its last keyframe, where the codec says.
    size: Option<(u16, u16)>,
    /// Its sender's clock: the NTP time and RTP timestamp of its latest sender report.
    clock: Option<(u64, u32)>,
    cache: PacketCache,
    rate: RateMeter,
}

struct Down {
    track: DownTrack,
    vp8: Vp8PictureIds,
    /// The highest layer the subscriber asked for (`None`: paused) and its bandwidth estimate.
    wants: Option<Layer>,
    estimate: u64,
    /// The size of the tile it shows the track in, if it said.
    tile: Option<(u16, u16)>,
}

#[derive(Default)]
pub struct Forwarder {
    tracks: Vec<Option<Track>>,
    by_ssrc: HashMap<(u64, u32), (TrackId, Layer)>,
    drops: Drops,
    switches: LayerSwitches,
}

impl Forwarder {
    /// A track `connection` publishes: `codec` for video (`None` for audio), with `layers`
    /// streams (one for audio or a single-layer video; one per simulcast layer, from the lowest).
    /// Each stream's SSRC is bound with [`Forwarder::bind`] as it becomes known: browsers name
    /// simulcast layers by rid, and the SSRC comes with the layer's first packet.
    pub fn publish(
        &mut self,
        connection: u64,
        codec: Option<Codec>,
        clock_rate: u32,
        layers: usize,
    ) -> Result<TrackId, PublishError> {
        if layers == 0 || layers > MAX_LAYERS {
            return Err(PublishError::Layers);
        }
        let id = TrackId(self.tracks.iter().position(Option::is_none).unwrap_or(self.tracks.len()));
        let layers = (0..layers)
            .map(|_| Stream {
                ssrc: None,
                size: None,
                clock: None,
                cache: PacketCache::new(CACHE_PACKETS),
                rate: RateMeter::default(),
            })
            .collect();
        let throttle = KeyframeThrottle::default();
        let track = Track { connection, codec, clock_rate, layers, throttle, downs: Vec::new() };
        match self.tracks.get_mut(id.0) {
            Some(slot) => *slot = Some(track),
            None => self.tracks.push(Some(track)),
        }
        Ok(id)
    }

    /// `track`'s `layer` arrives on `ssrc`.
    pub fn bind(&mut self, id: TrackId, layer: Layer, ssrc: u32) -> Result<(), PublishError> {
        let track = self.tracks.get_mut(id.0).and_then(Option::as_mut).ok_or(PublishError::Layers)?;
        let stream = track.layers.get_mut(usize::from(layer)).ok_or(PublishError::Layers)?;
        if stream.ssrc == Some(ssrc) {
            return Ok(());
        }
        if stream.ssrc.is_some() || self.by_ssrc.contains_key(&(track.connection, ssrc)) {
            return Err(PublishError::SsrcInUse);
        }
        stream.ssrc = Some(ssrc);
        self.by_ssrc.insert((track.connection, ssrc), (id, layer));
        Ok(())
    }

    /// The track ended: its streams and every subscriber's copy go.
    pub fn unpublish(&mut self, id: TrackId) {
        if let Some(track) = self.tracks.get_mut(id.0).and_then(Option::take) {
            for ssrc in track.layers.iter().filter_map(|stream| stream.ssrc) {
                self.by_ssrc.remove(&(track.connection, ssrc));
            }
        }
    }

    /// A subscriber's copy of `track`, paused until [`Forwarder::request`] asks for a layer.
    pub fn subscribe(&mut self, id: TrackId) -> Option<DownId> {
        let track = self.tracks.get_mut(id.0)?.as_mut()?;
        let down = Down {
            track: DownTrack::new(track.clock_rate),
            vp8: Vp8PictureIds::default(),
            wants: None,
            estimate: 0,
            tile: None,
        };
        let index = track.downs.iter().position(Option::is_none).unwrap_or(track.downs.len());
        match track.downs.get_mut(index) {
            Some(slot) => *slot = Some(down),
            None => track.downs.push(Some(down)),
        }
        Some(DownId { track: id, index })
    }

    pub fn unsubscribe(&mut self, down: DownId) {
        if let Some(slot) =
            self.tracks.get_mut(down.track.0).and_then(Option::as_mut).and_then(|t| t.downs.get_mut(down.index))
        {
            *slot = None;
        }
    }

    /// What the subscriber wants of its copy: the highest layer (`None` pauses; audio has layer
    /// 0 only).
    pub fn request(&mut self, down: DownId, wants: Option<Layer>, now: Instant) {
        if let Some(copy) = self.down_mut(down) {
            copy.wants = wants;
        }
        self.retarget(down.track, now);
    }

    /// The subscriber's bandwidth for its copy, bits per second (0 until known: the lowest layer).
    pub fn estimate(&mut self, down: DownId, estimate: u64, now: Instant) {
        match self.down_mut(down) {
            Some(copy) if copy.estimate != estimate => copy.estimate = estimate,
            _ => return,
        }
        self.retarget(down.track, now);
    }

    /// The size of the tile `down`'s subscriber shows the track in (`None`: any size): it gets
    /// the smallest layer that covers the tile, so that a picture is scaled down, never up.
    pub fn fit(&mut self, down: DownId, tile: Option<(u16, u16)>, now: Instant) {
        if let Some(copy) = self.down_mut(down) {
            copy.tile = tile;
        }
        self.retarget(down.track, now);
    }

    /// What `down`'s video costs its subscriber now, and what one layer up would cost (with the
    /// headroom an upgrade needs), bits per second; `None` for the second when the copy is at the
    /// highest layer it may have. `None` for audio, paused or unknown copies.
    pub fn costs(&self, down: DownId, now: Instant) -> Option<Cost> {
        let track = self.track(down.track)?;
        track.codec?;
        let copy = track.downs.get(down.index)?.as_ref()?;
        let wants = copy.wants?;
        let highest = copy.tile.map_or(wants, |tile| wants.min(layer_covering(&track.layers, tile)));
        let rate = |layer: Layer| track.layers.get(usize::from(layer))?.rate.bits_per_second(now);
        let current = copy.track.current().or(copy.track.awaits_keyframe()).unwrap_or(0);
        let next = (current + 1..=highest).find_map(|layer| rate(layer).filter(|rate| *rate > 0));
        Some(Cost {
            now: rate(current).unwrap_or(0),
            upgrade: next.map(|rate| (rate as f64 * crate::forward::UPGRADE_HEADROOM) as u64),
        })
    }

    /// A packet from a publisher. `actions` is cleared and filled.
    pub fn on_packet(&mut self, packet: &Packet, now: Instant, actions: &mut Vec<Action>) {
        actions.clear();
        let Packet { connection, ssrc, sequence_number, timestamp, marker, payload } = *packet;
        let Some(&(id, layer)) = self.by_ssrc.get(&(connection, ssrc)) else {
            self.drops.unknown_ssrc += 1;
            return;
        };
        let Some(track) = self.tracks.get_mut(id.0).and_then(Option::as_mut) else { return };
        let stream = &mut track.layers[usize::from(layer)];
        if !stream.cache.keep(sequence_number, Cached { timestamp, marker, payload }, now) {
            self.drops.oversized += 1;
            return;
        }
        // A layer that starts (or stops) sending, or a new rate, may move subscribers first.
        if stream.rate.add(payload.len(), now) {
            self.retarget(id, now);
        }
        let Some(track) = self.tracks.get_mut(id.0).and_then(Option::as_mut) else { return };
        let starts_keyframe = track.codec.is_none_or(|codec| codec.starts_keyframe(payload));
        if let Some(size) = track.codec.filter(|_| starts_keyframe).and_then(|codec| codec.keyframe_size(payload))
            && track.layers[usize::from(layer)].size.replace(size) != Some(size)
        {
            self.retarget(id, now);
        }
        let Some(track) = self.tracks.get_mut(id.0).and_then(Option::as_mut) else { return };
        let incoming = Incoming { layer, sequence_number, timestamp, starts_keyframe, arrived: now };
        let video = track.codec.is_some();
        // One pass over the copies: forward, and ask for the keyframe a copy still waits for.
        for (index, copy) in track.downs.iter_mut().enumerate() {
            let Some(copy) = copy else { continue };
            let before = copy.track.current();
            let verdict = copy.track.on_packet(&incoming);
            if let (Some(before), Some(after)) = (before, copy.track.current())
                && before != after
            {
                let switches = &mut self.switches;
                *if after > before { &mut switches.up } else { &mut switches.down } += 1;
            }
            if let Verdict::Forward(f) = verdict {
                let down = DownId { track: id, index };
                let (sequence_number, timestamp, starts_segment) = (f.sequence_number, f.timestamp, f.starts_segment);
                actions.push(Action::Forward { down, sequence_number, timestamp, marker, starts_segment });
            }
            if video
                && let Some(layer) = copy.track.awaits_keyframe()
                && track.throttle.ask(layer, now)
                && let Some(ssrc) = track.layers.get(usize::from(layer)).and_then(|stream| stream.ssrc)
            {
                actions.push(Action::RequestKeyframe { track: id, ssrc });
            }
        }
    }

    /// `down`'s subscriber asked for a keyframe (PLI or FIR: it cannot decode): the publisher is
    /// asked for one on the layer the copy receives, at the throttle's pace.
    pub fn on_keyframe_request(&mut self, down: DownId, now: Instant) -> Option<Action> {
        let track = self.tracks.get_mut(down.track.0)?.as_mut()?;
        track.codec?;
        let copy = track.downs.get(down.index)?.as_ref()?;
        let layer = copy.track.current().or(copy.track.awaits_keyframe())?;
        let ssrc = track.layers.get(usize::from(layer))?.ssrc?;
        track.throttle.ask(layer, now).then_some(Action::RequestKeyframe { track: down.track, ssrc })
    }

    /// A publisher's sender report for its stream `ssrc`: what its RTP time `rtp` is in its
    /// wallclock `ntp` (RFC 3550 §6.4.1).
    pub fn on_sender_report(&mut self, connection: u64, ssrc: u32, ntp: u64, rtp: u32) {
        let Some(&(id, layer)) = self.by_ssrc.get(&(connection, ssrc)) else { return };
        if let Some(stream) =
            self.tracks.get_mut(id.0).and_then(Option::as_mut).and_then(|t| t.layers.get_mut(usize::from(layer)))
        {
            stream.clock = Some((ntp, rtp));
        }
    }

    /// What `down`'s subscriber should be told its stream's clock is: the publisher's latest
    /// sender report for the layer it receives, in its own timestamps; `None` before one came or
    /// while nothing is forwarded. Audio and video of one publisher share its wallclock, so the
    /// subscriber keeps them in sync.
    pub fn sender_report(&self, down: DownId) -> Option<(u64, u32)> {
        let track = self.track(down.track)?;
        let copy = track.downs.get(down.index)?.as_ref()?;
        let layer = copy.track.current()?;
        let (ntp, rtp) = track.layers.get(usize::from(layer))?.clock?;
        Some((ntp, copy.track.timestamp_of(layer, rtp)?))
    }

    /// The codec's own numbers `down`'s subscriber needs in a forwarded packet's payload (VP8's
    /// PictureID), when they differ from the packet's; `None` for other codecs, and for a copy
    /// that needs none (the payload is then shared, not copied).
    pub fn renumber_payload(&mut self, down: DownId, payload: &[u8], starts_segment: bool) -> Option<Renumbering> {
        let is_vp8 = self.track(down.track).is_some_and(|t| t.codec == Some(Codec::Vp8));
        self.down_mut(down).filter(|_| is_vp8)?.vp8.renumber(payload, starts_segment)
    }

    /// `down`'s subscriber lost the packets it numbered `lost` (a NACK): each still in the cache
    /// is sent again with the numbers it was sent with. `actions` is cleared and filled.
    pub fn on_nack(&mut self, down: DownId, lost: &[u16], now: Instant, actions: &mut Vec<Action>) {
        actions.clear();
        let Some(track) = self.tracks.get(down.track.0).and_then(Option::as_ref) else { return };
        let Some(Some(copy)) = track.downs.get(down.index) else { return };
        for &sequence_number in lost {
            let found = copy.track.original(sequence_number).and_then(|original| {
                let stream = track.layers.get(usize::from(original.layer))?;
                Some((original, stream.cache.get(original.sequence_number, now)?))
            });
            match found {
                Some((original, cached)) => actions.push(Action::Resend {
                    down,
                    layer: original.layer,
                    original: original.sequence_number,
                    sequence_number,
                    timestamp: cached.timestamp.wrapping_add(original.timestamp_offset),
                    marker: cached.marker,
                }),
                None => self.drops.nack_misses += 1,
            }
        }
    }

    /// The payload of a cached packet of `track`'s `layer`, for [`Action::Resend`].
    pub fn cached(&self, track: TrackId, layer: Layer, original: u16, now: Instant) -> Option<&[u8]> {
        Some(self.track(track)?.layers.get(usize::from(layer))?.cache.get(original, now)?.payload)
    }

    pub fn drops(&self) -> Drops {
        self.drops
    }

    pub fn layer_switches(&self) -> LayerSwitches {
        self.switches
    }

    fn track(&self, id: TrackId) -> Option<&Track> {
        self.tracks.get(id.0)?.as_ref()
    }

    fn down_mut(&mut self, down: DownId) -> Option<&mut Down> {
        self.tracks.get_mut(down.track.0)?.as_mut()?.downs.get_mut(down.index)?.as_mut()
    }

    /// Each copy's target layer, from the layers' rates, its estimate and what it asked for.
    fn retarget(&mut self, id: TrackId, now: Instant) {
        let Some(track) = self.tracks.get_mut(id.0).and_then(Option::as_mut) else { return };
        let mut rates = [None; MAX_LAYERS];
        for (rate, stream) in rates.iter_mut().zip(&track.layers) {
            *rate = stream.rate.bits_per_second(now);
        }
        let rates = &rates[..track.layers.len()];
        for copy in track.downs.iter_mut().flatten() {
            let target = if track.codec.is_none() {
                copy.wants.map(|_| 0)
            } else {
                let covering = copy.tile.map(|tile| layer_covering(&track.layers, tile));
                let wants = copy.wants.map(|wants| covering.map_or(wants, |covering| wants.min(covering)));
                target_layer(rates, copy.estimate, wants, copy.track.current())
            };
            copy.track.set_target(target);
        }
    }
}

/// The smallest layer whose pictures cover `tile` (width and height); the top layer when none
/// does. A layer whose size is not known yet covers nothing.
fn layer_covering(layers: &[Stream], (width, height): (u16, u16)) -> Layer {
    let covers = |stream: &Stream| stream.size.is_some_and(|(w, h)| w >= width && h >= height);
    let top = layers.len().saturating_sub(1);
    layers.iter().position(covers).unwrap_or(top) as Layer
}

/// A stream's bitrate over its last whole window (0 until one has passed), or `None` while the
/// publisher does not send it (nothing for two windows: browsers turn layers off).
#[derive(Default)]
struct RateMeter {
    window_start: Option<Instant>,
    bytes: u64,
    rate: u64,
    last_packet: Option<Instant>,
}

impl RateMeter {
    /// Counts a packet; whether what [`RateMeter::bits_per_second`] says changed.
    fn add(&mut self, bytes: usize, now: Instant) -> bool {
        let resumed = self.last_packet.is_none_or(|last| now.saturating_duration_since(last) >= 2 * RATE_WINDOW);
        self.last_packet = Some(now);
        if resumed {
            *self = Self { window_start: Some(now), bytes: bytes as u64, rate: 0, last_packet: Some(now) };
            return true;
        }
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        let mut changed = false;
        if elapsed >= RATE_WINDOW {
            let rate = self.bytes * 8 * 1000 / elapsed.as_millis().max(1) as u64;
            changed = rate != self.rate;
            (self.rate, self.window_start, self.bytes) = (rate, Some(now), 0);
        }
        self.bytes += bytes as u64;
        changed
    }

    fn bits_per_second(&self, now: Instant) -> Option<u64> {
        let last = self.last_packet?;
        (now.saturating_duration_since(last) < 2 * RATE_WINDOW).then_some(self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOW: u32 = 0x100;
    const HIGH: u32 = 0x200;
    const MID: u32 = 0x150;
    const MIC: u32 = 0x300;
    const PUBLISHER: u64 = 1;

    /// A VP8 packet's payload: descriptor with a 15-bit PictureID, then a frame tag.
    fn vp8(picture_id: u16, keyframe: bool, len: usize) -> Vec<u8> {
        let [high, low] = (0x8000 | picture_id).to_be_bytes();
        let mut payload = vec![0x90, 0x80, high, low, if keyframe { 0x50 } else { 0x51 }];
        payload.resize(len, 0);
        payload
    }

    /// A track whose layers' SSRCs are known when it is published.
    fn publish(
        forwarder: &mut Forwarder,
        connection: u64,
        codec: Option<Codec>,
        ssrcs: &[u32],
    ) -> Result<TrackId, PublishError> {
        let clock_rate = if codec.is_some() { 90_000 } else { 48_000 };
        let track = forwarder.publish(connection, codec, clock_rate, ssrcs.len())?;
        for (layer, &ssrc) in ssrcs.iter().enumerate() {
            forwarder.bind(track, layer as Layer, ssrc)?;
        }
        Ok(track)
    }

    /// A VP8 keyframe's first packet with its picture size.
    fn vp8_keyframe(picture_id: u16, width: u16, height: u16) -> Vec<u8> {
        let mut payload = vp8(picture_id, true, 5);
        payload.truncate(4);
        payload.extend_from_slice(&[0x50, 0x00, 0x00, 0x9d, 0x01, 0x2a]);
        payload.extend_from_slice(&width.to_le_bytes());
        payload.extend_from_slice(&height.to_le_bytes());
        payload.resize(100, 0);
        payload
    }

    fn rtp(ssrc: u32, sequence_number: u16, timestamp: u32, bytes: &[u8]) -> Packet<'_> {
        Packet { connection: PUBLISHER, ssrc, sequence_number, timestamp, marker: false, payload: bytes }
    }

    fn forwarded(actions: &[Action]) -> Vec<(DownId, u16)> {
        actions
            .iter()
            .filter_map(|action| match action {
                Action::Forward { down, sequence_number, .. } => Some((*down, *sequence_number)),
                _ => None,
            })
            .collect()
    }

    fn keyframe_requests(actions: &[Action]) -> Vec<u32> {
        actions
            .iter()
            .filter_map(|action| match action {
                Action::RequestKeyframe { ssrc, .. } => Some(*ssrc),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn audio_goes_to_every_subscriber_that_listens_and_an_unknown_ssrc_is_dropped() {
        let t0 = Instant::now();
        let mut forwarder = Forwarder::default();
        let mic = publish(&mut forwarder, PUBLISHER, None, &[MIC]).unwrap();
        let (ann, bob) = (forwarder.subscribe(mic).unwrap(), forwarder.subscribe(mic).unwrap());
        forwarder.request(ann, Some(0), t0);
        let mut actions = Vec::new();
        forwarder.on_packet(&rtp(MIC, 7, 960, &[1, 2]), t0, &mut actions);
        assert_eq!(forwarded(&actions), [(ann, 7)], "Bob has not asked for it");
        forwarder.request(bob, Some(0), t0);
        forwarder.on_packet(&rtp(MIC, 8, 1920, &[1, 2]), t0, &mut actions);
        assert_eq!(forwarded(&actions), [(ann, 8), (bob, 8)]);
        forwarder.on_packet(&rtp(0xdead, 1, 1, &[0]), t0, &mut actions);
        assert_eq!((actions.len(), forwarder.drops().unknown_ssrc), (0, 1));
        let from_another_connection = Packet { connection: 2, ..rtp(MIC, 9, 2880, &[1]) };
        forwarder.on_packet(&from_another_connection, t0, &mut actions);
        assert_eq!((actions.len(), forwarder.drops().unknown_ssrc), (0, 2), "the same SSRC, not that publisher's");
        forwarder.unpublish(mic);
        forwarder.on_packet(&rtp(MIC, 9, 2880, &[1]), t0, &mut actions);
        assert_eq!(forwarder.drops().unknown_ssrc, 3, "its SSRC is gone with it");
    }

    #[test]
    fn a_track_needs_one_to_four_streams_each_on_an_ssrc_of_its_own() {
        let mut forwarder = Forwarder::default();
        assert_eq!(forwarder.publish(PUBLISHER, None, 48_000, 0), Err(PublishError::Layers));
        assert_eq!(forwarder.publish(PUBLISHER, Some(Codec::Vp8), 90_000, 5), Err(PublishError::Layers));
        let camera = forwarder.publish(PUBLISHER, Some(Codec::Vp8), 90_000, 2).unwrap();
        assert_eq!(forwarder.bind(camera, 2, LOW), Err(PublishError::Layers), "no third layer");
        assert_eq!(forwarder.bind(camera, 1, HIGH), Ok(()), "the high layer may come first");
        assert_eq!(forwarder.bind(camera, 1, HIGH), Ok(()), "again: nothing changes");
        assert_eq!(forwarder.bind(camera, 1, LOW), Err(PublishError::SsrcInUse), "the layer has its SSRC");
        assert_eq!(forwarder.bind(camera, 0, HIGH), Err(PublishError::SsrcInUse), "the other layer's");
        assert_eq!(publish(&mut forwarder, PUBLISHER, None, &[MIC]), Ok(TrackId(1)));
        assert_eq!(publish(&mut forwarder, PUBLISHER, None, &[MIC]), Err(PublishError::SsrcInUse));
        assert_eq!(publish(&mut forwarder, 2, None, &[MIC]), Ok(TrackId(3)), "another connection's SSRC");
        forwarder.unpublish(camera);
        assert_eq!(forwarder.bind(camera, 0, LOW), Err(PublishError::Layers), "the track is gone");
    }

    #[test]
    fn a_subscriber_waits_for_its_layers_keyframe_and_asks_for_one_at_a_throttled_pace() {
        let t0 = Instant::now();
        let mut forwarder = Forwarder::default();
        let camera = publish(&mut forwarder, PUBLISHER, Some(Codec::Vp8), &[LOW, HIGH]).unwrap();
        let viewer = forwarder.subscribe(camera).unwrap();
        forwarder.request(viewer, Some(1), t0);
        forwarder.estimate(viewer, 10_000_000, t0);
        let mut actions = Vec::new();
        // Both layers send deltas for 700 ms: nothing to forward. The low layer is heard first,
        // so it is asked once; then the top layer, again after 500 ms, not every packet.
        let mut requests = Vec::new();
        for n in 0..70u16 {
            let at = t0 + Duration::from_millis(u64::from(n) * 10);
            for ssrc in [LOW, HIGH] {
                forwarder.on_packet(&rtp(ssrc, n, 0, &vp8(n, false, 100)), at, &mut actions);
                assert_eq!(forwarded(&actions), []);
                requests.extend(keyframe_requests(&actions));
            }
        }
        assert_eq!(requests, [LOW, HIGH, HIGH]);
        let keyframe = vp8(70, true, 100);
        forwarder.on_packet(&rtp(HIGH, 70, 0, &keyframe), t0 + Duration::from_millis(700), &mut actions);
        assert_eq!(forwarded(&actions), [(viewer, 70)]);
    }

    #[test]
    fn each_subscriber_gets_the_layer_its_estimate_carries() {
        let t0 = Instant::now();
        let mut forwarder = Forwarder::default();
        let camera = publish(&mut forwarder, PUBLISHER, Some(Codec::Vp8), &[LOW, HIGH]).unwrap();
        let (wide, narrow) = (forwarder.subscribe(camera).unwrap(), forwarder.subscribe(camera).unwrap());
        forwarder.request(wide, Some(1), t0);
        forwarder.estimate(wide, 10_000_000, t0);
        forwarder.request(narrow, Some(1), t0);
        forwarder.estimate(narrow, 300_000, t0);
        let mut actions = Vec::new();
        let mut got: HashMap<(DownId, u32), usize> = HashMap::new();
        // 2 s at 100 packets a second per layer: ~80 kbit/s low, ~960 kbit/s high; a keyframe
        // on each layer every 500 ms.
        for n in 0..200u16 {
            let at = t0 + Duration::from_millis(u64::from(n) * 10);
            for (ssrc, len) in [(LOW, 100), (HIGH, 1200)] {
                let payload = vp8(n, n % 50 == 0, len);
                forwarder.on_packet(&rtp(ssrc, n, u32::from(n) * 900, &payload), at, &mut actions);
                if n >= 150 {
                    for (down, _) in forwarded(&actions) {
                        *got.entry((down, ssrc)).or_default() += 1;
                    }
                }
            }
        }
        // In the last half second, after the rates were measured and a keyframe came on each layer.
        assert_eq!((got.get(&(wide, HIGH)), got.get(&(wide, LOW))), (Some(&50), None), "high for the wide estimate");
        assert_eq!((got.get(&(narrow, HIGH)), got.get(&(narrow, LOW))), (None, Some(&50)), "low for 300 kbit/s");
        // Both start on the low layer (its keyframe comes first), both go up when the high layer
        // starts (no rates yet), and the narrow one comes back down once they are measured.
        assert_eq!(forwarder.layer_switches(), LayerSwitches { up: 2, down: 1 });
    }

    #[test]
    fn a_subscribers_keyframe_request_reaches_the_publisher_of_its_layer_at_the_throttles_pace() {
        let t0 = Instant::now();
        let mut forwarder = Forwarder::default();
        let camera = publish(&mut forwarder, PUBLISHER, Some(Codec::Vp8), &[LOW, HIGH]).unwrap();
        let mic = publish(&mut forwarder, PUBLISHER, None, &[MIC]).unwrap();
        let (viewer, listener) = (forwarder.subscribe(camera).unwrap(), forwarder.subscribe(mic).unwrap());
        forwarder.request(viewer, Some(0), t0);
        forwarder.estimate(viewer, 10_000_000, t0);
        forwarder.request(listener, Some(0), t0);
        let mut actions = Vec::new();
        forwarder.on_packet(&rtp(LOW, 1, 0, &vp8(1, true, 100)), t0, &mut actions);
        let later = t0 + Duration::from_secs(1);
        let asked = Action::RequestKeyframe { track: camera, ssrc: LOW };
        assert_eq!(forwarder.on_keyframe_request(viewer, later), Some(asked));
        assert_eq!(forwarder.on_keyframe_request(viewer, later), None, "not twice within 500 ms");
        assert_eq!(forwarder.on_keyframe_request(viewer, later + Duration::from_millis(500)), Some(asked));
        assert_eq!(forwarder.on_keyframe_request(listener, later), None, "audio has no keyframes");
    }

    #[test]
    fn a_subscriber_gets_the_smallest_layer_that_covers_its_tile() {
        let t0 = Instant::now();
        let mut forwarder = Forwarder::default();
        let camera = publish(&mut forwarder, PUBLISHER, Some(Codec::Vp8), &[LOW, MID, HIGH]).unwrap();
        let viewer = forwarder.subscribe(camera).unwrap();
        forwarder.request(viewer, Some(2), t0);
        forwarder.estimate(viewer, 10_000_000, t0);
        forwarder.fit(viewer, Some((400, 200)), t0);
        // Each layer's packet `n`, a keyframe or not: which layers' packets were forwarded.
        let send = |forwarder: &mut Forwarder, n: u16, keyframe: bool| {
            let mut actions = Vec::new();
            let mut got = Vec::new();
            for (ssrc, (width, height)) in [(LOW, (320, 180)), (MID, (640, 360)), (HIGH, (1280, 720))] {
                let payload = if keyframe { vp8_keyframe(n, width, height) } else { vp8(n, false, 100) };
                forwarder.on_packet(&rtp(ssrc, n, 0, &payload), t0, &mut actions);
                if !forwarded(&actions).is_empty() {
                    got.push(ssrc);
                }
            }
            got
        };
        assert_eq!(send(&mut forwarder, 0, false), Vec::<u32>::new(), "every layer is sent; no keyframe yet");
        assert_eq!(send(&mut forwarder, 1, true), [MID], "640x360 covers a 400x200 tile, 320x180 does not");
        assert_eq!(send(&mut forwarder, 2, false), [MID]);
        forwarder.fit(viewer, Some((2000, 1000)), t0);
        assert_eq!(send(&mut forwarder, 3, true), [MID, HIGH], "none covers it: the top one, from its keyframe on");
        forwarder.fit(viewer, Some((100, 50)), t0);
        assert_eq!(send(&mut forwarder, 4, true), [LOW]);
    }

    #[test]
    fn a_subscriber_is_told_the_publishers_clock_of_its_layer_in_its_own_timestamps() {
        let t0 = Instant::now();
        let mut forwarder = Forwarder::default();
        let camera = publish(&mut forwarder, PUBLISHER, Some(Codec::Vp8), &[LOW, HIGH]).unwrap();
        let viewer = forwarder.subscribe(camera).unwrap();
        forwarder.request(viewer, Some(0), t0);
        forwarder.estimate(viewer, 10_000_000, t0);
        let mut actions = Vec::new();
        forwarder.on_packet(&rtp(LOW, 1, 90_000, &vp8(1, true, 100)), t0, &mut actions);
        let Some(&Action::Forward { timestamp: sent, .. }) = actions.first() else { panic!("{actions:?}") };
        assert_eq!(forwarder.sender_report(viewer), None, "no report yet");
        forwarder.on_sender_report(PUBLISHER, HIGH, 0xaaaa_0000_0000_0000, 900_000);
        assert_eq!(forwarder.sender_report(viewer), None, "another layer's report");
        forwarder.on_sender_report(PUBLISHER, LOW, 0xbbbb_0000_0000_0000, 180_000);
        let expected = sent.wrapping_add(90_000);
        assert_eq!(forwarder.sender_report(viewer), Some((0xbbbb_0000_0000_0000, expected)));
        forwarder.on_sender_report(2, LOW, 1, 1);
        assert_eq!(forwarder.sender_report(viewer), Some((0xbbbb_0000_0000_0000, expected)), "not this publisher's");
    }

    #[test]
    fn a_nack_is_answered_from_the_cache_with_the_subscribers_own_numbers() {
        let t0 = Instant::now();
        let mut forwarder = Forwarder::default();
        let camera = publish(&mut forwarder, PUBLISHER, Some(Codec::Vp8), &[LOW]).unwrap();
        let viewer = forwarder.subscribe(camera).unwrap();
        forwarder.request(viewer, Some(0), t0);
        forwarder.estimate(viewer, 10_000_000, t0);
        let mut actions = Vec::new();
        let keyframe = vp8(1, true, 300);
        let last_of_its_frame = Packet { marker: true, ..rtp(LOW, 5_000, 90_000, &keyframe) };
        forwarder.on_packet(&last_of_its_frame, t0, &mut actions);
        let Some(&Action::Forward { sequence_number: sent, timestamp, .. }) = actions.first() else { panic!() };
        forwarder.on_nack(viewer, &[sent, sent.wrapping_add(1)], t0, &mut actions);
        let resend =
            Action::Resend { down: viewer, layer: 0, original: 5_000, sequence_number: sent, timestamp, marker: true };
        assert_eq!(actions, [resend], "as it was sent");
        assert_eq!(forwarder.cached(camera, 0, 5_000, t0), Some(&keyframe[..]));
        assert_eq!(forwarder.drops().nack_misses, 1, "never sent");
        forwarder.on_nack(viewer, &[sent], t0 + Duration::from_secs(2), &mut actions);
        assert_eq!((actions.len(), forwarder.drops().nack_misses), (0, 2), "too old to help");
    }

    #[test]
    fn vp8_picture_ids_continue_for_a_subscriber_moved_between_layers() {
        let t0 = Instant::now();
        let mut forwarder = Forwarder::default();
        let camera = publish(&mut forwarder, PUBLISHER, Some(Codec::Vp8), &[LOW, HIGH]).unwrap();
        let viewer = forwarder.subscribe(camera).unwrap();
        forwarder.request(viewer, Some(0), t0);
        forwarder.estimate(viewer, 10_000_000, t0);
        let mut actions = Vec::new();
        let mut picture_ids = Vec::new();
        let mut send = |forwarder: &mut Forwarder, ssrc, n: u16, picture_id, keyframe| {
            let payload = vp8(picture_id, keyframe, 50);
            forwarder.on_packet(&rtp(ssrc, n, 0, &payload), t0, &mut actions);
            for action in &actions {
                if let Action::Forward { down, starts_segment, .. } = *action {
                    let mut out = payload.clone();
                    if let Some(renumbering) = forwarder.renumber_payload(down, &payload, starts_segment) {
                        renumbering.apply(&mut out);
                    }
                    picture_ids.push(u16::from_be_bytes([out[2], out[3]]) & 0x7fff);
                }
            }
        };
        send(&mut forwarder, LOW, 1, 100, true);
        send(&mut forwarder, LOW, 2, 101, false);
        forwarder.request(viewer, Some(1), t0);
        forwarder.estimate(viewer, 10_000_000, t0);
        send(&mut forwarder, HIGH, 1, 9_000, true);
        send(&mut forwarder, HIGH, 2, 9_001, false);
        assert_eq!(picture_ids, [100, 101, 102, 103]);
    }
}
