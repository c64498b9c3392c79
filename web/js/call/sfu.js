// The call through the media server (docs/protocol.md, "The media server" and "Media through
// the SFU"). In a mesh every browser uploads its camera once per other participant, which an
// uplink and an encoder carry for a handful of people at most; through the SFU each browser
// uploads once and downloads what its tiles show. Two connections to the SFU's peer id, named
// by the `connection` of every signal:
//
// - `publish`, which this side offers: the camera as VP8 simulcast (three encodings, q/h/f, from
//   the smallest picture to the largest; one encoding where the browser refuses simulcast) and
//   the microphone, both send-only. A participant who does not publish (a lecture's viewer) opens
//   none. A device that appears later is added and offered again.
// - `subscribe`, which the SFU offers and re-offers as tracks come and go; this side answers.
//   Each track's `a=msid` names its publisher's peer id (a person's or a room camera's, whose
//   H.264 and G.711 arrive here too; the stream id, so `ontrack`'s `streams[0].id`) and the
//   SFU's track id, which `track_request` names: the size each tile
//   shows a video at (the SFU picks the smallest layer that covers it), or `paused` while the
//   tile is off screen. A publisher's stream is handed on (`onStream`) once media arrives on it
//   (a track unmutes), so the page can swap a tile from the mesh without a black gap.
//
// The SFU also names the dominant speaker (`speaker`) and says what it refused (`refusal`): both
// are handed to the page. Candidates trickle with their connection; the SFU's own are in its
// descriptions. SDP and candidates are never logged.

import { fromWire, toWire } from './ice.js';
import { SendOnlyConnection } from './send_only.js';

/** The camera's simulcast encodings, smallest picture first, as the SFU expects them. */
const SIMULCAST = [
  { rid: 'q', scaleResolutionDownBy: 4 },
  { rid: 'h', scaleResolutionDownBy: 2 },
  { rid: 'f' },
];

export class SfuMedia {
  /**
   * `media`: the LocalMedia; `send(to, payload)`: a `signal` to the SFU; `onStream(peerId)`: media
   * of that publisher arrives through the SFU (see `stream`); `onState(state)`: the link to
   * the SFU is 'connecting' | 'connected' | 'reconnecting' | 'failed'; `onSpeaker(peerId)`;
   * `onRefusal(connection, {code, message})`.
   */
  constructor({ media, send, onStream, onState, onSpeaker, onRefusal }) {
    this.media = media;
    this.sendSignal = send;
    this.onStream = onStream;
    this.onState = onState;
    this.onSpeaker = onSpeaker;
    this.onRefusal = onRefusal;
    this.peerId = null;
    this.iceServers = [];
    this.publisher = null;
    this.subscriber = null;
    /** peerId → the tile's view: {width, height} in device pixels, or null off screen. */
    this.views = new Map();
  }

  /** Connects to the SFU `sfuPeerId`; `publish`: send our camera and microphone. */
  open(sfuPeerId, iceServers, { publish }) {
    this.close();
    this.peerId = sfuPeerId;
    this.iceServers = iceServers;
    this.subscriber = new SubscribeLink(this);
    this.setPublishing(publish);
    this.reportState();
  }

  /** Opens the publish connection (a lecture's viewer let speak) or closes it (silenced). */
  setPublishing(publish) {
    if (!publish || !this.peerId) {
      this.publisher?.close();
      this.publisher = null;
      return;
    }
    if (this.publisher) return;
    this.publisher = new SendOnlyConnection({
      iceServers: this.iceServers,
      media: this.media,
      addTrack: (pc, kind, track) => publishTrack(pc, kind, track, this.media.stream),
      signal: (payload) => this.signal('publish', payload),
      onStateChange: () => this.reportState(),
      peer: 'media server',
    });
    this.publisher.start();
  }

  close() {
    this.publisher?.close();
    this.subscriber?.close();
    this.publisher = null;
    this.subscriber = null;
    this.peerId = null;
  }

  /** A `signal` from the SFU. */
  async handle(signal) {
    if (signal.speaker) return this.onSpeaker(signal.speaker.peer_id || null);
    const link = signal.connection === 'publish' ? this.publisher : signal.connection === 'subscribe' ? this.subscriber : null;
    if (!link) return undefined;
    if (signal.refusal) {
      // Nothing we send is taken: stop offering it.
      if (link === this.publisher) this.setPublishing(false);
      return this.onRefusal(signal.connection, signal.refusal);
    }
    return link.handle(signal);
  }

  /** How the tile of `peerId` shows it now (grid.js): the SFU sends what that view needs. */
  setView(peerId, view) {
    this.views.set(peerId, view);
    this.subscriber?.requestTracks(peerId);
  }

  forget(peerId) {
    this.views.delete(peerId);
  }

  /** The MediaStream of `peerId` through the SFU, once media arrived on it. */
  stream(peerId) {
    return this.subscriber ? this.subscriber.streams.get(peerId) || null : null;
  }

  replaceTrack(kind, track) {
    this.publisher?.replaceTrack(kind, track);
  }

  reportState() {
    // Receiving is what the tiles show; until something is received, publishing stands in.
    const pc = (this.subscriber && this.subscriber.pc) || (this.publisher && this.publisher.pc);
    this.onState(linkState(pc));
  }

  signal(connection, payload) {
    if (this.peerId) this.sendSignal(this.peerId, { connection, ...payload });
  }
}

/** What the page's tiles say about a connection to the SFU. */
function linkState(pc) {
  switch (pc ? pc.connectionState : 'new') {
    case 'connected': return 'connected';
    case 'failed': return 'failed';
    case 'disconnected': return 'reconnecting';
    default: return 'connecting';
  }
}

/** A send-only transceiver for `track` on the publish connection: the camera as simulcast where the browser allows it. */
function publishTrack(pc, kind, track, stream) {
  if (kind === 'video') {
    try {
      pc.addTransceiver(track, { direction: 'sendonly', streams: [stream], sendEncodings: SIMULCAST });
      return;
    } catch (error) {
      console.warn('confab: simulcast was refused; sending one encoding', error.name);
    }
  }
  pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
}

/** Everyone else's media, on the `subscribe` connection the SFU offers. */
class SubscribeLink {
  constructor(sfu) {
    this.sfu = sfu;
    this.pc = null;
    this.closed = false;
    this.pendingCandidates = [];
    /** Publisher peer id → its MediaStream, once media arrived on it. */
    this.streams = new Map();
    /** The video tracks received now: publisher peer id → the SFU's track ids. */
    this.videoTracks = new Map();
    /** track id → the last `track_request` sent for it (as JSON), so each is sent once. */
    this.requested = new Map();
  }

  /** The connection, made on the SFU's first offer. */
  connection() {
    if (this.pc) return this.pc;
    const pc = new RTCPeerConnection({ iceServers: this.sfu.iceServers });
    pc.onicecandidate = ({ candidate }) => {
      if (candidate && candidate.candidate) this.signal({ candidate: toWire(candidate) });
    };
    pc.ontrack = ({ track, streams }) => {
      const stream = streams[0];
      if (!stream) return;
      const arrived = () => {
        if (this.closed) return;
        this.streams.set(stream.id, stream);
        this.sfu.onStream(stream.id);
      };
      if (!track.muted) arrived();
      track.addEventListener('unmute', arrived);
    };
    pc.onconnectionstatechange = () => this.sfu.reportState();
    this.pc = pc;
    return pc;
  }

  /** A `signal` from the SFU on this connection: its offer or a candidate. */
  async handle(signal) {
    if (signal.sdp) await this.answer(signal.sdp);
    else if (signal.candidate) await this.addCandidate(signal.candidate);
  }

  async answer(description) {
    if (description.type !== 'offer') return;
    // Another DTLS fingerprint: the SFU gave up the old connection (it heard nothing from us for
    // a while, docs/protocol.md) and begins a new session, which needs a new RTCPeerConnection.
    const current = this.pc && this.pc.remoteDescription;
    if (current && fingerprint(current.sdp) !== fingerprint(description.sdp)) this.dropConnection();
    const pc = this.connection();
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp: description.sdp });
      await pc.setLocalDescription();
      this.signal({ sdp: { type: 'answer', sdp: pc.localDescription.sdp } });
      const pending = this.pendingCandidates;
      this.pendingCandidates = [];
      for (const init of pending) await pc.addIceCandidate(init).catch(() => {});
    } catch (error) {
      if (!this.closed) console.warn('confab: the media server’s offer could not be answered', error.name);
      return;
    }
    this.videoTracks = receivedVideo(pc.remoteDescription.sdp);
    for (const peerId of this.videoTracks.keys()) this.requestTracks(peerId);
  }

  async addCandidate(candidate) {
    const init = fromWire(candidate);
    if (!this.pc || !this.pc.remoteDescription) {
      this.pendingCandidates.push(init);
      return;
    }
    await this.pc.addIceCandidate(init).catch(() => { /* of an older ICE generation */ });
  }

  /** Tells the SFU how the tile of `peerId` shows each of its video tracks, when that changed. */
  requestTracks(peerId) {
    const view = this.sfu.views.get(peerId);
    if (view === undefined) return;
    for (const trackId of this.videoTracks.get(peerId) || []) {
      const request = view ? { track_id: trackId, max_width: view.width, max_height: view.height }
        : { track_id: trackId, paused: true };
      const key = JSON.stringify(request);
      if (this.requested.get(trackId) === key) continue;
      this.requested.set(trackId, key);
      this.sfu.sendSignal(this.sfu.peerId, { track_request: request });
    }
  }

  signal(payload) {
    if (!this.closed) this.sfu.signal('subscribe', payload);
  }

  close() {
    this.closed = true;
    this.dropConnection();
  }

  /** Closes the connection; what is requested of its tracks is forgotten with it. */
  dropConnection() {
    if (!this.pc) return;
    this.pc.onicecandidate = null;
    this.pc.ontrack = null;
    this.pc.onconnectionstatechange = null;
    this.pc.close();
    this.pc = null;
    this.pendingCandidates = [];
    this.requested.clear();
  }
}

/** A description's DTLS certificate fingerprint (its first `a=fingerprint`). */
function fingerprint(sdp) {
  const line = /^a=fingerprint:(.+)$/m.exec(sdp);
  return line ? line[1].trim() : null;
}

/**
 * The video tracks an SFU offer sends: publisher peer id → the SFU's track ids, from each
 * sending video section's `a=msid:<publisher> <track id>`.
 */
function receivedVideo(sdp) {
  const tracks = new Map();
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    if (!section.startsWith('video ') || section.startsWith('video 0 ')) continue;
    if (!/^a=(sendonly|sendrecv)$/m.test(section)) continue;
    const msid = /^a=msid:(\S+) (\S+)$/m.exec(section);
    if (!msid) continue;
    const [, publisher, trackId] = msid;
    if (!tracks.has(publisher)) tracks.set(publisher, []);
    tracks.get(publisher).push(trackId);
  }
  return tracks;
}
