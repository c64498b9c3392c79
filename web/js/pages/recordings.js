// The recordings page, and the recordings list it is made of, which the room page reuses for one
// room. Files are served only with the access token, so playing and downloading fetch them as
// Blobs (the token stays in a header, never in a URL).

import { api, withQuery } from '../api.js';
import { h, toast, formatBytes, formatDuration } from '../dom.js';
import { act, confirmDialog, formatDate, pager, statusArea, table } from './ui.js';

const ACTIVE = new Set(['pending', 'starting', 'recording', 'finalizing']);
const RUNNING = new Set(['pending', 'starting', 'recording']);
const POLL_MS = 2000;
const STATUS_NAMES = {
  pending: 'Pending', starting: 'Starting', recording: 'Recording', finalizing: 'Finalizing',
  ready: 'Ready', partial: 'Partial', failed: 'Failed',
};

export async function render(main) {
  const list = recordingsList({ cardHeading: 'h2' });
  main.append(h('h1', {}, 'Recordings'), list.element);
  await list.loaded;
  return list.cleanup;
}

/**
 * The recordings the user can see, newest first; with `room` ({id, name}) only that
 * room's. Each recording is a card headed by a `cardHeading` element. Returns
 * {element, loaded (a promise), cleanup}.
 */
export function recordingsList({ room, cardHeading }) {
  const status = statusArea();
  const items = h('div', { class: 'recordings' });
  const empty = h('p', { class: 'muted', hidden: true }, 'No recordings yet. Start one from the call.');
  const player = filePlayer();
  const cards = new Map();
  const more = pager(load);
  let rooms = null;
  let timer = null;

  async function roomOf(recording) {
    if (room) return room;
    rooms = rooms || myRooms().catch((error) => { rooms = null; throw error; });
    const mine = (await rooms).get(recording.room_id);
    return { name: mine ? mine.name : 'Deleted room' };
  }

  async function show(recording) {
    const where = await roomOf(recording);
    const json = JSON.stringify(recording);
    const known = cards.get(recording.id);
    if (known && known.json === json) return;
    const card = recordingCard(recording, where, { cardHeading, player, show, removed });
    if (known) known.card.replaceWith(card);
    else items.append(card);
    cards.set(recording.id, { json, recording, card });
    empty.hidden = true;
    schedule();
  }

  function removed(recording) {
    const known = cards.get(recording.id);
    if (known) known.card.remove();
    cards.delete(recording.id);
    empty.hidden = cards.size > 0;
  }

  async function load(cursor) {
    const page = await api.get(withQuery('/v1/recordings', { room_id: room && room.id, cursor }));
    for (const recording of page.recordings) await show(recording);
    empty.hidden = cards.size > 0;
    more.set(page.next_cursor);
  }

  // While a recording is on its way to a final status, ask for it again every 2 s.
  function schedule() {
    if (timer || ![...cards.values()].some(({ recording }) => ACTIVE.has(recording.status))) return;
    timer = setTimeout(poll, POLL_MS);
  }

  async function poll() {
    if (!element.isConnected) return;
    const active = [...cards.values()].filter(({ recording }) => ACTIVE.has(recording.status));
    for (const { recording } of active) {
      try {
        await show(await api.get(`/v1/recordings/${recording.id}`));
        status.clear();
      } catch (error) {
        if (error.status === 404) removed(recording);
        else status.fail(error);
      }
    }
    timer = null;
    schedule();
  }

  const element = h('div', { class: 'recordings-list' }, status.element, empty, items, more.element, player.element);
  const loaded = load(null).catch((error) => status.fail(error));
  return {
    element,
    loaded,
    cleanup() {
      clearTimeout(timer);
      timer = null;
      player.release();
    },
  };
}

/** The user's rooms by id (name and role), to label recordings of any room. */
async function myRooms() {
  const rooms = new Map();
  let cursor;
  do {
    const page = await api.get(withQuery('/v1/rooms', { limit: 200, cursor }));
    for (const room of page.rooms) rooms.set(room.id, room);
    cursor = page.next_cursor;
  } while (cursor);
  return rooms;
}

function recordingCard(recording, room, { cardHeading, player, show, removed }) {
  const status = statusArea();
  const title = `${room.name} — ${formatDate(recording.started_at || recording.created_at)}`;
  const stop = h('button', { type: 'button' }, 'Stop recording');
  stop.addEventListener('click', () => act(stop, status, async () => {
    await show(await api.post(`/v1/recordings/${recording.id}/stop`));
    toast('Recording is stopping.');
  }));
  const remove = h('button', { type: 'button', class: 'danger' }, 'Delete recording');
  remove.addEventListener('click', async () => {
    if (!(await confirmDialog(`Delete the recording “${title}” and all its files?`, 'Delete recording'))) return;
    await act(remove, status, async () => {
      await api.delete(`/v1/recordings/${recording.id}`);
      removed(recording);
      toast('Recording deleted.');
    });
  });
  return h('article', { class: 'card', 'aria-label': title },
    h(cardHeading, {}, title),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Status'),
      h('dd', {}, h('span', { class: `badge badge-${recording.status}` }, STATUS_NAMES[recording.status] || recording.status)),
      h('dt', {}, 'Duration'), h('dd', {}, formatDuration(recording.stats.duration_ms)),
      h('dt', {}, 'Size'), h('dd', {}, formatBytes(recording.stats.bytes)),
      recording.reason && [h('dt', {}, 'Reason'), h('dd', {}, recording.reason)]),
    recording.files.length > 0 && fileTable(recording, title, player),
    recording.can_manage && h('div', { class: 'row' }, RUNNING.has(recording.status) && stop, remove),
    status.element);
}

function fileTable(recording, title, player) {
  const rows = recording.files.map((file) => {
    const path = `/v1/recordings/${recording.id}/files/${file.id}`;
    const play = h('button', { type: 'button' }, 'Play');
    const download = h('button', { type: 'button' }, 'Download');
    const fileStatus = statusArea();
    play.addEventListener('click', () => act(play, fileStatus, () => player.play(path, `${file.participant} — ${title}`)));
    download.addEventListener('click', () => act(download, fileStatus, () => save(path, file)));
    return h('tr', {},
      h('th', { scope: 'row' }, file.participant, file.recovered && h('span', { class: 'muted' }, ' (recovered)')),
      h('td', {}, h('div', { class: 'row' }, play, download), fileStatus.element),
      h('td', {}, formatDuration(file.duration_ms)),
      h('td', {}, formatBytes(file.bytes)),
      h('td', {}, file.codecs.join(', ') || '—'));
  });
  return table(`Files of ${title}`, ['Participant', 'Actions', 'Duration', 'Size', 'Codecs'], rows);
}

/** One <video> per list; showing a file revokes the object URL of the one before. */
function filePlayer() {
  let url = null;
  const caption = h('figcaption', { id: 'player-caption' });
  const video = h('video', { controls: true, preload: 'metadata', 'aria-labelledby': 'player-caption' });
  const close = h('button', { type: 'button' }, 'Close player');
  const element = h('figure', { class: 'player', hidden: true }, video, h('div', { class: 'row' }, caption, close));
  const release = () => {
    video.removeAttribute('src');
    video.load();
    if (url) URL.revokeObjectURL(url);
    url = null;
  };
  close.addEventListener('click', () => { release(); element.hidden = true; });
  return {
    element,
    release,
    async play(path, label) {
      toast('Loading the video…');
      const blob = await api.blob(path);
      release();
      url = URL.createObjectURL(blob);
      video.src = url;
      caption.textContent = `Playing: ${label}`;
      element.hidden = false;
      element.scrollIntoView({ block: 'nearest' });
      video.focus();
    },
  };
}

/** Saves a file under the participant's name, as the API's Content-Disposition would. */
async function save(path, file) {
  toast('Downloading…');
  const url = URL.createObjectURL(await api.blob(path));
  const base = file.participant.replace(/[^\p{L}\p{N}_-]+/gu, '_').slice(0, 40) || 'participant';
  const extension = file.content_type === 'video/webm' ? 'webm' : 'mkv';
  const link = h('a', { href: url, download: `${base}-${file.id}.${extension}`, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
