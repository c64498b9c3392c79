// The room page's invites (owners, moderators, admins): create a link, copy it, see who can still
// use which link, revoke one. The API shows a link's URL only once, right after creating it.

import { api } from '../api.js';
import { h, field, replace, toast } from '../dom.js';
import { act, form, formatDate, selectField, statusArea, table, timeOf } from './ui.js';

const EXPIRY = [['3600', '1 hour'], ['86400', '1 day'], ['604800', '7 days'], ['2592000', '30 days']];

export function invitesSection(room) {
  const status = statusArea();
  const body = h('tbody');
  const created = h('div', { class: 'created-invite' });
  const none = h('p', { class: 'muted', hidden: true }, 'No invites yet.');
  const load = () => api.get(`/v1/rooms/${room.id}/invites`).then(({ invites }) => {
    replace(body, invites.map((invite) => inviteRow(room, invite, status)));
    none.hidden = invites.length > 0;
  });
  load().catch((error) => status.fail(error));

  const create = form({
    submit: 'Create invite',
    className: 'inline-form',
    fields: [
      field('Max uses', { id: 'invite-uses', name: 'max_uses', type: 'number', min: 1, max: 1000, value: 1, required: true }),
      selectField('Expires in', { id: 'invite-expiry', name: 'expires_in' }, EXPIRY, '604800'),
    ],
    onSubmit: async ({ max_uses, expires_in }) => {
      const invite = await api.post(`/v1/rooms/${room.id}/invites`, {
        max_uses: Number(max_uses), expires_in: Number(expires_in),
      });
      replace(created, createdInvite(invite));
      created.querySelector('input').focus();
      await load().catch((error) => status.fail(error));
    },
  });

  return h('section', { 'aria-labelledby': 'invites-heading' },
    h('h2', { id: 'invites-heading' }, 'Invites'),
    h('p', {}, 'Anyone with an account who opens an invite link becomes a member of this room.'),
    create, created, status.element, none,
    table(`Invites to ${room.name}`, ['Created', 'Status', 'Actions', 'Uses', 'Expires'], body));
}

/** The new link, selectable, with a "Copy link" button; the clipboard may be refused. */
function createdInvite(invite) {
  const input = h('input', { id: 'invite-url', type: 'text', readonly: true, value: invite.url, class: 'wide' });
  const note = statusArea();
  const copy = h('button', { type: 'button', class: 'primary' }, 'Copy link');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(invite.url);
      note.say('Invite link copied.');
    } catch {
      input.focus();
      input.select();
      note.say('The link is selected: press Ctrl+C (⌘C on a Mac) to copy it.');
    }
  });
  input.addEventListener('focus', () => input.select());
  const uses = invite.max_uses === 1 ? 'one person' : `${invite.max_uses} people`;
  return h('div', { class: 'card' },
    h('div', { class: 'field wide' }, h('label', { for: 'invite-url' }, 'Invite link'), input),
    h('div', { class: 'row' }, copy),
    h('p', { class: 'muted' }, `For ${uses}, until ${formatDate(invite.expires_at)}. This link is shown only now.`),
    note.element);
}

function inviteState(invite) {
  if (invite.revoked) return 'Revoked';
  if (invite.uses >= invite.max_uses) return 'Used up';
  if (new Date(invite.expires_at) <= new Date()) return 'Expired';
  return 'Active';
}

function inviteRow(room, invite, status) {
  const row = h('tr');
  const show = () => {
    const state = inviteState(invite);
    const revoke = h('button', { type: 'button', class: 'danger' }, 'Revoke');
    revoke.addEventListener('click', () => act(revoke, status, async () => {
      await api.delete(`/v1/rooms/${room.id}/invites/${invite.id}`);
      invite.revoked = true;
      show();
      toast('Invite revoked.');
    }));
    replace(row,
      h('th', { scope: 'row' }, timeOf(invite.created_at)),
      h('td', {}, h('span', { class: `badge badge-${state.toLowerCase().replace(' ', '-')}` }, state)),
      h('td', {}, state === 'Active' && revoke),
      h('td', {}, `${invite.uses} of ${invite.max_uses}`),
      h('td', {}, timeOf(invite.expires_at)));
  };
  show();
  return row;
}
