// Administering rooms: every room (delete any, which ends its call), and the live participants
// of one room's call, any of whom can be kicked.

import { api, withQuery } from '../api.js';
import { h, replace, toast } from '../dom.js';
import { act, confirmDialog, pager, statusArea, table, timeOf } from './ui.js';
import { confirmRoomDelete } from './room_delete.js';

/** {element, loaded}; every room shown is added to `names` (id → name). */
export function roomsSection(names) {
  const status = statusArea();
  const body = h('tbody');
  const none = h('p', { class: 'muted', hidden: true }, 'There are no rooms.');
  const live = participantsPanel();
  const more = pager(load);

  async function load(cursor) {
    const page = await api.get(withQuery('/v1/admin/rooms', { cursor, limit: 25 }));
    if (!cursor) replace(body);
    page.rooms.forEach((room) => names.set(room.id, room.name));
    body.append(...page.rooms.map((room) => roomRow(room, status, live)));
    none.hidden = body.children.length > 0;
    more.set(page.next_cursor);
  }
  const loaded = load(null).catch((error) => status.fail(error));

  const element = h('div', {},
    h('section', { 'aria-labelledby': 'admin-rooms-heading' },
      h('h2', { id: 'admin-rooms-heading' }, 'Rooms'),
      status.element, none,
      table('All rooms', ['Room', 'Actions', 'Owner id', 'Max participants', 'Created'], body),
      more.element),
    live.element);
  return { element, loaded };
}

function roomRow(room, status, live) {
  const row = h('tr');
  const remove = h('button', { type: 'button', class: 'danger' }, 'Delete');
  remove.addEventListener('click', async () => {
    const choice = await confirmRoomDelete(room);
    if (!choice) return;
    await act(remove, status, async () => {
      await api.delete(withQuery(`/v1/admin/rooms/${room.id}`, { delete_recordings: choice.deleteRecordings || undefined }));
      row.remove();
      live.forget(room);
      toast(`Room “${room.name}” deleted.`);
    });
  });
  const show = h('button', { type: 'button' }, 'Participants');
  show.addEventListener('click', () => live.show(room));
  replace(row,
    h('th', { scope: 'row' }, h('a', { href: `/rooms/${room.id}` }, room.name)),
    h('td', {}, h('div', { class: 'row' }, show, remove)),
    h('td', {}, h('code', {}, room.owner_id)),
    h('td', {}, String(room.max_participants)),
    h('td', {}, timeOf(room.created_at)));
  return row;
}

/** Who is in one room's call now, with "Kick" and "Refresh". */
function participantsPanel() {
  const status = statusArea();
  const heading = h('h2', { id: 'live-heading', tabindex: '-1' }, 'Live participants');
  const content = h('div', {}, h('p', { class: 'muted' }, 'Choose “Participants” on a room to see who is in its call.'));
  let current = null;

  async function load() {
    const room = current;
    const { participants } = await api.get(`/v1/admin/rooms/${room.id}/participants`);
    if (room !== current) return;
    const refresh = h('button', { type: 'button' }, 'Refresh');
    refresh.addEventListener('click', () => act(refresh, status, load));
    const count = h('p', {});
    let left = participants.length;
    const showCount = () => {
      count.textContent = `In the call of “${room.name}”: ${left === 1 ? '1 person' : `${left} people`}.`;
    };
    showCount();
    const kicked = () => { left -= 1; showCount(); };
    const rows = participants.map((peer) => peerRow(room, peer, status, kicked));
    replace(content,
      count,
      h('div', { class: 'row' }, refresh),
      rows.length > 0 && table(`Participants in ${room.name}`, ['Name', 'Actions', 'Role', 'Peer id', 'Gateway', 'Joined'], rows));
  }

  return {
    element: h('section', { 'aria-labelledby': 'live-heading' }, heading, status.element, content),
    async show(room) {
      current = room;
      status.clear();
      replace(content, h('p', {}, `Loading the call of “${room.name}”…`));
      heading.focus();
      try {
        await load();
      } catch (error) {
        status.fail(error);
      }
    },
    forget(room) {
      if (current && current.id === room.id) {
        current = null;
        replace(content, h('p', { class: 'muted' }, 'That room was deleted.'));
      }
    },
  };
}

function peerRow(room, peer, status, kicked) {
  const row = h('tr');
  const kick = h('button', { type: 'button', class: 'danger' }, 'Kick');
  kick.addEventListener('click', async () => {
    if (!(await confirmDialog(`Disconnect ${peer.display_name} from the call of “${room.name}”?`, 'Kick participant'))) return;
    await act(kick, status, async () => {
      await api.post(`/v1/admin/rooms/${room.id}/participants/${encodeURIComponent(peer.peer_id)}/kick`);
      row.remove();
      kicked();
      toast(`${peer.display_name} was disconnected.`);
    });
  });
  replace(row,
    h('th', { scope: 'row' }, peer.display_name),
    h('td', {}, kick),
    h('td', {}, peer.role),
    h('td', {}, h('code', {}, peer.peer_id)),
    h('td', {}, peer.instance_id),
    h('td', {}, timeOf(peer.joined_at)));
  return row;
}
