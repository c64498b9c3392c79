// Log in and sign up: one module because the two forms share their fields, their error display
// and where they go afterwards (the `next` page the router was sent away from, else /rooms).

import { request } from '../api.js';
import { session } from '../session.js';
import { h, field } from '../dom.js';
import { form } from './ui.js';

export async function render(main, params, app) {
  const next = safeNext(params.query.get('next'));
  const signup = params.view === 'signup';
  const logIn = async (email, password) => {
    session.accept(await request('POST', '/v1/auth/login', { email, password }, { auth: false }));
    app.navigate(next, { replace: true });
  };
  const other = signup
    ? h('p', {}, 'Already have an account? ', h('a', { href: withNext('/login', next) }, 'Log in'))
    : h('p', {}, 'New here? ', h('a', { href: withNext('/signup', next) }, 'Create an account'));

  main.append(h('h1', {}, signup ? 'Sign up' : 'Log in'), signup ? signupForm(logIn) : loginForm(logIn), other);
}

function loginForm(logIn) {
  return form({
    submit: 'Log in',
    fields: [
      field('Email', { name: 'email', type: 'email', autocomplete: 'username', required: true }),
      field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
    ],
    onSubmit: ({ email, password }) => logIn(email, password),
  });
}

function signupForm(logIn) {
  return form({
    submit: 'Create account',
    fields: [
      field('Display name', { name: 'display_name', autocomplete: 'name', required: true, maxlength: 100 }),
      field('Email', { name: 'email', type: 'email', autocomplete: 'email', required: true }),
      field('Password', {
        name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8,
        'aria-describedby': 'password-hint',
      }),
      h('p', { id: 'password-hint', class: 'muted hint' }, 'At least 8 characters.'),
    ],
    onSubmit: async ({ display_name, email, password }) => {
      await request('POST', '/v1/auth/signup', { email, password, display_name }, { auth: false });
      await logIn(email, password);
    },
  });
}

/** `next` if it is a path on this site ("/rooms/…"), never another origin ("//evil", "https:…"). */
function safeNext(next) {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/rooms';
  const url = new URL(next, location.origin);
  if (url.origin !== location.origin || url.pathname === '/login' || url.pathname === '/signup') return '/rooms';
  return url.pathname + url.search;
}

function withNext(path, next) {
  return next === '/rooms' ? path : `${path}?next=${encodeURIComponent(next)}`;
}
