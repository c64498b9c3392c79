// Send-only connections to the recorder (docs/protocol.md, "Recording: the recorder as a hidden
// peer"), keyed by `recorder_peer_id`: separate from the mesh, opened on `recording_started`,
// closed on `recording_stopped` for that id only. When the recorder rejoins under a new peer id,
// a connection to the new id is opened beside the old one, which stays until its own
// `recording_stopped`.
//
// This side always offers (the recorder never does): the local camera and microphone tracks on
// `sendonly` transceivers, video codecs limited to VP8 then VP9 and audio to Opus where
// `setCodecPreferences` exists (the recorder accepts nothing else). A failed connection restarts
// ICE with a new offer (send_only.js), which the recorder takes as a new file for this participant.

import { SendOnlyConnection } from './send_only.js';

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
    const link = new SendOnlyConnection({
      iceServers: this.iceServers,
      media: this.media,
      // A device that appears later is offered again: the recorder starts a new file for it.
      addTrack: (pc, kind, track) => preferRecorderCodecs(
        pc.addTransceiver(track, { direction: 'sendonly', streams: [this.media.stream] }), kind),
      signal: (payload) => this.send(recorderPeerId, payload),
      peer: 'recorder',
    });
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
