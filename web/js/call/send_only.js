// A send-only connection that this side offers and a service answers: to the recorder
// (recorder.js), and the publish connection to the media server (sfu.js). Both carry our camera
// and microphone one way only, so they share one life: the local tracks are added (how each is
// sent, its codecs or simulcast, is the caller's `addTrack`), the offer goes out, the answer is
// applied, candidates trickle both ways (those that come before the answer wait for it), a
// device that appears later is added and offered again, and a failed connection restarts ICE
// (a new offer) every 15 s, 3 times at most. SDP and candidates are never logged.

import { fromWire, toWire } from './ice.js';

const RESTART_RETRY_MS = 15000;
const MAX_RESTARTS = 3;

export class SendOnlyConnection {
  /**
   * `media`: the LocalMedia; `addTrack(pc, kind, track)`: adds a send-only transceiver for it;
   * `signal(payload)`: a `signal` (sdp or candidate) to the service; `onStateChange(state)`: the
   * connection's connectionState, when it changes; `peer`: who answers, for warnings.
   */
  constructor({ iceServers, media, addTrack, signal, onStateChange = () => {}, peer }) {
    this.media = media;
    this.addTrack = addTrack;
    this.sendSignal = signal;
    this.peer = peer;
    this.pc = new RTCPeerConnection({ iceServers });
    this.closed = false;
    this.offering = false;
    this.restarts = 0;
    this.pendingCandidates = [];
    this.restartTimer = null;
    this.pc.onicecandidate = ({ candidate }) => {
      if (candidate && candidate.candidate) this.signal({ candidate: toWire(candidate) });
    };
    this.pc.onnegotiationneeded = () => this.offer();
    this.pc.onconnectionstatechange = () => {
      const state = this.pc.connectionState;
      if (state === 'connected') {
        this.restarts = 0;
        clearTimeout(this.restartTimer);
      } else if (state === 'failed') {
        this.restart();
      }
      onStateChange(state);
    };
  }

  /** Adds the local tracks; without devices the connection stays idle (nothing to offer). */
  start() {
    for (const kind of ['audio', 'video']) {
      const track = this.media.track(kind);
      if (track) this.addTrack(this.pc, kind, track);
    }
  }

  async offer() {
    if (this.closed || this.offering || this.pc.signalingState !== 'stable') return;
    this.offering = true;
    try {
      await this.pc.setLocalDescription();
      this.signal({ sdp: { type: 'offer', sdp: this.pc.localDescription.sdp } });
    } catch (error) {
      if (!this.closed) console.warn(`confab: offering to the ${this.peer} failed`, error.name);
    } finally {
      this.offering = false;
    }
  }

  /** A `signal` from the service: its answer or a candidate. */
  async handle(signal) {
    try {
      if (signal.sdp && signal.sdp.type === 'answer' && this.pc.signalingState === 'have-local-offer') {
        await this.pc.setRemoteDescription({ type: 'answer', sdp: signal.sdp.sdp });
        const pending = this.pendingCandidates;
        this.pendingCandidates = [];
        for (const init of pending) await this.pc.addIceCandidate(init).catch(() => {});
      } else if (signal.candidate) {
        const init = fromWire(signal.candidate);
        if (this.pc.remoteDescription) await this.pc.addIceCandidate(init);
        else this.pendingCandidates.push(init);
      }
    } catch (error) {
      if (!this.closed) console.warn(`confab: the ${this.peer}’s answer could not be used`, error.name);
    }
  }

  restart() {
    clearTimeout(this.restartTimer);
    if (this.closed || this.restarts >= MAX_RESTARTS) return;
    this.restarts += 1;
    this.pc.restartIce();
    this.restartTimer = setTimeout(() => {
      if (this.pc.connectionState !== 'connected') this.restart();
    }, RESTART_RETRY_MS);
  }

  /** Sends `track` instead of the current one of its kind; a kind not sent yet is added (offered again). */
  replaceTrack(kind, track) {
    if (this.closed) return;
    const transceiver = this.pc.getTransceivers().find((t) => !t.stopped && t.receiver.track.kind === kind);
    if (transceiver) transceiver.sender.replaceTrack(track).catch(() => {});
    else if (track) this.addTrack(this.pc, kind, track);
  }

  signal(payload) {
    if (!this.closed) this.sendSignal(payload);
  }

  close() {
    this.closed = true;
    clearTimeout(this.restartTimer);
    this.pc.onicecandidate = null;
    this.pc.onnegotiationneeded = null;
    this.pc.onconnectionstatechange = null;
    this.pc.close();
  }
}
