// The API client: JSON over fetch with the access token, refreshed shortly before it expires
// (and once more on a 401). Errors become ApiError with the API's code and message, which pages
// show as they are: the API's messages are written for people.

import { session } from './session.js';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; resolves to the parsed JSON body (null for an empty one), or a Blob if `blob`. */
export async function request(method, path, body, { auth = true, blob = false } = {}) {
  if (auth) await session.fresh();
  let response = await send(method, path, body, auth);
  if (response.status === 401 && auth && (await session.refresh())) {
    response = await send(method, path, body, auth);
  }
  if (response.ok && blob) return response.blob();
  const text = await response.text();
  const json = text ? safeJson(text) : null;
  if (!response.ok) {
    const error = json && json.error ? json.error : {};
    if (response.status === 401 && auth) session.clear();
    throw new ApiError(response.status, error.code || 'http_' + response.status,
      error.message || `The server answered ${response.status}.`);
  }
  return json;
}

function send(method, path, body, auth) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (auth && session.accessToken) headers.Authorization = 'Bearer ' + session.accessToken;
  return fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    .catch(() => { throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection.'); });
}

function safeJson(text) {
  try { return JSON.parse(text); } catch { return null; }
}

export const api = {
  get: (path) => request('GET', path),
  post: (path, body = {}) => request('POST', path, body),
  patch: (path, body) => request('PATCH', path, body),
  delete: (path) => request('DELETE', path),
  /** A file the API serves only with the access token (recordings): fetched whole, as a Blob. */
  blob: (path) => request('GET', path, undefined, { blob: true }),
};

/** A path with `?key=value` for the defined entries of `query`. */
export function withQuery(path, query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(key, value);
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}
