// Pieces the pages share — forms that report the API's errors, confirm dialogs, tables, dates —
// so every page words and announces things the same way.

import { h, replace } from '../dom.js';

/** How room roles read on screen. */
export const ROLE_NAMES = { owner: 'Owner', moderator: 'Moderator', member: 'Member' };

/** How a room's `media` and `mode` read on screen, in the order the forms offer them. */
export const MEDIA_NAMES = { auto: 'Automatic', mesh: 'Peer to peer only', sfu: 'Media server' };
export const MODE_NAMES = { meeting: 'Meeting: everyone can speak', lecture: 'Lecture: hosts speak, others watch' };

/**
 * The "Connection" and "Format" choices of a room form, which keep its max participants input
 * (`maxInput`) within the limit the API applies: 8 peer to peer, 50 in a meeting, 1000 in a lecture.
 */
export function roomSettingsFields(prefix, maxInput, room = { media: 'auto', mode: 'meeting' }) {
  const media = selectField('Connection', { id: `${prefix}-media`, name: 'media' }, Object.entries(MEDIA_NAMES), room.media);
  const mode = selectField('Format', { id: `${prefix}-mode`, name: 'mode' }, Object.entries(MODE_NAMES), room.mode);
  const limit = () => {
    const chosen = (field) => field.querySelector('select').value;
    maxInput.querySelector('input').max = chosen(media) === 'mesh' ? 8 : chosen(mode) === 'lecture' ? 1000 : 50;
  };
  media.addEventListener('change', limit);
  mode.addEventListener('change', limit);
  limit();
  return [media, mode];
}

/** The API's message as a sentence: "email taken" → "Email taken." */
function describe(error) {
  const text = String((error && error.message) || error || 'Something went wrong.').trim();
  const sentence = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(sentence) ? sentence : sentence + '.';
}

/** An alert with the error's message. */
export function alertBox(error) {
  return h('p', { class: 'error', role: 'alert' }, describe(error));
}

/** A live region for a section's messages: `say(text)` shows one, `fail(error)` an error. */
export function statusArea() {
  const element = h('div', { class: 'status', role: 'status', 'aria-live': 'polite' });
  return {
    element,
    say(text) { replace(element, text ? h('p', {}, text) : null); },
    fail(error) { replace(element, alertBox(error)); },
    clear() { replace(element); },
  };
}

/**
 * A form checked by the browser's constraints, then handed to `onSubmit(values, form)` (values:
 * input name → value). The submit button is disabled meanwhile; errors appear under the form.
 */
export function form({ submit, fields, onSubmit, className = 'stack' }) {
  const button = h('button', { type: 'submit', class: 'primary' }, submit);
  const errors = h('div', { class: 'form-errors' });
  const element = h('form', { class: className, novalidate: true }, fields, h('div', { class: 'row' }, button), errors);
  element.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(errors);
    const invalid = [...element.elements].find((input) => input.willValidate && !input.checkValidity());
    if (invalid) {
      replace(errors, h('p', { class: 'error', role: 'alert' }, `${labelOf(invalid)}: ${invalid.validationMessage}`));
      invalid.focus();
      return;
    }
    const values = Object.fromEntries(new FormData(element));
    const focused = document.activeElement === button;
    button.disabled = true;
    try {
      await onSubmit(values, element);
    } catch (error) {
      replace(errors, alertBox(error));
    } finally {
      button.disabled = false;
      if (focused && button.isConnected) button.focus();
    }
  });
  return element;
}

function labelOf(input) {
  return (input.labels && input.labels[0] && input.labels[0].textContent) || input.name;
}

/** A labelled <select>; `options` are [value, text] pairs. */
export function selectField(label, attrs, options, selected) {
  const id = attrs.id || `f-${attrs.name}`;
  const select = h('select', { id, ...attrs },
    options.map(([value, text]) => h('option', { value, selected: value === selected }, text)));
  return h('div', { class: 'field' }, h('label', { for: id }, label), select);
}

/**
 * Runs `action` for a button: disabled meanwhile (and focused again after, if it had the focus
 * and is still on the page), its error shown in `status` (a statusArea).
 */
export async function act(button, status, action) {
  const focused = document.activeElement === button;
  button.disabled = true;
  status.clear();
  try {
    return await action();
  } catch (error) {
    status.fail(error);
    return undefined;
  } finally {
    button.disabled = false;
    if (focused && button.isConnected) button.focus();
  }
}

/**
 * Asks before something that cannot be undone. A modal <dialog>: Escape or "Cancel" say no,
 * and Cancel has the focus so that Enter is never destructive. With `optionLabel`, the dialog
 * also offers an unticked checkbox for a second, explicit choice, and a yes is `{ option }`
 * (whether it was ticked) rather than `true`.
 */
export function confirmDialog(message, confirmLabel, optionLabel) {
  return new Promise((resolve) => {
    const cancel = h('button', { type: 'button', autofocus: true }, 'Cancel');
    const confirm = h('button', { type: 'button', class: 'danger' }, confirmLabel);
    const text = h('p', { id: 'confirm-text' }, message);
    const box = optionLabel && h('input', { type: 'checkbox', id: 'confirm-option' });
    const option = box && h('p', {}, box, ' ', h('label', { for: 'confirm-option' }, optionLabel));
    const dialog = h('dialog', { 'aria-labelledby': 'confirm-text', class: 'confirm' }, text, option, h('div', { class: 'row' }, cancel, confirm));
    const opener = document.activeElement;
    const finish = (answer) => {
      dialog.close();
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(answer);
    };
    cancel.addEventListener('click', () => finish(false));
    confirm.addEventListener('click', () => finish(box ? { option: box.checked } : true));
    dialog.addEventListener('cancel', (event) => { event.preventDefault(); finish(false); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/**
 * A horizontally scrollable table. `body` is its <tbody> (kept by the caller to add rows to) or
 * an array of <tr>; each row's first cell should be a row header (<th scope="row">).
 */
export function table(caption, headers, body) {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', { class: 'sr-only' }, caption),
      h('thead', {}, h('tr', {}, headers.map((text) => h('th', { scope: 'col' }, text)))),
      Array.isArray(body) ? h('tbody', {}, body) : body));
}

/** A <time> for a table cell, kept on one line. */
export function timeOf(iso) {
  return iso ? h('time', { datetime: iso }, formatDate(iso)) : '—';
}

/** A local, readable date and time. */
export function formatDate(iso) {
  if (!iso) return '—';
  return new Date(iso).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

/** A "Load more" button for keyset pages: calls `load(cursor)` and hides itself on the last page. */
export function pager(load) {
  let cursor = null;
  const status = statusArea();
  const button = h('button', { type: 'button', hidden: true }, 'Load more');
  button.addEventListener('click', () => act(button, status, () => load(cursor)));
  return {
    element: h('div', { class: 'pager' }, button, status.element),
    /** Records the `next_cursor` of the page just shown. */
    set(next) { cursor = next || null; button.hidden = !cursor; },
  };
}
