// The administration page (site role `admin`): statistics, users, rooms with their live
// participants, and the audit log. Everyone else sees "Admins only"; the API refuses them anyway.

import { api } from '../api.js';
import { session } from '../session.js';
import { h, replace } from '../dom.js';
import { act, alertBox, statusArea } from './ui.js';
import { usersSection } from './admin_users.js';
import { roomsSection } from './admin_rooms.js';
import { auditSection } from './admin_audit.js';

export async function render(main) {
  const root = h('div');
  main.append(root);
  replace(root, await content());
}

async function content() {
  if (session.user && session.user.role !== 'admin') return adminsOnly();
  let stats;
  try {
    stats = await api.get('/v1/admin/stats');
  } catch (error) {
    return error.status === 403 ? adminsOnly() : [h('h1', {}, 'Administration'), alertBox(error)];
  }
  // Ids the audit log shows by name: users' emails and rooms' names, as the other sections load them.
  const names = new Map();
  const users = usersSection(names);
  const rooms = roomsSection(names);
  const audit = auditSection(names, Promise.allSettled([users.loaded, rooms.loaded]));
  return [h('h1', {}, 'Administration'), statsSection(stats), users.element, rooms.element, audit];
}

/** Counts of users, rooms and live calls, with "Refresh statistics". */
function statsSection(first) {
  const status = statusArea();
  const list = h('dl', { class: 'stats' });
  const show = (stats) => replace(list,
    stat('Users', stats.users), stat('Rooms', stats.rooms), stat('Live calls', stats.live_calls));
  const refresh = h('button', { type: 'button' }, 'Refresh statistics');
  refresh.addEventListener('click', () => act(refresh, status, async () => show(await api.get('/v1/admin/stats'))));
  show(first);
  return h('section', { 'aria-labelledby': 'stats-heading' },
    h('h2', { id: 'stats-heading' }, 'Statistics'), list, h('div', { class: 'row' }, refresh), status.element);
}

function stat(label, value) {
  return h('div', {}, h('dt', {}, label), h('dd', {}, String(value)));
}

function adminsOnly() {
  return [
    h('h1', {}, 'Admins only'),
    h('p', { role: 'alert' }, 'This page is for site administrators. Your account cannot use it.'),
    h('p', {}, h('a', { href: '/rooms' }, 'Back to your rooms')),
  ];
}
