// The mesh: one RTCPeerConnection per other participant, negotiated over the gateway.
//
// Who offers. The newcomer: whoever learns of a peer from `welcome` (or `resync`) creates its
// connection, adds its tracks and offers. A peer announced by `peer_joined` gets a connection
// that waits for that offer, adding its own tracks to the transceivers the offer created, so one
// offer/answer carries media both ways; if no offer came within 3 s, it offers itself.
//
// Glare ("perfect negotiation", W3C WebRTC §10.4). Both sides may offer at once (an ICE restart on
// each end, a resync, the fallback above). Of two peers the one with the smaller peer id (string
// order) is impolite: it ignores an offer that collides with its own. The other is polite: it
// rolls its own offer back and answers. An offer that got lost (signaling dropped while a peer
// was away) is noticed when no answer came within 8 s: the offer is rolled back and a new one
// (with fresh ICE credentials) sent.
//
// A peer that reloaded its page comes back under the same peer id (it resumes) with a brand-new
// connection. Its offer then carries another DTLS fingerprint than the connection here knows;
// such an offer replaces the connection here with a fresh one instead of renegotiating it.
//
// Failures. connectionState `failed`, or `disconnected` for 5 s, restarts ICE (restartIce → a new
// offer); a connection still not back 15 s later restarts again, up to 5 times, then stays
// `failed` until the peer or a resync starts over.
//
// Cameras (role `camera`, see docs/protocol.md) are receive-only links: the camera always offers
// (send-only H.264 and G.711), this side only answers, never adds its own tracks (so nothing of
// ours is sent to it), never offers, and never restarts ICE — the camera offers anew on `resync`
// or when it rejoins, and that offer (from a new connection) replaces the link.
//
// Trickle ICE: candidates go out as they are gathered; a candidate that arrives before the
// description it belongs to is kept until then. SDP and candidates are never logged.

import { fromWire, toWire } from './ice.js';
import { markPeer } from './timings.js';

const OFFER_FALLBACK_MS = 3000;
const ANSWER_TIMEOUT_MS = 8000;
const DISCONNECTED_GRACE_MS = 5000;
const RESTART_RETRY_MS = 15000;
const MAX_RESTARTS = 5;

export class Mesh {
  /**
   * `media`: the LocalMedia; `send(to, payload)`: a `signal` to a peer; `onState(peerId, state)`
   * with 'connecting' | 'connected' | 'reconnecting' | 'failed'; `onStream(peerId, MediaStream)`.
   */
  constructor({ media, send, onState, onStream }) {
    this.media = media;
    this.sendSignal = send;
    this.onState = onState;
    this.onStream = onStream;
    this.selfId = null;
    this.iceServers = [];
    this.links = new Map();
  }

  setSelf(peerId, iceServers) {
    this.selfId = peerId;
    this.iceServers = iceServers;
  }

  has(peerId) { return this.links.has(peerId); }

  ids() { return [...this.links.keys()]; }

  /**
   * Opens a connection to `peerId`; `initiate` offers at once, else it waits for the peer's offer.
   * `receiveOnly` (cameras): only ever answers the peer's offers, sending nothing.
   */
  add(peerId, { initiate, receiveOnly = false }) {
    this.remove(peerId);
    const link = new PeerLink(this, peerId, receiveOnly);
    this.links.set(peerId, link);
    if (initiate) link.attach();
    else link.waitForOffer();
    return link;
  }

  remove(peerId) {
    const link = this.links.get(peerId);
    if (!link) return;
    this.links.delete(peerId);
    link.close();
  }

  clear() {
    for (const peerId of this.ids()) this.remove(peerId);
  }

  /** A `signal` from a peer of the mesh. */
  async handle(from, signal) {
    let link = this.links.get(from);
    if (!link) return;
    if (signal.sdp && signal.sdp.type === 'offer' && link.isFromAnotherConnection(signal.sdp)) {
      link = this.add(from, { initiate: false, receiveOnly: link.receiveOnly });
    }
    if (signal.sdp) await link.handleDescription(signal.sdp);
    else if (signal.candidate) await link.handleCandidate(signal.candidate);
  }

  /** Makes sure media flows with `peerId` again (after a resync): restarts ICE unless connected. */
  renegotiate(peerId) {
    const link = this.links.get(peerId);
    if (!link || link.receiveOnly || link.pc.connectionState === 'connected') return;
    link.restarts = 0;
    link.restart();
  }

  /** Puts the local `track` of `kind` into every connection. */
  replaceTrack(kind, track) {
    for (const link of this.links.values()) link.replaceTrack(kind, track);
  }

  state(peerId) {
    const link = this.links.get(peerId);
    return link ? link.state() : null;
  }
}

class PeerLink {
  constructor(mesh, peerId, receiveOnly) {
    this.mesh = mesh;
    this.peerId = peerId;
    this.receiveOnly = receiveOnly;
    // A receive-only link never offers, so it always yields to the peer's offer.
    this.polite = receiveOnly || mesh.selfId > peerId;
    this.pc = new RTCPeerConnection({ iceServers: mesh.iceServers });
    this.remoteStream = new MediaStream();
    this.attached = false;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingAnswer = false;
    this.everConnected = false;
    this.restarts = 0;
    this.pendingCandidates = [];
    this.timers = {};
    this.closed = false;

    const pc = this.pc;
    pc.onnegotiationneeded = () => { if (!this.receiveOnly) this.offer(); };
    pc.onicecandidate = ({ candidate }) => {
      if (!candidate || !candidate.candidate) return;
      this.send({ candidate: toWire(candidate) });
    };
    pc.ontrack = ({ track }) => {
      for (const old of this.remoteStream.getTracks()) {
        if (old.kind === track.kind && old !== track) this.remoteStream.removeTrack(old);
      }
      if (!this.remoteStream.getTracks().includes(track)) this.remoteStream.addTrack(track);
      mesh.onStream(peerId, this.remoteStream);
    };
    pc.oniceconnectionstatechange = () => {
      if (['connected', 'completed'].includes(pc.iceConnectionState)) markPeer(peerId, 'ice_connected');
    };
    pc.onconnectionstatechange = () => this.connectionChanged();
    this.report();
  }

  /** Adds the local tracks (a transceiver per missing kind, to receive anyway); may trigger an offer. */
  attach() {
    if (this.attached || this.closed || this.receiveOnly) return;
    this.attached = true;
    clearTimeout(this.timers.fallback);
    const { media } = this.mesh;
    for (const kind of ['audio', 'video']) {
      const track = media.track(kind);
      const free = this.pc.getTransceivers().find((t) => t.receiver.track.kind === kind && !t.sender.track && !t.stopped);
      if (track) this.pc.addTrack(track, media.stream);
      else if (!free) this.pc.addTransceiver(kind, { direction: 'recvonly' });
    }
  }

  waitForOffer() {
    if (this.receiveOnly) return;
    this.timers.fallback = setTimeout(() => {
      if (!this.pc.remoteDescription) this.attach();
    }, OFFER_FALLBACK_MS);
  }

  async offer() {
    if (this.closed || this.makingOffer) return;
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      if (this.pc.signalingState !== 'have-local-offer') return;
      this.send({ sdp: { type: 'offer', sdp: this.pc.localDescription.sdp } });
      markPeer(this.peerId, 'offer_sent');
      clearTimeout(this.timers.answer);
      this.timers.answer = setTimeout(() => this.answerOverdue(), ANSWER_TIMEOUT_MS);
    } catch (error) {
      if (!this.closed) console.warn('confab: creating an offer failed', error.name);
    } finally {
      this.makingOffer = false;
    }
  }

  async answerOverdue() {
    if (this.closed || this.pc.signalingState !== 'have-local-offer') return;
    try {
      await this.pc.setLocalDescription({ type: 'rollback' });
      this.pc.restartIce();
    } catch (error) {
      console.warn('confab: re-offering failed', error.name);
    }
  }

  async handleDescription(description) {
    const pc = this.pc;
    const offer = description.type === 'offer';
    // An answer to an offer rolled back meanwhile (answerOverdue, glare) has nothing to apply to.
    if (!offer && pc.signalingState !== 'have-local-offer') return;
    const readyForOffer = !this.makingOffer && (pc.signalingState === 'stable' || this.settingAnswer);
    const collision = offer && !readyForOffer;
    this.ignoreOffer = !this.polite && collision;
    if (this.ignoreOffer) return;
    try {
      this.settingAnswer = description.type === 'answer';
      // In have-local-offer, applying an offer rolls ours back implicitly (the polite side).
      await pc.setRemoteDescription({ type: description.type, sdp: description.sdp });
      this.settingAnswer = false;
      if (offer) {
        markPeer(this.peerId, 'offer_received');
        this.attach();
        await pc.setLocalDescription();
        this.send({ sdp: { type: 'answer', sdp: pc.localDescription.sdp } });
        markPeer(this.peerId, 'answer_sent');
      } else {
        clearTimeout(this.timers.answer);
        markPeer(this.peerId, 'answer_received');
      }
      await this.flushCandidates();
    } catch (error) {
      this.settingAnswer = false;
      if (!this.closed) console.warn('confab: applying a session description failed', error.name);
    }
  }

  async handleCandidate(candidate) {
    const init = fromWire(candidate);
    if (!this.pc.remoteDescription) {
      this.pendingCandidates.push(init);
      return;
    }
    try {
      await this.pc.addIceCandidate(init);
    } catch (error) {
      // A candidate of an ignored offer, or of an ICE generation already replaced.
      if (!this.ignoreOffer && !this.closed) console.debug('confab: a remote candidate was not used', error.name);
    }
  }

  async flushCandidates() {
    const pending = this.pendingCandidates;
    this.pendingCandidates = [];
    for (const init of pending) {
      try { await this.pc.addIceCandidate(init); } catch { /* of another ICE generation */ }
    }
  }

  /** True when `offer` comes from a different RTCPeerConnection than the one negotiated so far. */
  isFromAnotherConnection(offer) {
    const current = this.pc.remoteDescription;
    if (!current) return false;
    const before = fingerprint(current.sdp);
    const now = fingerprint(offer.sdp);
    return Boolean(before && now && before !== now);
  }

  replaceTrack(kind, track) {
    if (!this.attached || this.closed) return;
    const transceiver = this.pc.getTransceivers().find((t) => !t.stopped && t.receiver.track.kind === kind
      && (t.sender.track || ['sendrecv', 'sendonly'].includes(t.direction)))
      || this.pc.getTransceivers().find((t) => !t.stopped && t.receiver.track.kind === kind);
    if (!transceiver) {
      if (track) this.pc.addTrack(track, this.mesh.media.stream);
      return;
    }
    transceiver.sender.replaceTrack(track).catch((error) => console.warn('confab: replacing a track failed', error.name));
    if (track) {
      transceiver.sender.setStreams?.(this.mesh.media.stream);
      // A connection opened without this kind of device starts sending: that renegotiates.
      if (transceiver.direction === 'recvonly') transceiver.direction = 'sendrecv';
      else if (transceiver.direction === 'inactive') transceiver.direction = 'sendonly';
    }
  }

  restart() {
    if (this.closed || this.receiveOnly) return;
    clearTimeout(this.timers.restart);
    if (this.restarts >= MAX_RESTARTS) return;
    this.restarts += 1;
    if (!this.attached) this.attach();
    this.pc.restartIce();
    this.timers.restart = setTimeout(() => {
      if (this.pc.connectionState !== 'connected') this.restart();
    }, RESTART_RETRY_MS);
  }

  connectionChanged() {
    const state = this.pc.connectionState;
    clearTimeout(this.timers.disconnected);
    if (state === 'connected') {
      this.everConnected = true;
      this.restarts = 0;
      clearTimeout(this.timers.restart);
      markPeer(this.peerId, 'connected');
    } else if (state === 'failed') {
      this.restart();
    } else if (state === 'disconnected') {
      this.timers.disconnected = setTimeout(() => {
        if (this.pc.connectionState === 'disconnected') this.restart();
      }, DISCONNECTED_GRACE_MS);
    }
    this.report();
  }

  state() {
    switch (this.pc.connectionState) {
      case 'connected': return 'connected';
      case 'failed': return 'failed';
      case 'disconnected': return 'reconnecting';
      default: return this.everConnected ? 'reconnecting' : 'connecting';
    }
  }

  report() {
    if (!this.closed) this.mesh.onState(this.peerId, this.state());
  }

  send(payload) {
    if (!this.closed) this.mesh.sendSignal(this.peerId, payload);
  }

  close() {
    this.closed = true;
    for (const timer of Object.values(this.timers)) clearTimeout(timer);
    this.pc.onnegotiationneeded = null;
    this.pc.onicecandidate = null;
    this.pc.ontrack = null;
    this.pc.onconnectionstatechange = null;
    this.pc.oniceconnectionstatechange = null;
    this.pc.close();
  }
}

function fingerprint(sdp) {
  const found = /^a=fingerprint:(.+)$/m.exec(sdp || '');
  return found ? found[1].trim() : null;
}
