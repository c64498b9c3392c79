// A room's settings page: its details, members, invites, bans and recordings, each shown only to
// the roles the API lets act on it (the API checks again). A room the user may not see looks
// exactly like one that does not exist: "Room not found".

import { api, withQuery } from '../api.js';
import { session } from '../session.js';
import { h, field, replace, toast } from '../dom.js';
import { MEDIA_NAMES, MODE_NAMES, ROLE_NAMES, act, alertBox, confirmDialog, form, roomSettingsFields, statusArea } from './ui.js';
import { membersSection } from './room_members.js';
import { invitesSection } from './room_invites.js';
import { recordingsList } from './recordings.js';
import { confirmRoomDelete } from './room_delete.js';

const RANK = { member: 1, moderator: 2, owner: 3 };

export async function render(main, params, app) {
  const root = h('div');
  main.append(root);
  let room;
  try {
    room = await api.get(`/v1/rooms/${encodeURIComponent(params.id)}`);
  } catch (error) {
    root.append(...notFound(error));
    return undefined;
  }
  const admin = Boolean(session.user && session.user.role === 'admin');
  // What the caller may do: admins act as owners (as the API's RoomAccess::power does).
  const power = admin ? 'owner' : room.my_role;
  const you = { id: session.user && session.user.id, power, manager: RANK[power] >= RANK.moderator, owner: power === 'owner' };
  const heading = h('h1', {}, room.name);
  const people = membersSection(room, you);
  const recordings = recordingsList({ room: { id: room.id, name: room.name }, cardHeading: 'h3' });

  let about = summary(room, app);
  replace(root,
    heading,
    about,
    you.manager && detailsSection(room, you, app, (updated) => {
      room = updated;
      heading.textContent = room.name;
      const next = summary(room, app);
      about.replaceWith(next);
      about = next;
    }),
    people.members,
    people.add,
    you.manager && invitesSection(room),
    people.bans,
    h('section', { 'aria-labelledby': 'recordings-heading' },
      h('h2', { id: 'recordings-heading' }, 'Recordings'), recordings.element),
  );
  await recordings.loaded;
  return recordings.cleanup;
}

function notFound(error) {
  const missing = error.status === 404 || error.status === 403;
  return [
    h('h1', {}, missing ? 'Room not found' : 'Room unavailable'),
    missing
      ? h('p', { role: 'alert' }, 'This room does not exist, or you are not one of its members.')
      : alertBox(error),
    h('p', {}, h('a', { href: '/rooms' }, 'Back to your rooms')),
  ];
}

/** Your role, the capacity and settings, "Join call", and "Leave room" for members who are not the owner. */
function summary(room, app) {
  const status = statusArea();
  const leave = h('button', { type: 'button' }, 'Leave room');
  leave.addEventListener('click', async () => {
    if (!(await confirmDialog(`Leave “${room.name}”? You will need a new invite to come back.`, 'Leave room'))) return;
    await act(leave, status, async () => {
      await api.delete(`/v1/rooms/${room.id}/members/${session.user.id}`);
      toast(`You left “${room.name}”.`);
      app.navigate('/rooms');
    });
  });
  const role = room.my_role ? ROLE_NAMES[room.my_role] : 'Not a member (administrator)';
  return h('div', { class: 'summary' },
    h('p', {}, `Your role: ${role}. Up to ${room.max_participants} people in the call.`),
    h('p', {}, `Connection: ${MEDIA_NAMES[room.media] || room.media}. Format: ${MODE_NAMES[room.mode] || room.mode}.`),
    h('div', { class: 'row' },
      room.my_role && h('a', { class: 'button primary', href: `/rooms/${room.id}/call` }, 'Join call'),
      room.my_role && room.my_role !== 'owner' && leave),
    status.element);
}

/** Name, capacity and settings for managers; deleting the room for the owner (and admins). */
function detailsSection(room, you, app, updated) {
  const status = statusArea();
  const max = field('Max participants', { id: 'room-max', name: 'max_participants', type: 'number', min: 2, max: 50, value: room.max_participants, required: true });
  const edit = form({
    submit: 'Save changes',
    className: 'inline-form',
    fields: [
      field('Room name', { id: 'room-name', name: 'name', value: room.name, required: true, maxlength: 100 }),
      max,
      ...roomSettingsFields('room', max, room),
    ],
    onSubmit: async ({ name, max_participants, media, mode }) => {
      const changed = await api.patch(`/v1/rooms/${room.id}`, { name, max_participants: Number(max_participants), media, mode });
      updated(changed);
      room = changed;
      toast('Room saved.');
    },
  });
  const remove = h('button', { type: 'button', class: 'danger' }, 'Delete room');
  remove.addEventListener('click', async () => {
    const choice = await confirmRoomDelete(room);
    if (!choice) return;
    await act(remove, status, async () => {
      await api.delete(withQuery(`/v1/rooms/${room.id}`, { delete_recordings: choice.deleteRecordings || undefined }));
      toast(`Room “${room.name}” deleted.`);
      app.navigate('/rooms');
    });
  });
  return h('section', { 'aria-labelledby': 'details-heading' },
    h('h2', { id: 'details-heading' }, 'Room details'),
    edit,
    you.owner && h('div', { class: 'row' }, remove),
    status.element);
}
