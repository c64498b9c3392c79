// The tiles of the call: one per participant (the local one first), each a <figure> with its
// video, display name, connection state and mic/camera badges. The grid's `data-layout` names the
// size class (1, 2, 4, 9, many) and the stylesheet picks the columns for it and the screen width.
//
// A camera of the room (a peer with role `camera`) gets a tile like a participant's, with its
// name and a "Camera" badge, and `data-kind="camera"` (participants' tiles: `person`); it is not
// a person: the grid's `data-people` counts the others (the local tile included).
//
// Through the media server each remote tile is also a request: the SFU sends the smallest
// simulcast layer that covers the tile, and nothing for a tile off screen. So the grid reports
// each remote tile's view, its video's size in device pixels or `null` when it is scrolled out of
// sight, to `onView` whenever it changes. The room's dominant speaker gets an outline.
//
// For tests and tools every tile carries `data-peer-id`, `data-kind`, `data-state` (local,
// connecting, connected, reconnecting, failed), `data-audio` and `data-video` (on/off); a remote
// tile's `data-via` says where its media comes from (`mesh` or `sfu`), and the dominant
// speaker's tile has `data-speaking="true"`.

import { h } from '../dom.js';

const STATE_TEXT = {
  local: 'You',
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  failed: 'Connection failed',
};

export class Grid {
  /**
   * `onFirstFrame(peerId, via)`: a remote tile showed the first frame of the stream it got from
   * `via`; `onAutoplayBlocked()`: sound needs a click; `onView(peerId, view)`: a remote tile's
   * video is now `{width, height}` device pixels on screen, or `null` off screen.
   */
  constructor({ onFirstFrame, onAutoplayBlocked, onView }) {
    this.onFirstFrame = onFirstFrame;
    this.onAutoplayBlocked = onAutoplayBlocked;
    this.element = h('div', { class: 'call-grid', role: 'list', 'aria-label': 'Participants', 'data-layout': '1' });
    this.tiles = new Map();
    this.speaker = null;
    this.views = new TileViews(onView);
  }

  /** The tile for `peerId`, created when missing; `name` updates its caption; `camera` on creation. */
  tile(peerId, { name, local = false, camera = false } = {}) {
    let tile = this.tiles.get(peerId);
    if (!tile) {
      tile = new Tile(peerId, local, camera, this);
      this.tiles.set(peerId, tile);
      // The speaker may have been named before its tile appeared.
      if (peerId === this.speaker) tile.setSpeaking(true);
      if (local) this.element.prepend(tile.element);
      else {
        this.element.append(tile.element);
        this.views.watch(tile);
      }
      this.layout();
    }
    if (name !== undefined) tile.setName(name);
    return tile;
  }

  has(peerId) { return this.tiles.has(peerId); }

  remove(peerId) {
    const tile = this.tiles.get(peerId);
    if (!tile) return;
    this.tiles.delete(peerId);
    this.views.unwatch(tile);
    tile.destroy();
    this.layout();
  }

  /** Outlines the tile of `peerId` (the local one for 'local') as the dominant speaker. */
  setSpeaker(peerId) {
    const previous = this.tiles.get(this.speaker);
    if (previous) previous.setSpeaking(false);
    this.speaker = peerId;
    const tile = this.tiles.get(peerId);
    if (tile) tile.setSpeaking(true);
  }

  /** Removes every remote tile. */
  clearRemote() {
    for (const [peerId, tile] of this.tiles) if (!tile.local) this.remove(peerId);
  }

  /** Unmutes remote videos that autoplay had to start muted (after a click). */
  unmuteAll() {
    for (const tile of this.tiles.values()) if (!tile.local) tile.unmute();
  }

  layout() {
    const count = this.tiles.size;
    const size = count <= 1 ? '1' : count === 2 ? '2' : count <= 4 ? '4' : count <= 9 ? '9' : 'many';
    this.element.dataset.layout = size;
    this.element.dataset.count = String(count);
    this.element.dataset.people = String([...this.tiles.values()].filter((tile) => !tile.camera).length);
  }
}

class Tile {
  constructor(peerId, local, camera, grid) {
    this.peerId = peerId;
    this.local = local;
    this.camera = camera;
    this.grid = grid;
    this.stream = null;
    this.video = h('video', { autoplay: true, playsinline: true, 'aria-hidden': 'true' });
    // The muted attribute only sets the default; the property mutes this element now.
    this.video.muted = local;
    this.name = h('span', { class: 'tile-name' });
    this.state = h('span', { class: 'tile-state' });
    this.micBadge = h('span', { class: 'tile-badge', hidden: true }, 'Mic off');
    this.cameraBadge = h('span', { class: 'tile-badge', hidden: true }, 'Camera off');
    const kindBadge = camera ? h('span', { class: 'tile-badge tile-kind' }, 'Camera') : null;
    const kind = camera ? 'camera' : 'person';
    this.element = h('figure', {
      class: 'tile' + (local ? ' tile-local' : '') + (camera ? ' tile-camera' : ''),
      role: 'listitem',
      dataset: { peerId, kind, state: local ? 'local' : 'connecting', audio: 'on', video: 'on' },
    },
    this.video,
    h('figcaption', {}, kindBadge, this.name, this.state, this.micBadge, this.cameraBadge));
    this.setState(local ? 'local' : 'connecting');
  }

  setName(name) {
    this.name.textContent = this.local ? `${name} (you)` : name;
  }

  setState(state) {
    this.element.dataset.state = state;
    this.state.textContent = STATE_TEXT[state] || state;
    this.state.hidden = state === 'local' || state === 'connected';
  }

  setMedia({ audio, video }) {
    this.element.dataset.audio = audio ? 'on' : 'off';
    this.element.dataset.video = video ? 'on' : 'off';
    this.micBadge.hidden = audio;
    this.cameraBadge.hidden = video;
  }

  /** Shows `stream`; a remote one arrived `via` 'mesh' or 'sfu'. */
  setStream(stream, via) {
    if (via) this.element.dataset.via = via;
    if (this.stream === stream && this.video.srcObject === stream) return;
    this.stream = stream;
    this.video.srcObject = stream;
    if (!this.local) this.watchFirstFrame(via);
    this.play();
  }

  setSpeaking(speaking) {
    this.element.classList.toggle('tile-speaking', speaking);
    if (speaking) this.element.dataset.speaking = 'true';
    else delete this.element.dataset.speaking;
  }

  /** Re-attaches the stream after one of its tracks was swapped (a device change). */
  refresh() {
    if (!this.stream) return;
    this.video.srcObject = null;
    this.video.srcObject = this.stream;
    this.play();
  }

  play() {
    const playing = this.video.play();
    if (!playing) return;
    playing.catch((error) => {
      // AbortError: a newer srcObject replaced this one; it plays instead.
      if (error.name !== 'NotAllowedError' || this.local) return;
      // Autoplay with sound needs a user gesture (e.g. after a reload): start muted, offer a click.
      this.video.muted = true;
      this.video.play().catch(() => {});
      this.grid.onAutoplayBlocked();
    });
  }

  unmute() {
    if (!this.video.muted) return;
    this.video.muted = false;
    this.video.play().catch(() => {});
  }

  watchFirstFrame(via) {
    const video = this.video;
    const seen = () => this.grid.onFirstFrame(this.peerId, via);
    if (typeof video.requestVideoFrameCallback === 'function') video.requestVideoFrameCallback(seen);
    else video.addEventListener('loadeddata', seen, { once: true });
  }

  destroy() {
    this.video.srcObject = null;
    this.element.remove();
  }
}

/**
 * Where each remote tile's video is on screen: its size (ResizeObserver) while any of it is in
 * the viewport (IntersectionObserver), reported when it changes, at most every 250 ms a tile.
 */
class TileViews {
  constructor(onView) {
    this.onView = onView;
    this.sizes = new Map();
    this.visible = new Map();
    this.reported = new Map();
    this.pending = new Set();
    this.timer = null;
    this.tileOf = new WeakMap();
    if (typeof ResizeObserver === 'function') {
      this.resizes = new ResizeObserver((entries) => {
        for (const entry of entries) this.update(entry.target, () => this.sizes.set(this.tileOf.get(entry.target), entry.contentRect));
      });
    }
    if (typeof IntersectionObserver === 'function') {
      this.intersections = new IntersectionObserver((entries) => {
        for (const entry of entries) this.update(entry.target, () => this.visible.set(this.tileOf.get(entry.target), entry.isIntersecting));
      });
    }
  }

  watch(tile) {
    this.tileOf.set(tile.video, tile);
    this.tileOf.set(tile.element, tile);
    this.resizes?.observe(tile.video);
    this.intersections?.observe(tile.element);
  }

  unwatch(tile) {
    this.resizes?.unobserve(tile.video);
    this.intersections?.unobserve(tile.element);
    for (const map of [this.sizes, this.visible, this.reported]) map.delete(tile);
    this.pending.delete(tile);
  }

  update(target, record) {
    const tile = this.tileOf.get(target);
    if (!tile) return;
    record();
    this.pending.add(tile);
    if (!this.timer) this.timer = setTimeout(() => this.report(), 250);
  }

  report() {
    this.timer = null;
    const scale = window.devicePixelRatio || 1;
    for (const tile of this.pending) {
      const size = this.sizes.get(tile);
      if (!size) continue;
      const view = this.visible.get(tile) === false ? null
        : { width: Math.round(size.width * scale), height: Math.round(size.height * scale) };
      const key = JSON.stringify(view);
      if (this.reported.get(tile) === key) continue;
      this.reported.set(tile, key);
      this.onView(tile.peerId, view);
    }
    this.pending.clear();
  }
}
