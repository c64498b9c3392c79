//! In a room whose media goes through the media server, one connection from it carries every
//! publisher's tracks to the recorder, and each publisher is recorded into files of its own, as
//! if it had offered its media to the recorder itself. This sorts that connection's media by
//! publisher (a track's stream id is its publisher's peer id, docs/protocol.md) and decides when
//! a publisher's capture starts.
//!
//! A file's tracks are fixed when it starts, but the SFU offers a newcomer's tracks as each one
//! starts (often the microphone in one offer and the camera in the next). So a publisher's first
//! track opens a short wait, as a muxer's probe does (ffmpeg's `analyzeduration`), in which the
//! rest of its tracks join; its packets wait in its channel meanwhile and lose nothing. A track
//! that starts after that begins a new file with all of the publisher's tracks. When all of a
//! publisher's tracks have ended its channel closes, and its capture finishes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::media::Codec;
use crate::peer::{Media, Received};

/// How long after a publisher's first track its capture starts.
pub const SETTLE: Duration = Duration::from_secs(1);

/// A publisher whose capture is to start now.
#[derive(Debug)]
pub struct Publisher {
    pub peer_id: String,
    /// Its tracks' codecs: the first video and the first audio track's.
    pub video: Option<Codec>,
    pub audio: Option<Codec>,
    /// Its packets and sender reports, from its first track's first packet on.
    pub media: mpsc::Receiver<Received>,
}

/// Every publisher on the media server's connection.
pub struct Publishers {
    routes: HashMap<Arc<str>, Route>,
    /// Each publisher's channel: what does not fit is dropped and counted.
    capacity: usize,
    dropped: u64,
}

/// Where one publisher's media goes.
struct Route {
    to: mpsc::Sender<Received>,
    /// Until its capture starts: the channel's receiving end, and when the capture starts.
    waiting: Option<(mpsc::Receiver<Received>, Instant)>,
    /// Its tracks that have not ended, by their first SSRC.
    tracks: HashMap<u32, Codec>,
}

impl Route {
    fn new(capacity: usize, starts_at: Instant) -> Self {
        let (to, from) = mpsc::channel(capacity.max(1));
        Self { to, waiting: Some((from, starts_at)), tracks: HashMap::new() }
    }
}

impl Publishers {
    pub fn new(capacity: usize) -> Self {
        Self { routes: HashMap::new(), capacity, dropped: 0 }
    }

    /// Hands one item of the connection's media to its publisher's channel.
    pub fn route(&mut self, received: Received, now: Instant) {
        let ssrc = received.track.ssrc;
        if received.media == Media::Ended {
            let Some(route) = self.routes.get_mut(&received.stream_id) else { return };
            if route.tracks.remove(&ssrc).is_some() && route.tracks.is_empty() {
                self.routes.remove(&received.stream_id);
            }
            return;
        }
        let (capacity, starts_at) = (self.capacity, now + SETTLE);
        let route =
            self.routes.entry(Arc::clone(&received.stream_id)).or_insert_with(|| Route::new(capacity, starts_at));
        if !route.tracks.contains_key(&ssrc) {
            if route.waiting.is_none() {
                // A track after the capture started: a new file with every track, and the
                // earlier capture finishes with what it has (its channel closes).
                let tracks = std::mem::take(&mut route.tracks);
                *route = Route { tracks, ..Route::new(capacity, starts_at) };
            }
            route.tracks.insert(ssrc, received.track.codec);
        }
        if route.to.try_send(received).is_err() {
            self.dropped += 1;
        }
    }

    /// When the next waiting publisher's capture starts.
    pub fn next_start(&self) -> Option<Instant> {
        self.routes.values().filter_map(|route| route.waiting.as_ref().map(|(_, at)| *at)).min()
    }

    /// The publishers whose capture starts by `now`.
    pub fn due(&mut self, now: Instant) -> Vec<Publisher> {
        let mut due = Vec::new();
        for (peer_id, route) in &mut self.routes {
            if route.waiting.as_ref().is_none_or(|(_, at)| *at > now) {
                continue;
            }
            let Some((media, _)) = route.waiting.take() else { continue };
            let mut codecs: Vec<Codec> = route.tracks.values().copied().collect();
            codecs.sort_by_key(|codec| *codec as u8);
            let video = codecs.iter().copied().find(|codec| codec.is_video());
            let audio = codecs.iter().copied().find(|codec| !codec.is_video());
            due.push(Publisher { peer_id: peer_id.to_string(), video, audio, media });
        }
        due
    }

    /// Items dropped because a publisher's channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::RtpPacket;
    use crate::peer::RemoteTrack;

    fn packet(publisher: &str, ssrc: u32, codec: Codec, at: Instant) -> Received {
        let rtp = RtpPacket {
            sequence_number: 1,
            timestamp: 0,
            ssrc,
            marker: false,
            payload_type: 96,
            payload: vec![0x10, 0x00, 0x00],
        };
        Received {
            track: RemoteTrack { index: 0, codec, ssrc },
            stream_id: publisher.into(),
            at,
            media: Media::Rtp(rtp),
        }
    }

    fn ended(publisher: &str, ssrc: u32, codec: Codec, at: Instant) -> Received {
        Received { media: Media::Ended, ..packet(publisher, ssrc, codec, at) }
    }

    fn drain(publisher: &mut Publisher) -> Vec<u32> {
        let mut ssrcs = Vec::new();
        while let Ok(received) = publisher.media.try_recv() {
            ssrcs.push(received.track.ssrc);
        }
        ssrcs
    }

    #[test]
    fn each_publisher_starts_once_its_tracks_settled_with_everything_it_sent_meanwhile() {
        let t0 = Instant::now();
        let mut publishers = Publishers::new(64);
        publishers.route(packet("ann", 1, Codec::Opus, t0), t0);
        publishers.route(packet("bob", 3, Codec::Vp8, t0), t0);
        let t1 = t0 + Duration::from_millis(300);
        publishers.route(packet("ann", 2, Codec::Vp8, t1), t1);
        assert_eq!(publishers.next_start(), Some(t0 + SETTLE));
        assert!(publishers.due(t0 + SETTLE - Duration::from_millis(1)).is_empty(), "still settling");

        let mut due = publishers.due(t0 + SETTLE);
        due.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        let [mut ann, mut bob] = <[Publisher; 2]>::try_from(due).unwrap();
        assert_eq!((ann.peer_id.as_str(), ann.video, ann.audio), ("ann", Some(Codec::Vp8), Some(Codec::Opus)));
        assert_eq!((bob.peer_id.as_str(), bob.video, bob.audio), ("bob", Some(Codec::Vp8), None));
        assert_eq!(drain(&mut ann), [1, 2], "what came while settling");
        publishers.route(packet("ann", 2, Codec::Vp8, t1), t1 + SETTLE);
        assert_eq!(drain(&mut ann), [2]);
        assert_eq!(drain(&mut bob), [3]);
        assert_eq!(publishers.next_start(), None);
        assert!(publishers.due(t0 + 10 * SETTLE).is_empty(), "each starts once");
    }

    #[test]
    fn a_track_after_the_start_begins_a_new_capture_with_every_track() {
        let t0 = Instant::now();
        let mut publishers = Publishers::new(64);
        publishers.route(packet("ann", 1, Codec::Opus, t0), t0);
        let [mut audio_only] = <[Publisher; 1]>::try_from(publishers.due(t0 + SETTLE)).unwrap();
        let t1 = t0 + 5 * SETTLE;
        publishers.route(packet("ann", 2, Codec::Vp8, t1), t1);
        publishers.route(packet("ann", 1, Codec::Opus, t1), t1);
        assert_eq!(drain(&mut audio_only), [1]);
        assert!(audio_only.media.try_recv().is_err() && audio_only.media.is_closed(), "the first capture ends");
        let [mut both] = <[Publisher; 1]>::try_from(publishers.due(t1 + SETTLE)).unwrap();
        assert_eq!((both.video, both.audio), (Some(Codec::Vp8), Some(Codec::Opus)));
        assert_eq!(drain(&mut both), [2, 1]);
    }

    #[test]
    fn a_publisher_whose_tracks_all_ended_is_done() {
        let t0 = Instant::now();
        let mut publishers = Publishers::new(64);
        publishers.route(packet("ann", 1, Codec::Opus, t0), t0);
        publishers.route(packet("ann", 2, Codec::Vp8, t0), t0);
        let [mut ann] = <[Publisher; 1]>::try_from(publishers.due(t0 + SETTLE)).unwrap();
        publishers.route(ended("ann", 1, Codec::Opus, t0), t0);
        publishers.route(ended("nobody", 9, Codec::Opus, t0), t0);
        assert_eq!(drain(&mut ann), [1, 2]);
        assert!(!ann.media.is_closed(), "the camera still sends");
        publishers.route(ended("ann", 2, Codec::Vp8, t0), t0);
        assert!(ann.media.is_closed());

        // Let speak again later: a new capture.
        publishers.route(packet("ann", 5, Codec::Opus, t0), t0 + SETTLE);
        assert_eq!(publishers.due(t0 + 2 * SETTLE).len(), 1);
    }

    #[test]
    fn a_full_channel_drops_and_counts() {
        let t0 = Instant::now();
        let mut publishers = Publishers::new(2);
        for _ in 0..5 {
            publishers.route(packet("ann", 1, Codec::Opus, t0), t0);
        }
        assert_eq!(publishers.dropped(), 3);
    }
}
