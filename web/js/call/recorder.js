// Send-only connections to the recorder (docs/protocol.md, "Recording: the recorder as a hidden
// peer"), keyed by `recorder_peer_id`: separate from the mesh, opened on `recording_started`,
// closed on `recording_stopped` for that id only. When the recorder rejoins under a new peer id,
// a connection to the new id is opened beside the old one, which stays until its own
// `recording_stopped`.
//
// This side always offers (the recorder never does): the local camera and microphone tracks on
// `sendonly` transceivers, video codecs limited to VP8 then VP9 and audio to Opus where
// `setCodecPreferences` exists (the recorder accepts nothing else). A failed connection restarts
// ICE with a new offer, which the recorder takes as a new file for this participant.

import { fromWire, toWire } from './ice.js';

const RESTART_RETRY_MS = 15000;
const MAX_RESTARTS = 3;

export class Recorders {
  /** `media`: the LocalMedia; `send(to, payload)`: a `signal` to the recorder. */
  constructor({ media, send }) {
    this.media = media;
    this.send = send;
    this.iceServers = [];
    this.links = new Map();
  }

  setIceServers(iceServers) { this.iceServers = iceServers; }

  has(recorderPeerId) { return this.links.has(recorderPeerId); }

  ids() { return [...this.links.keys()]; }

  /** Offers our media to the recorder `recorderPeerId` (once per id). */
  open(recorderPeerId) {
    if (this.links.has(recorderPeerId)) return;
    const link = new RecorderLink(this, recorderPeerId);
    this.links.set(recorderPeerId, link);
    link.start();
  }

  close(recorderPeerId) {
    const link = this.links.get(recorderPeerId);
    if (!link) return;
    this.links.delete(recorderPeerId);
    link.close();
  }

  closeAll() {
    for (const id of this.ids()) this.close(id);
  }

  async handle(from, signal) {
    const link = this.links.get(from);
    if (link) await link.handle(signal);
  }

  replaceTrack(kind, track) {
    for (const link of this.links.values()) link.replaceTrack(kind, track);
  }
}

class RecorderLink {
  constructor(recorders, peerId) {
    this.recorders = recorders;
    this.peerId = peerId;
    this.pc = new RTCPeerConnection({ iceServers: recorders.iceServers });
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
    };
  }

  start() {
    const { media } = this.recorders;
    for (const kind of ['audio', 'video']) {
      const track = media.track(kind);
      if (!track) continue;
      const transceiver = this.pc.addTransceiver(track, { direction: 'sendonly', streams: [media.stream] });
      preferRecorderCodecs(transceiver, kind);
    }
    // No devices, nothing to record: the connection stays idle (negotiationneeded never fires).
  }

  async offer() {
    if (this.closed || this.offering || this.pc.signalingState !== 'stable') return;
    this.offering = true;
    try {
      await this.pc.setLocalDescription();
      this.signal({ sdp: { type: 'offer', sdp: this.pc.localDescription.sdp } });
    } catch (error) {
      if (!this.closed) console.warn('confab: offering to the recorder failed', error.name);
    } finally {
      this.offering = false;
    }
  }

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
      if (!this.closed) console.warn('confab: the recorder’s answer could not be used', error.name);
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

  replaceTrack(kind, track) {
    const transceiver = this.pc.getTransceivers().find((t) => !t.stopped && t.receiver.track.kind === kind);
    if (transceiver) transceiver.sender.replaceTrack(track).catch(() => {});
    else if (track && !this.closed) {
      // A device that was missing when the recording started: offer it now (a new file).
      const added = this.pc.addTransceiver(track, { direction: 'sendonly', streams: [this.recorders.media.stream] });
      preferRecorderCodecs(added, kind);
    }
  }

  signal(payload) {
    if (!this.closed) this.recorders.send(this.peerId, payload);
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

/** VP8 first, then VP9 (profile 0); Opus only. Browsers without setCodecPreferences offer all. */
function preferRecorderCodecs(transceiver, kind) {
  if (typeof transceiver.setCodecPreferences !== 'function') return;
  const capabilities = (RTCRtpReceiver.getCapabilities && RTCRtpReceiver.getCapabilities(kind))
    || (RTCRtpSender.getCapabilities && RTCRtpSender.getCapabilities(kind));
  if (!capabilities) return;
  const codecs = capabilities.codecs;
  const is = (mime) => (codec) => codec.mimeType.toLowerCase() === mime;
  const vp9Profile0 = (codec) => !/profile-id=[1-9]/.test(codec.sdpFmtpLine || '');
  const preferred = kind === 'video'
    ? [...codecs.filter(is('video/vp8')), ...codecs.filter(is('video/vp9')).filter(vp9Profile0)]
    : codecs.filter(is('audio/opus'));
  if (!preferred.length) return;
  try {
    transceiver.setCodecPreferences(preferred);
  } catch (error) {
    console.warn('confab: codec preferences were not accepted', error.name);
  }
}
