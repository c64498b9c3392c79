// "Your rooms": the rooms the user owns or belongs to, where they create, rename and delete rooms
// and from which they open a room's settings or join its call.

import { api, withQuery } from '../api.js';
import { h, field, replace, toast } from '../dom.js';
import { ROLE_NAMES, act, form, pager, roomSettingsFields, statusArea, table, timeOf } from './ui.js';
import { confirmRoomDelete } from './room_delete.js';

export async function render(main) {
  const status = statusArea();
  const body = h('tbody');
  const empty = h('p', { class: 'muted', hidden: true }, 'You have no rooms yet. Create one, or open an invite link.');
  const more = pager(load);

  async function load(cursor) {
    const page = await api.get(withQuery('/v1/rooms', { cursor }));
    if (!cursor) replace(body);
    body.append(...page.rooms.map((room) => roomRow(room, status)));
    empty.hidden = body.children.length > 0;
    more.set(page.next_cursor);
  }

  const max = field('Max participants', { id: 'new-room-max', name: 'max_participants', type: 'number', min: 2, max: 50, value: 8, required: true });
  const create = form({
    submit: 'Create room',
    className: 'inline-form',
    fields: [
      field('Room name', { id: 'new-room-name', name: 'name', required: true, maxlength: 100 }),
      max,
      ...roomSettingsFields('new-room', max),
    ],
    onSubmit: async ({ name, max_participants, media, mode }, element) => {
      const room = await api.post('/v1/rooms', { name, max_participants: Number(max_participants), media, mode });
      body.prepend(roomRow(room, status));
      empty.hidden = true;
      element.reset();
      element.querySelectorAll('select').forEach((select) => select.dispatchEvent(new Event('change')));
      toast(`Room “${room.name}” created.`);
    },
  });

  main.append(
    h('h1', {}, 'Your rooms'),
    h('section', { 'aria-labelledby': 'create-heading' }, h('h2', { id: 'create-heading' }, 'Create a room'), create),
    h('section', { 'aria-labelledby': 'list-heading' },
      h('h2', { id: 'list-heading' }, 'Rooms'), status.element, empty,
      table('Your rooms', ['Room', 'Actions', 'Your role', 'Max participants', 'Created'], body), more.element),
  );
  try {
    await load(null);
  } catch (error) {
    status.fail(error);
  }
}

/** One room's row; its name cell turns into a rename form on "Rename". */
function roomRow(room, status) {
  const nameCell = h('th', { scope: 'row' });
  const showName = () => {
    const link = h('a', { href: `/rooms/${room.id}` }, room.name);
    replace(nameCell, link);
    return link;
  };
  const rename = () => replace(nameCell, renameForm(room, () => showName().focus(), (updated) => {
    room = updated;
    showName().focus();
    toast(`Room renamed to “${room.name}”.`);
  }));
  const row = h('tr');
  const remove = h('button', { type: 'button', class: 'danger' }, 'Delete');
  remove.addEventListener('click', async () => {
    const choice = await confirmRoomDelete(room);
    if (!choice) return;
    await act(remove, status, async () => {
      await api.delete(withQuery(`/v1/rooms/${room.id}`, { delete_recordings: choice.deleteRecordings || undefined }));
      row.remove();
      toast(`Room “${room.name}” deleted.`);
    });
  });
  const manager = room.my_role === 'owner' || room.my_role === 'moderator';
  showName();
  replace(row,
    nameCell,
    h('td', {}, h('div', { class: 'row' },
      h('a', { class: 'button primary', href: `/rooms/${room.id}/call` }, 'Join call'),
      h('a', { class: 'button', href: `/rooms/${room.id}` }, 'Settings'),
      manager && h('button', { type: 'button', onclick: rename }, 'Rename'),
      room.my_role === 'owner' && remove)),
    h('td', {}, ROLE_NAMES[room.my_role] || '—'),
    h('td', {}, String(room.max_participants)),
    h('td', {}, timeOf(room.created_at)));
  return row;
}

function renameForm(room, cancel, done) {
  const edit = form({
    submit: 'Save name',
    className: 'inline-form',
    fields: [field('New name', { id: `rename-${room.id}`, name: 'name', value: room.name, required: true, maxlength: 100 })],
    onSubmit: async ({ name }) => done(await api.patch(`/v1/rooms/${room.id}`, { name })),
  });
  edit.querySelector('.row').append(h('button', { type: 'button', onclick: cancel }, 'Cancel'));
  queueMicrotask(() => edit.querySelector('input').focus());
  return edit;
}
