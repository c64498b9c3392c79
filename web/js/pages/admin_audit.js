// The audit log, newest first: who did what to which room or account, paged with "Load more".

import { api, withQuery } from '../api.js';
import { h, replace } from '../dom.js';
import { act, pager, statusArea, table, timeOf } from './ui.js';

/** The log, loaded once `ready` settles so that ids known by then show as names. */
export function auditSection(names, ready) {
  const status = statusArea();
  const body = h('tbody');
  const none = h('p', { class: 'muted', hidden: true }, 'Nothing has been audited yet.');
  const more = pager(load);

  async function load(cursor) {
    const page = await api.get(withQuery('/v1/admin/audit-log', { cursor, limit: 25 }));
    if (!cursor) replace(body);
    body.append(...page.entries.map((entry) => entryRow(entry, names)));
    none.hidden = body.children.length > 0;
    more.set(page.next_cursor);
  }
  ready.then(() => load(null)).catch((error) => status.fail(error));
  const refresh = h('button', { type: 'button' }, 'Refresh audit log');
  refresh.addEventListener('click', () => act(refresh, status, () => load(null)));

  return h('section', { 'aria-labelledby': 'audit-heading' },
    h('h2', { id: 'audit-heading' }, 'Audit log'),
    h('div', { class: 'row' }, refresh),
    status.element, none,
    table('Audit log', ['When', 'Action', 'By', 'Room', 'User', 'Details'], body),
    more.element);
}

function entryRow(entry, names) {
  const details = Object.keys(entry.details || {}).length ? JSON.stringify(entry.details) : '—';
  return h('tr', {},
    h('th', { scope: 'row' }, timeOf(entry.at)),
    h('td', {}, entry.action),
    h('td', {}, named(entry.actor_id, names)),
    h('td', {}, named(entry.room_id, names)),
    h('td', {}, named(entry.target_user_id, names)),
    h('td', {}, h('code', { class: 'details' }, details)));
}

/** A name for an id when one is known, else the id itself. */
function named(id, names) {
  if (!id) return '—';
  return names.has(id) ? names.get(id) : h('code', {}, id);
}
