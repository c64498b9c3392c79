// The client's router: History API paths (so invite links `/invite/{token}` open the right
// page; the API serves index.html for every page address), one page module per route. A page
// exports `render(main, params, app)` and may return a cleanup function, run when the user leaves
// the page (the call page hangs up there).

import { session } from './session.js';
import { h, replace } from './dom.js';
import { api } from './api.js';

const routes = [
  { path: '/login', page: () => import('./pages/auth.js'), public: true, view: 'login' },
  { path: '/signup', page: () => import('./pages/auth.js'), public: true, view: 'signup' },
  { path: '/invite/:token', page: () => import('./pages/invite.js') },
  { path: '/rooms', page: () => import('./pages/rooms.js') },
  { path: '/rooms/:id', page: () => import('./pages/room.js') },
  { path: '/rooms/:id/call', page: () => import('./call/call_page.js') },
  { path: '/recordings', page: () => import('./pages/recordings.js') },
  { path: '/admin', page: () => import('./pages/admin.js') },
];

let cleanup = null;

const app = {
  /** Goes to `path` (adding a history entry unless `replace`). */
  navigate(path, { replace: replaceEntry = false } = {}) {
    if (replaceEntry) history.replaceState(null, '', path);
    else history.pushState(null, '', path);
    show();
  },
};

function match(pathname) {
  for (const route of routes) {
    const names = [];
    const pattern = new RegExp('^' + route.path.replace(/:(\w+)/g, (_, name) => {
      names.push(name);
      return '([^/]+)';
    }) + '/?$');
    const found = pathname.match(pattern);
    if (found) {
      const params = Object.fromEntries(names.map((name, i) => [name, decodeURIComponent(found[i + 1])]));
      return { route, params };
    }
  }
  return null;
}

async function show() {
  const main = document.getElementById('main');
  if (cleanup) {
    const done = cleanup;
    cleanup = null;
    try { await done(); } catch (e) { console.warn('cleanup failed', e); }
  }
  const { pathname, search } = location;
  if (pathname === '/') return app.navigate(session.loggedIn ? '/rooms' : '/login', { replace: true });
  const found = match(pathname);
  if (!found) {
    replace(main, h('h1', {}, 'Page not found'), h('p', {}, h('a', { href: '/rooms' }, 'Back to your rooms')));
    return;
  }
  const { route, params } = found;
  if (!route.public && !session.loggedIn) {
    return app.navigate('/login?next=' + encodeURIComponent(pathname + search), { replace: true });
  }
  if (!route.public) await session.fresh();
  renderNav();
  const module = await route.page();
  replace(main);
  main.dataset.page = route.view || route.path;
  const result = await module.render(main, { ...params, view: route.view, query: new URLSearchParams(search) }, app);
  cleanup = typeof result === 'function' ? result : null;
  const heading = main.querySelector('h1');
  if (heading) { heading.setAttribute('tabindex', '-1'); heading.focus({ preventScroll: true }); }
}

function renderNav() {
  const nav = document.getElementById('nav');
  if (!session.loggedIn) return replace(nav, h('a', { href: '/login' }, 'Log in'), h('a', { href: '/signup' }, 'Sign up'));
  const links = [h('a', { href: '/rooms' }, 'Rooms'), h('a', { href: '/recordings' }, 'Recordings')];
  if (session.user && session.user.role === 'admin') links.push(h('a', { href: '/admin' }, 'Admin'));
  links.push(h('button', { type: 'button', class: 'link', onclick: logout }, 'Log out'));
  replace(nav, links);
}

// Logging out ends every session of the user (the API revokes all their tokens).
async function logout() {
  try { await api.post('/v1/auth/logout'); } catch { /* logged out here either way */ }
  session.clear();
  app.navigate('/login');
}

// Same-origin links navigate inside the client; downloads and new tabs are left to the browser.
document.addEventListener('click', (event) => {
  const link = event.target.closest('a[href]');
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  if (link.hasAttribute('download') || link.target === '_blank' || link.origin !== location.origin) return;
  if (link.pathname.startsWith('/v1/')) return;
  event.preventDefault();
  app.navigate(link.pathname + link.search);
});

window.addEventListener('popstate', show);
session.onChange(renderNav);
show();
