// Where an invite link lands (the router has made sure the user is logged in): accepting makes
// them a member and takes them into the room's call. The token stays in the path it came in.

import { api } from '../api.js';
import { h } from '../dom.js';
import { form } from './ui.js';

// The API answers every unusable invite with the same 404 on purpose (it tells nobody whether a
// token ever existed, or that they are banned), so one message has to cover every case.
const UNUSABLE = 'This invitation cannot be used. It may have expired, been used as many times as allowed, '
  + 'or been revoked, or you may be banned from the room. Ask the person who invited you for a new link.';

export async function render(main, params, app) {
  const accept = form({
    submit: 'Accept invitation',
    fields: [],
    onSubmit: async () => {
      try {
        const membership = await api.post(`/v1/invites/${encodeURIComponent(params.token)}/accept`);
        app.navigate(`/rooms/${membership.room_id}/call`, { replace: true });
      } catch (error) {
        throw error.status === 404 ? new Error(UNUSABLE) : error;
      }
    },
  });
  main.append(
    h('h1', {}, 'You are invited'),
    h('p', {}, 'Someone invited you to a room on Confab. Accept to become a member and join the call.'),
    accept,
    h('p', {}, h('a', { href: '/rooms' }, 'Not now, go to your rooms')));
}
