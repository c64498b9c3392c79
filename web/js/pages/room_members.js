// The room page's people: the members list with roles (change, remove, ban), adding a member by
// email, and the room's bans with "Unban". What each row offers follows the API's rules: nobody
// acts on the owner, moderators act on plain members, owners and admins on moderators too.

import { api } from '../api.js';
import { h, field, replace, toast } from '../dom.js';
import { ROLE_NAMES, act, confirmDialog, form, selectField, statusArea, table, timeOf } from './ui.js';

/** The sections about people: {members, add, bans}; the last two only for managers. */
export function membersSection(room, you) {
  const status = statusArea();
  const body = h('tbody');
  const bans = you.manager ? bansSection(room) : null;
  const headers = ['Name', 'Role', you.manager && 'Actions', you.manager && 'Email', 'Joined'].filter(Boolean);
  const addRow = (member) => body.append(memberRow(room, you, member, { status, banned: bans && bans.add }));

  api.get(`/v1/rooms/${room.id}/members`)
    .then(({ members }) => { replace(body); members.forEach(addRow); })
    .catch((error) => status.fail(error));

  return {
    members: h('section', { 'aria-labelledby': 'members-heading' },
      h('h2', { id: 'members-heading' }, 'Members'),
      status.element,
      table(`Members of ${room.name}`, headers, body)),
    add: you.manager && addMemberSection(room, you, addRow),
    bans: bans && bans.element,
  };
}

/** May the caller change or remove someone holding `role`? */
function canActOn(you, member) {
  if (member.role === 'owner' || member.user_id === you.id) return false;
  return member.role === 'moderator' ? you.owner : you.manager;
}

function memberRow(room, you, member, { status, banned }) {
  const row = h('tr');
  const name = member.display_name;
  const mayAct = canActOn(you, member);
  const remove = h('button', { type: 'button' }, 'Remove');
  remove.addEventListener('click', async () => {
    if (!(await confirmDialog(`Remove ${name} from “${room.name}”? They leave the call at once.`, 'Remove member'))) return;
    await act(remove, status, async () => {
      await api.delete(`/v1/rooms/${room.id}/members/${member.user_id}`);
      row.remove();
      toast(`${name} was removed.`);
    });
  });
  const ban = h('button', { type: 'button', class: 'danger' }, 'Ban');
  ban.addEventListener('click', async () => {
    const sure = await confirmDialog(
      `Ban ${name} from “${room.name}”? They leave the call at once and no invite lets them back until the ban is lifted.`,
      'Ban member');
    if (!sure) return;
    await act(ban, status, async () => {
      await api.post(`/v1/rooms/${room.id}/bans`, { user_id: member.user_id });
      row.remove();
      banned(member);
      toast(`${name} was banned.`);
    });
  });
  replace(row,
    h('th', { scope: 'row' }, name, member.user_id === you.id && h('span', { class: 'muted' }, ' (you)')),
    h('td', {}, mayAct && you.owner ? roleSelect(room, member, status) : ROLE_NAMES[member.role]),
    you.manager && h('td', {}, mayAct && h('div', { class: 'row' }, remove, ban)),
    you.manager && h('td', {}, member.email || '—'),
    h('td', {}, timeOf(member.joined_at)));
  return row;
}

/** The owner's (and admins') role picker: Member or Moderator, saved on change. */
function roleSelect(room, member, status) {
  const id = `role-${member.user_id}`;
  const select = h('select', { id },
    ['member', 'moderator'].map((role) => h('option', { value: role, selected: role === member.role }, ROLE_NAMES[role])));
  select.addEventListener('change', async () => {
    status.clear();
    try {
      const updated = await api.patch(`/v1/rooms/${room.id}/members/${member.user_id}`, { role: select.value });
      member.role = updated.role;
      toast(`${member.display_name} is now ${ROLE_NAMES[updated.role].toLowerCase()}.`);
    } catch (error) {
      status.fail(error);
    } finally {
      select.value = member.role;
    }
  });
  return h('div', { class: 'cell-field' }, h('label', { for: id, class: 'sr-only' }, `Role of ${member.display_name}`), select);
}

function addMemberSection(room, you, added) {
  const roles = [['member', 'Member'], you.owner && ['moderator', 'Moderator']].filter(Boolean);
  return h('section', { 'aria-labelledby': 'add-member-heading' },
    h('h2', { id: 'add-member-heading' }, 'Add a member'),
    h('p', { class: 'muted' }, 'They need a Confab account already; otherwise send them an invite link.'),
    form({
      submit: 'Add member',
      className: 'inline-form',
      fields: [
        field('Email', { id: 'member-email', name: 'email', type: 'email', required: true, autocomplete: 'off' }),
        selectField('Role', { id: 'member-role', name: 'role' }, roles, 'member'),
      ],
      onSubmit: async ({ email, role }, element) => {
        const member = await api.post(`/v1/rooms/${room.id}/members`, { email, role });
        added(member);
        element.reset();
        toast(`${member.display_name} was added.`);
      },
    }));
}

/** The room's bans (the latest first), with "Unban"; `add` shows one made on this page. */
function bansSection(room) {
  const status = statusArea();
  const body = h('tbody');
  const none = h('p', { class: 'muted' }, 'Nobody is banned from this room. Use “Ban” in the members list.');
  const wrap = table(`People banned from ${room.name}`, ['Name', 'Actions', 'Banned'], body);
  const showEmpty = () => {
    wrap.hidden = body.children.length === 0;
    none.hidden = !wrap.hidden;
  };
  const row = (ban) => {
    const tr = h('tr');
    const unban = h('button', { type: 'button' }, 'Unban');
    unban.addEventListener('click', () => act(unban, status, async () => {
      await api.delete(`/v1/rooms/${room.id}/bans/${ban.user_id}`);
      tr.remove();
      showEmpty();
      toast(`${ban.display_name} may be added or invited again.`);
    }));
    replace(tr, h('th', { scope: 'row' }, ban.display_name), h('td', {}, unban), h('td', {}, timeOf(ban.banned_at)));
    return tr;
  };
  const add = (member) => {
    body.prepend(row({ ...member, banned_at: new Date().toISOString() }));
    showEmpty();
  };
  showEmpty();
  api.get(`/v1/rooms/${room.id}/bans`)
    .then(({ bans }) => { replace(body, bans.map(row)); showEmpty(); })
    .catch((error) => status.fail(error));
  const element = h('section', { 'aria-labelledby': 'bans-heading' },
    h('h2', { id: 'bans-heading' }, 'Bans'),
    h('p', {}, 'A banned person loses their membership, leaves the call at once, and cannot use invites until unbanned.'),
    none, status.element, wrap);
  return { element, add };
}
