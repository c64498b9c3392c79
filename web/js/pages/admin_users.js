// Administering accounts: search by email or name, page through, change the site role, disable
// or enable, delete. The API refuses these on the admin's own account, so no buttons are shown.

import { api, withQuery } from '../api.js';
import { session } from '../session.js';
import { h, field, replace, toast } from '../dom.js';
import { act, confirmDialog, form, pager, statusArea, table, timeOf } from './ui.js';

/** {element, loaded}; every user shown is added to `names` (id → email). */
export function usersSection(names) {
  const status = statusArea();
  const body = h('tbody');
  const none = h('p', { class: 'muted', hidden: true }, 'No users match.');
  let query = '';
  const more = pager(load);

  async function load(cursor) {
    const page = await api.get(withQuery('/v1/admin/users', { q: query, cursor, limit: 25 }));
    if (!cursor) replace(body);
    page.users.forEach((user) => names.set(user.id, user.email));
    body.append(...page.users.map((user) => userRow(user, status)));
    none.hidden = body.children.length > 0;
    more.set(page.next_cursor);
  }

  const search = form({
    submit: 'Search',
    className: 'inline-form',
    fields: [field('Search users', { id: 'user-search', name: 'q', type: 'search', placeholder: 'Email or name', maxlength: 254 })],
    onSubmit: ({ q }) => {
      query = q.trim();
      return load(null);
    },
  });
  const loaded = load(null).catch((error) => status.fail(error));

  const element = h('section', { 'aria-labelledby': 'users-heading' },
    h('h2', { id: 'users-heading' }, 'Users'),
    search, status.element, none,
    table('Users', ['Email', 'Site role', 'Status', 'Actions', 'Name', 'Created'], body),
    more.element);
  return { element, loaded };
}

function userRow(user, status) {
  const row = h('tr');
  const self = session.user && user.id === session.user.id;
  const state = h('td');
  const showState = () => replace(state, user.disabled ? h('span', { class: 'badge badge-failed' }, 'Disabled') : 'Active');
  showState();
  replace(row,
    h('th', { scope: 'row' }, user.email, self && h('span', { class: 'muted' }, ' (you)')),
    h('td', {}, self ? roleName(user.role) : roleSelect(user, status)),
    state,
    h('td', {}, !self && h('div', { class: 'row' }, toggleButton(user, status, showState), deleteButton(user, row, status))),
    h('td', {}, user.display_name),
    h('td', {}, timeOf(user.created_at)));
  return row;
}

function roleName(role) {
  return role === 'admin' ? 'Admin' : 'User';
}

function roleSelect(user, status) {
  const id = `site-role-${user.id}`;
  const select = h('select', { id },
    ['user', 'admin'].map((role) => h('option', { value: role, selected: role === user.role }, roleName(role))));
  select.addEventListener('change', async () => {
    status.clear();
    try {
      Object.assign(user, await api.patch(`/v1/admin/users/${user.id}`, { role: select.value }));
      toast(`${user.email} is now ${roleName(user.role).toLowerCase()}.`);
    } catch (error) {
      status.fail(error);
    } finally {
      select.value = user.role;
    }
  });
  return h('div', { class: 'cell-field' }, h('label', { for: id, class: 'sr-only' }, `Site role of ${user.email}`), select);
}

function toggleButton(user, status, showState) {
  const button = h('button', { type: 'button' }, user.disabled ? 'Enable' : 'Disable');
  button.addEventListener('click', async () => {
    const disabling = !user.disabled;
    if (disabling && !(await confirmDialog(`Disable ${user.email}? They are logged out and leave every call at once.`, 'Disable account'))) return;
    await act(button, status, async () => {
      Object.assign(user, await api.patch(`/v1/admin/users/${user.id}`, { disabled: disabling }));
      button.textContent = user.disabled ? 'Enable' : 'Disable';
      showState();
      toast(`${user.email} is ${user.disabled ? 'disabled' : 'enabled'}.`);
    });
  });
  return button;
}

function deleteButton(user, row, status) {
  const button = h('button', { type: 'button', class: 'danger' }, 'Delete');
  button.addEventListener('click', async () => {
    const sure = await confirmDialog(
      `Delete the account ${user.email}? The rooms they own are deleted with it and their calls end.`,
      'Delete account');
    if (!sure) return;
    await act(button, status, async () => {
      await api.delete(`/v1/admin/users/${user.id}`);
      row.remove();
      toast(`${user.email} deleted.`);
    });
  });
  return button;
}
