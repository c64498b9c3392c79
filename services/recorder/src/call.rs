//! The recorder's policy in a call. Its seat ([`confab_call`], room role `recorder`) is hidden
//! from participants, who are told `recording_started` / `recording_stopped` as it comes and goes
//! (docs/protocol.md) and offer it their media. Here the recorder answers each offer, records the
//! connection into the participant's files, and finishes them when the participant leaves, offers
//! anew, or the recording ends. A peer whose room role is `camera` (the ingest's cameras are told
//! about the recording too) is answered with H.264 and G.711 and recorded as Matroska.
//! Media flows straight from the participants, so losing the gateway loses no media: the seat
//! joins again (through any gateway) and participants offer anew to its new peer id.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use confab_call::{Call, Ended, Event, Peer, Rejoin, Seat, Signals};
use confab_protocol::signal::Signal;
use confab_protocol::signal::signal::Payload;
use tokio::sync::mpsc;

use crate::archive::{Archive, Recorded, Who};
use crate::media_server::MediaServerLink;
use crate::peer::{PeerConfig, Source};
use crate::publishers::Publisher;
use crate::recorded_peer::{Failed, RecordedPeer};
use crate::recording_file::DiskFull;

/// A recording whose call cannot be joined fails at once; a lost gateway is retried every 500 ms
/// for 30 s.
pub const REJOIN: Rejoin = Rejoin {
    backoff: Duration::from_millis(500),
    give_up_after: Some(Duration::from_secs(30)),
    retry_first_entry: false,
};

/// A joined call being recorded.
pub struct RecordedCall {
    call: Call,
}

/// How a call ended for the recorder.
#[derive(Default)]
pub struct Outcome {
    /// The recording was stopped (rather than the call ending under the recorder).
    pub stopped: bool,
    /// Participants whose files were registered.
    pub recorded: usize,
    /// Participants whose media could not be written or registered, with why.
    pub failures: Vec<String>,
    /// The disk ran out of space: the recorder left the call then. The files cut short are still
    /// in the recording's directory, with their notes, to be rebuilt like a dead recorder's.
    pub disk_full: bool,
    /// The media server the recorder took the call's media from was replaced by another (it
    /// stopped or died): each publisher's media went on in a new file once the next one's
    /// connection was up, with a gap before.
    pub media_server_replaced: bool,
}

/// A participant being recorded, and who they were when their connection began.
struct Recording {
    who: Who,
    peer: RecordedPeer,
}

impl RecordedCall {
    /// Joins the seat's room through the first of its gateways that admits the recorder.
    pub async fn join(seat: Seat) -> anyhow::Result<Self> {
        let mut call = Call::new(seat);
        match call.next().await {
            Some(Event::Joined { .. }) => Ok(Self { call }),
            _ => bail!("no gateway admitted the recorder"),
        }
    }

    /// Records every participant that offers its media (and, in a room whose media goes through
    /// the SFU, every publisher on the SFU's connection) until `stop` completes, the disk is full,
    /// the room is closed, or no gateway takes the recorder back in time; then leaves with `bye`
    /// and finishes every participant's files into `archive`.
    pub async fn record_until(mut self, archive: &Archive, stop: impl Future<Output = ()>) -> Outcome {
        tokio::pin!(stop);
        let (failures, mut failed) = mpsc::unbounded_channel::<Failed>();
        let mut taking =
            Taking { archive, failures, recording: HashMap::new(), sfu: None, outcome: Outcome::default() };
        loop {
            tokio::select! {
                () = &mut stop => {
                    taking.outcome.stopped = true;
                    self.call.leave().await;
                    break;
                }
                Some(Failed { peer_id, path }) = failed.recv() => {
                    if taking.recording.get(&peer_id).is_some_and(|recorded| recorded.peer.path() == path) {
                        taking.finish(&peer_id).await;
                    }
                    if taking.outcome.disk_full {
                        self.call.leave().await;
                        break;
                    }
                }
                publisher = next_publisher(&mut taking.sfu), if taking.sfu.is_some() => match publisher {
                    Some(publisher) => taking.publisher(publisher, self.call.session()).await,
                    // The SFU's connection is gone; its publishers' captures ended with it.
                    None => taking.sfu = None,
                },
                event = self.call.next() => match event {
                    Some(event) => self.handle(event, &mut taking).await,
                    None => break,
                },
            }
        }
        let peers: Vec<String> = taking.recording.keys().cloned().collect();
        for peer_id in peers {
            taking.finish(&peer_id).await;
        }
        if let Some(sfu) = taking.sfu.take() {
            sfu.close().await;
        }
        taking.outcome
    }

    async fn handle(&mut self, event: Event, taking: &mut Taking<'_>) {
        match event {
            Event::PeerLeft { peer_id } => taking.finish(&peer_id).await,
            Event::Offer { from, sdp } => {
                // A new offer from a participant already recorded (a restarted connection, or the
                // recorder rejoined): its earlier files are finished and a new one begins.
                taking.finish(&from).await;
                let who = who(&from, self.call.session().peer(&from));
                let config = self.peer_config();
                let started = answer(&from, &sdp, &who, &config, self.call.signals(), taking).await;
                match started {
                    Ok(peer) => {
                        taking.recording.insert(from, Recording { who, peer });
                    }
                    Err(e) => {
                        tracing::warn!(peer.id = from, error = %e, "cannot record a participant's media offer");
                        taking.outcome.failures.push(format!("{}: {e}", who.display_name));
                    }
                }
            }
            Event::Candidate { from, candidate } => {
                if let Some(recorded) = taking.recording.get(&from) {
                    recorded.peer.add_candidate(candidate).await;
                }
            }
            Event::MediaSignal { from, signal } => self.media_server_signal(from, signal, taking).await,
            Event::Lost => tracing::warn!("lost the gateway; joining the call again"),
            Event::Joined { .. } => tracing::info!("back in the call"),
            Event::Ended(Ended::GaveUp) => tracing::warn!("no gateway took the recorder back; leaving the call"),
            Event::Ended(why) => tracing::info!(why = ?why, "the call ended for the recorder"),
            Event::PeerJoined(_)
            | Event::Resync { .. }
            | Event::RecordingStarted { .. }
            | Event::RecordingStopped { .. }
            | Event::Answer { .. }
            | Event::MediaChanged { .. }
            | Event::SpeakGranted { .. }
            | Event::SpeakRevoked { .. } => {}
        }
    }

    /// A signal of the SFU seat `from` about its connection to the recorder: an offer (the first
    /// from that seat opens the connection, replacing one with an earlier seat) or a candidate.
    /// Only the seat the call goes through is heard: a participant naming a `connection` to the
    /// recorder is not the SFU.
    async fn media_server_signal(&mut self, from: String, signal: Signal, taking: &mut Taking<'_>) {
        if self.call.session().sfu() != Some(from.as_str()) {
            return tracing::debug!(peer.id = %from, "a media server signal from a peer that is not the call's SFU");
        }
        match signal.payload {
            Some(Payload::Sdp(description)) if description.r#type == "offer" => {
                if let Some(sfu) = taking.sfu.as_ref().filter(|sfu| sfu.is_with(&from)) {
                    if let Err(e) = sfu.offered_again(&description.sdp).await {
                        tracing::warn!(error = %e, "cannot apply the media server's new offer");
                    }
                    return;
                }
                if let Some(earlier) = taking.sfu.take() {
                    earlier.close().await;
                    taking.outcome.media_server_replaced = true;
                }
                let config = self.peer_config();
                match MediaServerLink::answer(&from, &description.sdp, &config, self.call.signals()).await {
                    Ok(sfu) => taking.sfu = Some(sfu),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot record the media server's offer");
                        taking.outcome.failures.push(format!("the media server's media: {e}"));
                    }
                }
            }
            Some(Payload::Candidate(candidate)) => {
                if let Some(sfu) = taking.sfu.as_ref().filter(|sfu| sfu.is_with(&from)) {
                    sfu.add_candidate(candidate).await;
                }
            }
            _ => tracing::debug!(peer.id = %from, "a media server signal the recorder does not take"),
        }
    }

    fn peer_config(&self) -> PeerConfig {
        PeerConfig { ice_servers: self.call.session().ice_servers().to_vec(), ..PeerConfig::default() }
    }
}

/// What the recorder is taking from the call: each participant's capture, and the SFU's
/// connection if the room's media goes through it.
struct Taking<'a> {
    archive: &'a Archive,
    failures: mpsc::UnboundedSender<Failed>,
    recording: HashMap<String, Recording>,
    sfu: Option<MediaServerLink>,
    outcome: Outcome,
}

impl Taking<'_> {
    /// A publisher on the SFU's connection settled: it is recorded from now into a new file (its
    /// earlier files, through the SFU or from its own connection, are finished).
    async fn publisher(&mut self, publisher: Publisher, session: &confab_call::Session) {
        let Some(connection) = self.sfu.as_ref().map(MediaServerLink::peer) else { return };
        let peer_id = publisher.peer_id.clone();
        self.finish(&peer_id).await;
        let who = who(&peer_id, session.peer(&peer_id));
        let source = Source::of_role(&who.role);
        let started = match self.archive.new_file(&who, source.file_extension()).await {
            Ok(path) => RecordedPeer::from_media_server(publisher, source, path, connection, self.failures.clone())
                .map_err(anyhow::Error::from),
            Err(e) => Err(anyhow::Error::from(e).context("cannot create the participant's file")),
        };
        match started {
            Ok(peer) => {
                self.recording.insert(peer_id, Recording { who, peer });
            }
            Err(e) => {
                tracing::warn!(peer.id = peer_id, error = %e, "cannot record a publisher of the media server");
                self.outcome.failures.push(format!("{}: {e}", who.display_name));
            }
        }
    }

    /// Finishes `peer_id`'s files, if it is being recorded.
    async fn finish(&mut self, peer_id: &str) {
        if let Some(recorded) = self.recording.remove(peer_id) {
            finish(recorded, self.archive, &mut self.outcome).await;
        }
    }
}

async fn next_publisher(sfu: &mut Option<MediaServerLink>) -> Option<Publisher> {
    match sfu {
        Some(sfu) => sfu.next_publisher().await,
        None => None,
    }
}

/// Answers a participant's offer and starts recording it into a new file of `archive`.
async fn answer(
    from: &str,
    sdp: &str,
    who: &Who,
    config: &PeerConfig,
    signals: Signals,
    taking: &Taking<'_>,
) -> anyhow::Result<RecordedPeer> {
    let source = Source::of_role(&who.role);
    let path =
        taking.archive.new_file(who, source.file_extension()).await.context("cannot create the participant's file")?;
    RecordedPeer::start(from, sdp, source, path, config, signals, taking.failures.clone()).await
}

/// Who a peer is, from the call's roster (a peer the roster does not know keeps only its id).
fn who(peer_id: &str, peer: Option<&Peer>) -> Who {
    match peer {
        Some(peer) => Who {
            peer_id: peer.peer_id.clone(),
            user_id: peer.user_id.clone(),
            display_name: peer.display_name.clone(),
            role: peer.role.clone(),
        },
        None => Who { peer_id: peer_id.to_owned(), ..Who::default() },
    }
}

async fn finish(Recording { who, peer }: Recording, archive: &Archive, outcome: &mut Outcome) {
    let path = peer.path().to_owned();
    let peer_id = who.peer_id.clone();
    let (failure, cause) = match peer.finish().await {
        Ok(captured) => {
            let recorded = Recorded { who, path, files: captured.files, stats: captured.stats };
            match archive.keep(&recorded).await {
                Ok(()) => return outcome.recorded += 1,
                // The files stay on disk with their note: a later take-over stores and
                // registers them. The cause (storage addresses, database errors) is only logged.
                Err(e) => (format!("{}: the files could not be kept", recorded.who.display_name), Some(e)),
            }
        }
        Err(e) => {
            // What was written stays, with its note, and is rebuilt after the call.
            outcome.disk_full |= e.is_disk_full();
            (format!("{}: {e}", who.display_name), None)
        }
    };
    let cause = cause.map(|e| format!("{e:#}"));
    tracing::warn!(peer.id = peer_id, failure, error = cause, "a participant's media could not be kept");
    outcome.failures.push(failure);
}
