// The call page (`/rooms/:id/call`): the camera preview and device choice, Join, the tiles of the
// call, mute / camera / leave, the recording indicator and (owners, moderators) its Start and
// Stop. It wires the parts together: devices.js (local media), signaling.js (the gateway),
// mesh.js (a connection per peer), sfu.js (the connections to the media server), recorder.js
// (send-only connections to the recorder), grid.js (tiles). The message flow is in
// docs/protocol.md; what each part does with it is in its header.
//
// Phases, on the section's `data-phase`: lobby (preview, Join) → joining → in-call → ended (left,
// removed, room closed) or blocked (no such room, not a member). A refused join (room full) goes
// back to the lobby with the reason. Also on the section for tests: `data-peer-id` (ours once
// welcomed), `data-signaling` (connecting/open/reconnecting), `data-recording` (true/false),
// `data-media` (mesh/sfu) and `data-publishing` (false for a lecture's viewer).
//
// Where the media goes is the gateway's word: through the media server while `welcome`,
// `media_changed` or `resync` name its peer id (`sfu`), else the mesh. Through the SFU no mesh
// connection to a person is opened; when a mesh call moves to the SFU, each person's mesh
// connection stays until their media plays through the SFU (at most HANDOVER_MS, for those who
// send nothing), so their tile does not go black; when the SFU leaves, the mesh is offered again.
// The recorder too gets our media from the SFU while there is one, and from us otherwise.
// A tile shows the state of the connection its media comes by: its mesh connection, or the link
// to the SFU.
//
// In a lecture (`mode: lecture`) only the owner and moderators publish: anyone else watches,
// and the page neither opens the camera and microphone nor offers them to anyone, until a
// moderator lets them speak (`speak_granted` for our peer id) and after it is taken back.
//
// A reload during the call rejoins it (stored_call.js); leaving, or navigating to another page
// of the client (the router runs the cleanup returned by render), hangs up.
//
// Each participant tells the others whether its mic and camera are on with a `broadcast`
// {"confab_media": {"audio": bool, "video": bool}} (on joining, when someone joins, on a change),
// shown as badges on its tile.
//
// A camera of the room joins the call as a peer with role `camera`, named after the camera: it
// gets a tile with a camera badge and is not counted as a person. In a mesh it has a receive-only
// connection (it offers, we answer; nothing of ours is sent to it); through the SFU it publishes
// there like a person, its tile shows what arrives in its stream (`streams[0].id` is its peer id)
// and no mesh connection is kept to it (it closes its own when the SFU comes and offers again when
// it goes).

import { api, ApiError } from '../api.js';
import { h, replace, toast } from '../dom.js';
import { session } from '../session.js';
import { LocalMedia } from './devices.js';
import { Grid } from './grid.js';
import { Mesh } from './mesh.js';
import { Recorders } from './recorder.js';
import { SfuMedia } from './sfu.js';
import { Signaling } from './signaling.js';
import { forgetCall, storeCall, storedCall, storedPreferences, touchCall } from './stored_call.js';
import { mark, markPeer, resetTimings } from './timings.js';

const LOCAL = 'local';
const TOUCH_EVERY_MS = 30_000;
/** How long after a resumed welcome a recorder connection must be confirmed by `recording_started`. */
const RECORDER_CONFIRM_MS = 3000;
const MANAGERS = new Set(['owner', 'moderator']);
/** How long mesh connections to people outlive a move to the SFU, for those whose media does not come through it. */
const HANDOVER_MS = 5000;

export async function render(main, params) {
  const page = new CallPage(params.id);
  replace(main, page.root);
  page.init();
  return () => page.hangUp();
}

class CallPage {
  constructor(roomId) {
    this.roomId = roomId;
    this.room = null;
    this.selfId = null;
    this.phase = null;
    this.disposed = false;
    this.signaling = null;
    this.peers = new Map();
    /** recorder_peer_id → recording_id, for the recorders in the call now. */
    this.activeRecorders = new Map();
    this.confirmedRecorders = new Set();
    /** The recording to stop: announced by the gateway, or just started here. */
    this.recordingId = null;
    this.mediaReady = null;
    this.timers = {};
    /** Whether we send our camera and microphone: not as a lecture's viewer. */
    this.publishes = true;
    this.iceServers = [];
    /** The media server's peer id while the call goes through it, else null (the mesh). */
    this.sfuPeerId = null;
    this.sfuState = 'connecting';

    this.media = new LocalMedia();
    this.grid = new Grid({
      onFirstFrame: (peerId, via) => markPeer(peerId, via === 'sfu' ? 'sfu_frame' : 'first_frame'),
      onAutoplayBlocked: () => { this.ui.sound.hidden = false; },
      onView: (peerId, view) => this.sfu.setView(peerId, view),
    });
    const signal = (to, payload) => { if (this.signaling) this.signaling.send('signal', { to, ...payload }); };
    this.mesh = new Mesh({
      media: this.media,
      send: signal,
      onState: (peerId, state) => { if (this.grid.has(peerId)) this.grid.tile(peerId).setState(state); },
      onStream: (peerId, stream) => this.grid.tile(peerId).setStream(stream, 'mesh'),
    });
    this.sfu = new SfuMedia({
      media: this.media,
      send: signal,
      onStream: (peerId) => this.sfuStream(peerId),
      onState: (state) => this.sfuStateChanged(state),
      onSpeaker: (peerId) => this.grid.setSpeaker(peerId === this.selfId ? LOCAL : peerId),
      onRefusal: (connection, refusal) => this.refused(connection, refusal),
    });
    this.recorders = new Recorders({ media: this.media, send: signal });
    this.media.onTrack((kind, track) => {
      this.mesh.replaceTrack(kind, track);
      this.sfu.replaceTrack(kind, track);
      this.recorders.replaceTrack(kind, track);
      this.grid.tile(LOCAL).refresh();
      this.remember();
    });

    this.onPageHide = () => { if (this.inCall()) touchCall(this.roomId); };
    this.onDeviceChange = () => this.listDevices();
    this.root = this.build();
  }

  build() {
    const ui = {};
    ui.title = h('h1', {}, 'Call');
    ui.recording = h('p', { class: 'call-recording', role: 'status', hidden: true }, 'Recording');
    ui.watching = h('p', { class: 'call-watching', role: 'status', hidden: true },
      'You are watching: in a lecture only the owner, moderators and those let speak are seen and heard.');
    ui.connection = h('p', { class: 'call-connection', role: 'status', hidden: true });
    ui.notice = h('div', { class: 'call-notice' });
    ui.join = h('button', { type: 'button', class: 'primary', onclick: () => this.join({ auto: false }) }, 'Join call');
    ui.mic = h('button', { type: 'button', class: 'call-toggle', 'aria-pressed': 'false', onclick: () => this.toggleAudio() }, 'Mute');
    ui.camera = h('button', { type: 'button', class: 'call-toggle', 'aria-pressed': 'false', onclick: () => this.toggleVideo() }, 'Camera off');
    ui.sound = h('button', { type: 'button', hidden: true, onclick: () => this.enableSound() }, 'Turn on sound');
    ui.record = h('button', { type: 'button', hidden: true, onclick: () => this.toggleRecording() }, 'Start recording');
    ui.leave = h('button', { type: 'button', class: 'danger', hidden: true, onclick: () => this.leave() }, 'Leave');
    ui.cameraSelect = h('select', { id: 'call-camera', onchange: (e) => this.chooseDevice('video', e.target.value) });
    ui.micSelect = h('select', { id: 'call-mic', onchange: (e) => this.chooseDevice('audio', e.target.value) });
    ui.devices = h('details', { class: 'call-devices' },
      h('summary', {}, 'Camera and microphone'),
      h('div', { class: 'field' }, h('label', { for: 'call-camera' }, 'Camera'), ui.cameraSelect),
      h('div', { class: 'field' }, h('label', { for: 'call-mic' }, 'Microphone'), ui.micSelect));
    ui.ended = h('div', { class: 'call-ended', hidden: true });
    ui.controls = h('div', { class: 'call-controls', role: 'toolbar', 'aria-label': 'Call controls' },
      ui.join, ui.mic, ui.camera, ui.sound, ui.record, ui.leave);
    this.ui = ui;
    this.grid.tile(LOCAL, { name: this.myName(), local: true });
    const dataset = { phase: 'lobby', signaling: 'idle', recording: 'false', media: 'mesh', publishing: 'true' };
    return h('section', { class: 'call', dataset },
      h('div', { class: 'call-head' }, ui.title, ui.recording, ui.watching),
      ui.connection, ui.notice, ui.ended,
      h('div', { class: 'call-stage' }, this.grid.element),
      ui.controls, ui.devices);
  }

  async init() {
    this.setPhase('lobby');
    window.addEventListener('pagehide', this.onPageHide);
    navigator.mediaDevices?.addEventListener?.('devicechange', this.onDeviceChange);
    const rejoin = storedCall(this.roomId);
    try {
      this.room = await api.get(`/v1/rooms/${encodeURIComponent(this.roomId)}`);
    } catch (error) {
      if (this.disposed) return;
      if (error instanceof ApiError && [401, 403, 404].includes(error.status)) return this.refusedJoin(error);
      this.notice(error.message);
    }
    if (this.disposed) return;
    if (this.room) {
      this.ui.title.textContent = this.room.name;
      if (!this.room.my_role) {
        return this.refusedJoin(new ApiError(403, 'not_a_member', ''));
      }
      if (this.room.mode === 'lecture' && !MANAGERS.has(this.room.my_role)) this.watchOnly();
    }
    if (this.publishes) this.startMedia(storedPreferences(this.roomId));
    if (rejoin) this.join({ auto: true, resume: rejoin });
  }

  /** A lecture's viewer: no camera, no microphone, nothing offered. */
  watchOnly() {
    this.publishes = false;
    this.root.dataset.publishing = 'false';
    this.ui.watching.hidden = false;
    this.setPhase(this.phase);
  }

  /** A moderator let `peerId` speak in the lecture, or took it back: if that is us, we publish or watch again. */
  async speakChanged(peerId, granted) {
    if (peerId !== this.selfId) {
      const name = this.peers.get(peerId)?.display_name;
      if (name) toast(granted ? `${name} may speak` : `${name} no longer speaks`);
      return;
    }
    if (granted === this.publishes) return;
    if (!granted) {
      this.sfu.setPublishing(false);
      this.media.stop();
      this.watchOnly();
      toast('You no longer speak: you are watching again');
      this.announceMedia();
      return;
    }
    this.publishes = true;
    this.root.dataset.publishing = 'true';
    this.ui.watching.hidden = true;
    this.setPhase(this.phase);
    await this.startMedia(storedPreferences(this.roomId));
    if (this.disposed || !this.publishes) return;
    if (this.sfuPeerId) this.sfu.setPublishing(true);
    toast('You may speak now');
    this.announceMedia();
  }

  startMedia(prefs) {
    this.mediaReady = this.media.start({
      cameraId: prefs && prefs.camera_id,
      micId: prefs && prefs.mic_id,
      audioOn: prefs ? prefs.audio !== false : true,
      videoOn: prefs ? prefs.video !== false : true,
    }).then(() => {
      if (this.disposed) return this.media.stop();
      this.grid.tile(LOCAL).setStream(this.media.stream);
      this.showMediaState();
      if (this.media.problem) this.notice(this.media.problem, 'warning');
      return this.listDevices();
    });
    return this.mediaReady;
  }

  async join({ auto, resume = null }) {
    if (this.disposed || ['joining', 'in-call'].includes(this.phase)) return;
    resetTimings({ auto_join: auto });
    mark('join_clicked');
    this.notice(null);
    this.setPhase('joining');
    if (this.publishes && !this.media.stream.getTracks().length) await this.startMedia(storedPreferences(this.roomId));
    else await this.mediaReady;
    if (this.disposed || this.phase !== 'joining') return;
    this.signaling = new Signaling(this.roomId, {
      onMessage: (type, body, info) => this.onMessage(type, body, info),
      onStatus: (status, detail) => this.onStatus(status, detail),
      onEnd: (reason) => this.onEnd(reason),
    });
    this.signaling.start(resume && resume.peer_id && resume.resume_token
      ? { peerId: resume.peer_id, resumeToken: resume.resume_token } : null);
  }

  onMessage(type, body, info) {
    switch (type) {
      case 'welcome': return this.welcome(body, info.resumed);
      case 'peer_joined': return this.peerJoined(body.peer || {});
      case 'peer_left': return this.peerLeft(body.peer_id, body.reason);
      case 'signal': return this.signal(body);
      case 'resync':
        this.route(body.sfu);
        return this.reconcile(body.peers || []);
      case 'media_changed': return this.route(body.sfu);
      case 'speak_granted': return this.speakChanged(body.peer_id, true);
      case 'speak_revoked': return this.speakChanged(body.peer_id, false);
      case 'recording_started': return this.recordingStarted(body);
      case 'recording_stopped': return this.recordingStopped(body);
      case 'broadcast': return this.broadcast(body);
      case 'error':
        // The connection stays; room_full and friends end it and arrive through onEnd.
        if (!['room_full', 'too_many_connections'].includes(body.code)) console.warn('confab: gateway error', body.code);
        return undefined;
      default:
        return undefined;
    }
  }

  welcome(body, resumed) {
    if (!resumed) {
      // A new peer id: whatever was negotiated under the old one is gone for the others too.
      this.mesh.clear();
      this.closeSfu();
      this.recorders.closeAll();
      this.activeRecorders.clear();
      this.grid.clearRemote();
      this.peers.clear();
    }
    this.selfId = body.peer_id;
    this.root.dataset.peerId = body.peer_id;
    const iceServers = (body.ice_servers || []).map((server) => {
      const entry = { urls: server.urls || [] };
      if (server.username) entry.username = server.username;
      if (server.credential) entry.credential = server.credential;
      return entry;
    });
    this.iceServers = iceServers;
    this.mesh.setSelf(body.peer_id, iceServers);
    this.recorders.setIceServers(iceServers);
    this.route(body.sfu);
    this.reconcile(body.peers || []);
    this.confirmedRecorders.clear();
    if (!body.recording) {
      this.recorders.closeAll();
      this.activeRecorders.clear();
      this.recordingId = null;
    } else if (resumed) {
      // The gateway follows this welcome with `recording_started` for the recorder there now;
      // connections to recorders that left meanwhile are closed.
      clearTimeout(this.timers.recorders);
      this.timers.recorders = setTimeout(() => {
        for (const id of [...this.activeRecorders.keys()]) {
          if (!this.confirmedRecorders.has(id)) this.recordingStopped({ recorder_peer_id: id });
        }
      }, RECORDER_CONFIRM_MS);
    }
    this.updateRecording();
    this.setPhase('in-call');
    this.remember();
    this.announceMedia();
    clearInterval(this.timers.touch);
    this.timers.touch = setInterval(() => touchCall(this.roomId), TOUCH_EVERY_MS);
  }

  /** Makes the call match `peers` (welcome, resync): drops the unlisted, connects to the new. */
  reconcile(peers) {
    const listed = new Map(peers.filter((p) => p.peer_id && p.peer_id !== this.selfId).map((p) => [p.peer_id, p]));
    for (const peerId of new Set([...this.mesh.ids(), ...this.peers.keys()])) if (!listed.has(peerId)) this.dropPeer(peerId);
    for (const peer of listed.values()) {
      this.peers.set(peer.peer_id, peer);
      const camera = isCamera(peer);
      this.grid.tile(peer.peer_id, { name: peer.display_name || (camera ? 'Camera' : 'Participant'), camera });
      if (this.mesh.has(peer.peer_id)) this.mesh.renegotiate(peer.peer_id);
      else if (this.sfuPeerId) this.showThroughSfu(peer.peer_id);
      // A camera offers to us (again after a resync, if its connection is down): we only answer.
      else if (camera) this.mesh.add(peer.peer_id, { initiate: false, receiveOnly: true });
      else this.mesh.add(peer.peer_id, { initiate: true });
    }
  }

  /** Follows the gateway's word on where the media goes: through the SFU `sfu.peer_id`, or the mesh. */
  route(sfu) {
    const sfuPeerId = (sfu && sfu.peer_id) || null;
    if (sfuPeerId === this.sfuPeerId) return;
    const fromMesh = !this.sfuPeerId;
    this.closeSfu();
    if (!sfuPeerId) {
      // Back to the mesh: of each pair, the peer that would ignore a colliding offer offers;
      // cameras offer again by themselves, and the recorder gets our media from us again.
      for (const peer of this.peers.values()) {
        if (this.mesh.has(peer.peer_id)) continue;
        if (isCamera(peer)) this.mesh.add(peer.peer_id, { initiate: false, receiveOnly: true });
        else this.mesh.add(peer.peer_id, { initiate: this.selfId < peer.peer_id });
      }
      for (const recorderId of this.activeRecorders.keys()) this.recorders.open(recorderId);
      return;
    }
    // Through the SFU the recorder gets our media from the SFU: we send it nothing.
    this.recorders.closeAll();
    this.sfuPeerId = sfuPeerId;
    this.root.dataset.media = 'sfu';
    this.sfu.open(sfuPeerId, this.iceServers, { publish: this.publishes });
    if (fromMesh) {
      clearTimeout(this.timers.handover);
      this.timers.handover = setTimeout(() => {
        for (const peerId of this.mesh.ids()) if (this.peers.has(peerId)) this.meshToSfu(peerId);
      }, HANDOVER_MS);
    }
    for (const peer of this.peers.values()) if (!this.mesh.has(peer.peer_id)) this.showThroughSfu(peer.peer_id);
  }

  closeSfu() {
    clearTimeout(this.timers.handover);
    this.sfu.close();
    this.sfuPeerId = null;
    this.root.dataset.media = 'mesh';
    this.grid.setSpeaker(null);
  }

  /** Media of `peerId` arrived through the SFU: its tile shows it, and its mesh connection closes. */
  sfuStream(peerId) {
    if (this.sfuPeerId && this.peers.has(peerId)) this.meshToSfu(peerId);
  }

  meshToSfu(peerId) {
    this.mesh.remove(peerId);
    this.showThroughSfu(peerId);
  }

  /** The tile of a person or camera whose media comes through the SFU: the SFU link's state, its stream once arrived. */
  showThroughSfu(peerId) {
    const tile = this.grid.tile(peerId);
    tile.setState(this.sfuState);
    const stream = this.sfu.stream(peerId);
    if (stream) tile.setStream(stream, 'sfu');
  }

  sfuStateChanged(state) {
    this.sfuState = state;
    for (const peerId of this.peers.keys()) {
      if (!this.mesh.has(peerId) && this.grid.has(peerId)) this.grid.tile(peerId).setState(state);
    }
  }

  /** What the SFU refused: our media (a lecture's viewer), or a description it could not use. */
  refused(connection, { code, message }) {
    // A track that ended while we asked for it: the SFU's next offer removes it.
    if (code === 'unknown_track') return;
    const what = connection === 'publish' ? 'did not take your camera and microphone' : 'could not send you the others’ media';
    this.notice(`The media server ${what}: ${message || code}.`, 'error', { code });
  }

  peerJoined(peer) {
    if (!peer.peer_id || peer.peer_id === this.selfId) return;
    this.peers.set(peer.peer_id, peer);
    const camera = isCamera(peer);
    const name = peer.display_name || (camera ? 'Camera' : 'Participant');
    this.grid.tile(peer.peer_id, { name, camera });
    // Its offer may have come first (then the connection exists already).
    if (!this.mesh.has(peer.peer_id)) {
      if (!this.sfuPeerId) this.mesh.add(peer.peer_id, { initiate: false, receiveOnly: camera });
      else this.showThroughSfu(peer.peer_id);
    }
    if (camera) {
      toast(`Camera ${name} joined the call`);
      return;
    }
    this.announceMedia();
    toast(`${name} joined`);
  }

  peerLeft(peerId, reason) {
    const peer = this.peers.get(peerId);
    if (!peer && !this.mesh.has(peerId)) return;
    this.dropPeer(peerId);
    const name = (peer && peer.display_name) || 'Someone';
    if (peer && isCamera(peer)) toast(`Camera ${name} left the call`);
    else toast(reason === 'left' ? `${name} left` : `${name} dropped out of the call`);
  }

  dropPeer(peerId) {
    this.mesh.remove(peerId);
    this.sfu.forget(peerId);
    this.grid.remove(peerId);
    this.peers.delete(peerId);
  }

  signal(body) {
    const from = body.from;
    if (!from) return;
    if (from === this.sfuPeerId) {
      this.sfu.handle(body);
      return;
    }
    if (this.recorders.has(from)) {
      this.recorders.handle(from, body);
      return;
    }
    // For a media server that has left the call.
    if (body.connection) return;
    if (!this.mesh.has(from)) {
      // Through the SFU, people get no mesh connection to offer on.
      if (this.sfuPeerId) return;
      // An offer from a peer whose arrival we missed (it joined while we reconnected): take it,
      // and learn its name from the participant list.
      if (!body.sdp || body.sdp.type !== 'offer' || this.activeRecorders.has(from)) return;
      this.peers.set(from, { peer_id: from, display_name: 'Participant' });
      this.grid.tile(from, { name: 'Participant' });
      this.mesh.add(from, { initiate: false });
      this.learnNames();
    }
    this.mesh.handle(from, body);
  }

  async learnNames() {
    try {
      const { participants } = await api.get(`/v1/rooms/${encodeURIComponent(this.roomId)}/participants`);
      for (const p of participants || []) {
        if (this.peers.has(p.peer_id) && p.display_name) {
          this.peers.get(p.peer_id).display_name = p.display_name;
          this.grid.tile(p.peer_id, { name: p.display_name });
        }
      }
    } catch { /* the placeholder name stays */ }
  }

  recordingStarted({ recording_id: recordingId, recorder_peer_id: recorderId }) {
    if (!recorderId) return;
    const was = this.activeRecorders.size > 0;
    this.activeRecorders.set(recorderId, recordingId);
    this.confirmedRecorders.add(recorderId);
    if (recordingId) this.recordingId = recordingId;
    if (!this.sfuPeerId) this.recorders.open(recorderId);
    this.updateRecording();
    if (!was) toast('This call is being recorded');
  }

  recordingStopped({ recorder_peer_id: recorderId }) {
    if (!recorderId) return;
    this.recorders.close(recorderId);
    if (!this.activeRecorders.delete(recorderId)) return;
    if (this.activeRecorders.size === 0) {
      this.recordingId = null;
      toast('The recording has stopped');
    }
    this.updateRecording();
  }

  broadcast({ from, data }) {
    let value;
    try { value = JSON.parse(data || 'null'); } catch { return; }
    const state = value && value.confab_media;
    if (!state || !this.grid.has(from) || from === LOCAL) return;
    this.grid.tile(from).setMedia({ audio: state.audio !== false, video: state.video !== false });
  }

  announceMedia() {
    if (!this.signaling || !this.inCall()) return;
    const data = JSON.stringify({
      confab_media: { audio: this.publishes && this.media.audioOn, video: this.publishes && this.media.videoOn },
    });
    this.signaling.send('broadcast', { data });
  }

  onStatus(status) {
    this.root.dataset.signaling = status;
    const text = {
      connecting: 'Connecting…',
      reconnecting: 'The connection to the server was lost. Reconnecting…',
      open: '',
    }[status];
    this.ui.connection.textContent = text || '';
    this.ui.connection.hidden = !text;
    this.ui.connection.classList.toggle('warning', status === 'reconnecting');
  }

  onEnd(reason) {
    this.signaling = null;
    this.teardown();
    forgetCall();
    switch (reason.kind) {
      case 'join': return this.refusedJoin(reason.error);
      case 'refused': {
        const max = this.room && this.room.max_participants;
        const text = reason.code === 'room_full'
          ? `This room is full${max ? ` (${max} of ${max} participants)` : ''}. Try again when someone leaves.`
          : 'You are already in this call from too many tabs or devices. Close one of them first.';
        this.setPhase('lobby');
        this.notice(text, 'error', { code: reason.code });
        return undefined;
      }
      case 'kicked': {
        const why = {
          banned: 'You were banned from this room.',
          removed: 'You are no longer a member of this room.',
          disabled: 'Your account was disabled.',
          deleted: 'Your account was deleted.',
        }[reason.reason] || 'A moderator removed you from the call.';
        return this.ended(why, { rejoin: reason.reason === 'kicked', code: 'kicked' });
      }
      case 'room_closed':
        return this.ended('This room was closed, so the call has ended.', { rejoin: false, code: 'room_closed' });
      default:
        return this.ended('The call has ended.', { rejoin: true });
    }
  }

  refusedJoin(error) {
    this.teardown();
    this.media.stop();
    let text;
    let code;
    if (error.status === 401) {
      text = 'Your session has ended. Log in again to join the call.';
      code = 'logged_out';
    } else if (error.status === 403) {
      text = 'You are not a member of this room, so you cannot join its call. Ask its owner for an invite.';
      code = 'not_a_member';
    } else {
      text = 'Room not found. It may have been deleted, or you are not a member of it.';
      code = 'room_not_found';
    }
    this.setPhase('blocked');
    const link = error.status === 401
      ? h('a', { href: '/login?next=' + encodeURIComponent(location.pathname) }, 'Log in')
      : h('a', { href: '/rooms' }, 'Back to your rooms');
    replace(this.ui.ended, h('p', { class: 'error', role: 'alert', dataset: { code } }, text), h('p', {}, link));
    this.ui.ended.hidden = false;
  }

  leave() {
    if (this.signaling) this.signaling.leave();
    this.signaling = null;
    this.teardown();
    forgetCall();
    this.ended('You left the call.', { rejoin: true, code: 'left' });
  }

  ended(text, { rejoin, code }) {
    this.media.stop();
    this.setPhase('ended');
    const rejoinButton = rejoin
      ? h('button', { type: 'button', class: 'primary', onclick: () => this.rejoin() }, 'Rejoin')
      : null;
    replace(this.ui.ended,
      h('p', { role: 'status', dataset: { code } }, text),
      h('p', { class: 'row' }, rejoinButton, h('a', { href: `/rooms/${encodeURIComponent(this.roomId)}` }, 'Back to the room')));
    this.ui.ended.hidden = false;
  }

  rejoin() {
    this.ui.ended.hidden = true;
    this.setPhase('lobby');
    this.join({ auto: false });
  }

  /** Closes every connection; the local media stays (the lobby previews it). */
  teardown() {
    clearTimeout(this.timers.recorders);
    clearInterval(this.timers.touch);
    this.mesh.clear();
    this.closeSfu();
    this.recorders.closeAll();
    this.activeRecorders.clear();
    this.recordingId = null;
    this.grid.clearRemote();
    this.peers.clear();
    this.selfId = null;
    delete this.root.dataset.peerId;
    this.onStatus('idle');
    this.ui.sound.hidden = true;
    this.updateRecording();
  }

  /** The cleanup the router runs when the user leaves the page: hangs up. */
  hangUp() {
    if (this.disposed) return;
    this.disposed = true;
    if (this.signaling) this.signaling.leave();
    this.signaling = null;
    this.teardown();
    this.media.stop();
    forgetCall();
    window.removeEventListener('pagehide', this.onPageHide);
    navigator.mediaDevices?.removeEventListener?.('devicechange', this.onDeviceChange);
  }

  toggleAudio() {
    this.media.setAudio(!this.media.audioOn);
    this.showMediaState();
    this.remember();
    this.announceMedia();
  }

  toggleVideo() {
    this.media.setVideo(!this.media.videoOn);
    this.showMediaState();
    this.remember();
    this.announceMedia();
  }

  showMediaState() {
    this.ui.mic.setAttribute('aria-pressed', String(!this.media.audioOn));
    this.ui.camera.setAttribute('aria-pressed', String(!this.media.videoOn));
    this.ui.mic.disabled = !this.media.track('audio');
    this.ui.camera.disabled = !this.media.track('video');
    this.grid.tile(LOCAL).setMedia({ audio: this.media.audioOn, video: this.media.videoOn });
  }

  enableSound() {
    this.grid.unmuteAll();
    this.ui.sound.hidden = true;
  }

  async chooseDevice(kind, deviceId) {
    try {
      await this.media.useDevice(kind, deviceId);
      this.showMediaState();
    } catch (error) {
      this.notice(error.message, 'error');
      this.listDevices();
    }
  }

  async listDevices() {
    const { audio, video } = await this.media.devices();
    fill(this.ui.cameraSelect, video, this.media.deviceId('video'), 'Camera');
    fill(this.ui.micSelect, audio, this.media.deviceId('audio'), 'Microphone');
  }

  async toggleRecording() {
    const button = this.ui.record;
    button.disabled = true;
    this.notice(null);
    try {
      if (this.recordingId) {
        await api.post(`/v1/recordings/${encodeURIComponent(this.recordingId)}/stop`);
        if (this.activeRecorders.size === 0) this.recordingId = null;
        toast('Stopping the recording…');
      } else {
        const recording = await api.post(`/v1/rooms/${encodeURIComponent(this.roomId)}/recordings`);
        this.recordingId = recording.id;
        toast('Starting the recording…');
      }
    } catch (error) {
      this.notice(`The recording could not be changed: ${error.message}`, 'error');
    } finally {
      button.disabled = false;
      this.updateRecording();
    }
  }

  updateRecording() {
    const recording = this.activeRecorders.size > 0;
    this.root.dataset.recording = String(recording);
    this.ui.recording.hidden = !recording;
    const manager = Boolean(this.room && MANAGERS.has(this.room.my_role));
    this.ui.record.hidden = !(manager && this.inCall());
    this.ui.record.textContent = this.recordingId ? 'Stop recording' : 'Start recording';
  }

  setPhase(phase) {
    this.phase = phase;
    this.root.dataset.phase = phase;
    const { join, leave, mic, camera, devices, ended } = this.ui;
    join.hidden = phase !== 'lobby' && phase !== 'joining';
    join.disabled = phase === 'joining';
    join.textContent = phase === 'joining' ? 'Joining…' : 'Join call';
    leave.hidden = phase !== 'joining' && phase !== 'in-call';
    const live = phase === 'lobby' || phase === 'joining' || phase === 'in-call';
    mic.hidden = !live || !this.publishes;
    camera.hidden = !live || !this.publishes;
    devices.hidden = !live || !this.publishes;
    if (live) ended.hidden = true;
    this.updateRecording();
  }

  inCall() { return this.phase === 'in-call'; }

  notice(text, kind = 'error', { code } = {}) {
    if (!text) return replace(this.ui.notice);
    const role = kind === 'error' ? 'alert' : 'status';
    return replace(this.ui.notice, h('p', { class: kind, role, dataset: code ? { code } : undefined }, text));
  }

  /** Stores what a reload needs to come back (stored_call.js). */
  remember() {
    if (!this.signaling || !this.selfId || !this.signaling.resumeToken) return;
    storeCall({
      room_id: this.roomId,
      peer_id: this.selfId,
      resume_token: this.signaling.resumeToken,
      audio: this.media.audioOn,
      video: this.media.videoOn,
      camera_id: this.media.deviceId('video'),
      mic_id: this.media.deviceId('audio'),
    });
  }

  myName() {
    return (session.user && session.user.display_name) || 'You';
  }
}

function fill(select, devices, selectedId, noun) {
  const options = devices.map((device, i) => h('option', { value: device.deviceId, selected: device.deviceId === selectedId },
    device.label || `${noun} ${i + 1}`));
  if (!options.length) options.push(h('option', { value: '' }, `No ${noun.toLowerCase()} found`));
  replace(select, options);
  select.disabled = devices.length < 2;
}

/** A camera of the room, joined by the ingest service: a send-only peer, not a person. */
function isCamera(peer) {
  return peer.role === 'camera';
}
