// The signaling client: one WebSocket to a gateway (docs/protocol.md), kept alive across network
// drops and gateway restarts.
//
// - Each connection needs a fresh single-use ticket: `session.fresh()`, then
//   `POST /v1/rooms/{id}/join`; the ticket goes in the `confab.ticket.<ticket>` subprotocol next
//   to `confab.v1`. A 401/403/404 there ends the call (logged out, not a member, no such room);
//   other failures are retried.
// - After an unplanned close the client reconnects with backoff (0.3, 1, 2, 4, then every 8 s,
//   ±20 %), passing the last `resume_token` as `?resume=`. The gateway keeps the peer for 15 s:
//   a `welcome` with the same `peer_id` means resumed (the other peers noticed nothing and the
//   peer connections stay); a different one means the resume failed and the caller rebuilds.
// - Refusals no reconnect can fix end the call: `room_full`, `too_many_connections`, `kicked`,
//   `room_closed`. `unavailable` is retried.
// - Keep-alive: the gateway pings at the WebSocket level (the browser answers); a JSON `ping` from
//   it is answered with a `pong` carrying its timestamp. The client sends its own `ping` every
//   10 s and treats 25 s without any frame as a dead connection (a dropped network often leaves a
//   socket open for minutes).
// - Outgoing frames pass a token bucket under the gateway's limit (20/s, bursts of 50), so a
//   flurry of ICE candidates is delayed instead of dropped. Frames queued while reconnecting are
//   sent after a resumed `welcome` and dropped after a fresh one (they were for the old peer id).
//
// Nothing here logs frames: they carry SDP, candidates and tokens.

import { api, ApiError } from '../api.js';
import { session } from '../session.js';
import { mark } from './timings.js';

const SUBPROTOCOL = 'confab.v1';
const BACKOFF_MS = [300, 1000, 2000, 4000, 8000];
const PING_EVERY_MS = 10_000;
const DEAD_AFTER_MS = 25_000;
const RATE_PER_S = 15;
const BURST = 40;
/** Close code for a socket this client gave up on; not 1000, so the gateway keeps the peer for a resume. */
const CLOSE_ABANDONED = 4000;

/** Error codes refusing a connection for good. */
const FATAL_ERRORS = new Set(['room_full', 'too_many_connections']);

export class Signaling {
  /**
   * `handlers`: onMessage(type, body, info) for every server message (info.resumed on welcome),
   * onStatus('connecting' | 'open' | 'reconnecting', detail), onEnd(reason) once when the call
   * cannot go on: {kind: 'join', error: ApiError} | {kind: 'refused', code, message} |
   * {kind: 'kicked', reason} | {kind: 'room_closed'}.
   */
  constructor(roomId, handlers) {
    this.roomId = roomId;
    this.handlers = handlers;
    this.ws = null;
    this.peerId = null;
    this.resumeToken = null;
    this.welcomed = false;
    this.everWelcomed = false;
    this.stopped = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastHeard = 0;
    this.ending = null;
    this.queue = [];
    this.tokens = BURST;
    this.refilledAt = performance.now();
    this.pumpTimer = null;
    this.onOnline = () => { if (this.retryTimer) this.retryNow(); };
  }

  /** Connects; `resume` ({peerId, resumeToken}) rejoins a call this tab was in before a reload. */
  start(resume) {
    if (resume) {
      this.peerId = resume.peerId;
      this.resumeToken = resume.resumeToken;
    }
    window.addEventListener('online', this.onOnline);
    this.connect();
  }

  /** Queues one client message, e.g. send('signal', {to, sdp}). */
  send(type, body) {
    if (this.stopped) return;
    this.queue.push(JSON.stringify({ [type]: body }));
    this.pump();
  }

  /** Leaves on purpose: `bye`, close 1000; the others see `peer_left` `left` at once. */
  leave() {
    const ws = this.ws;
    this.stop();
    if (ws && ws.readyState === WebSocket.OPEN) {
      try { ws.send(JSON.stringify({ bye: {} })); } catch { /* closing anyway */ }
      ws.close(1000, 'left');
    } else if (ws) {
      ws.close(1000, 'left');
    }
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.pumpTimer);
    clearInterval(this.pingTimer);
    this.retryTimer = null;
    window.removeEventListener('online', this.onOnline);
    if (this.ws) this.detach(this.ws);
    this.ws = null;
    this.queue = [];
  }

  async connect() {
    this.retryTimer = null;
    if (this.stopped) return;
    this.handlers.onStatus(this.everWelcomed ? 'reconnecting' : 'connecting', { attempt: this.attempt });
    let ticket;
    try {
      await session.fresh();
      ticket = await api.post(`/v1/rooms/${encodeURIComponent(this.roomId)}/join`);
    } catch (error) {
      if (this.stopped) return;
      if (error instanceof ApiError && [401, 403, 404].includes(error.status)) return this.end({ kind: 'join', error });
      return this.retry();
    }
    if (this.stopped) return;
    let url = ticket.gateway_url;
    if (this.resumeToken) url += (url.includes('?') ? '&' : '?') + 'resume=' + encodeURIComponent(this.resumeToken);
    let ws;
    try {
      ws = new WebSocket(url, [SUBPROTOCOL, 'confab.ticket.' + ticket.ticket]);
    } catch {
      return this.retry();
    }
    this.ws = ws;
    this.welcomed = false;
    this.ending = null;
    ws.onopen = () => {
      mark('ws_open');
      this.lastHeard = Date.now();
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.keepAlive(ws), PING_EVERY_MS);
    };
    ws.onmessage = (event) => this.receive(ws, event.data);
    ws.onclose = (event) => this.closed(ws, event);
  }

  receive(ws, data) {
    if (ws !== this.ws) return;
    this.lastHeard = Date.now();
    const message = parse(data);
    if (!message) return;
    const { type, body } = message;
    switch (type) {
      case 'welcome': {
        const resumed = Boolean(this.peerId) && body.peer_id === this.peerId;
        this.peerId = body.peer_id;
        this.resumeToken = body.resume_token || null;
        this.welcomed = true;
        this.everWelcomed = true;
        this.attempt = 0;
        if (!resumed) this.queue = [];
        mark('welcome');
        this.handlers.onStatus('open', {});
        this.handlers.onMessage(type, body, { resumed });
        this.pump();
        return;
      }
      case 'ping':
        this.send('pong', { timestamp_ms: body.timestamp_ms || '0' });
        return;
      case 'pong':
        return;
      case 'error':
        if (FATAL_ERRORS.has(body.code)) this.ending = { kind: 'refused', code: body.code, message: body.message || '' };
        break;
      case 'kicked':
        this.ending = { kind: 'kicked', reason: body.reason || 'kicked' };
        break;
      case 'room_closed':
        this.ending = { kind: 'room_closed' };
        break;
      default:
        break;
    }
    this.handlers.onMessage(type, body, {});
  }

  closed(ws, event) {
    if (ws !== this.ws) return;
    this.detach(ws);
    this.ws = null;
    clearInterval(this.pingTimer);
    if (this.stopped) return;
    if (!this.ending) {
      // A close without the message before it (it may have been lost): the reason text says why.
      if (event.code === 1008 && ['kicked', 'room_full'].includes(event.reason)) {
        this.ending = event.reason === 'kicked' ? { kind: 'kicked', reason: 'kicked' } : { kind: 'refused', code: 'room_full', message: '' };
      } else if (event.code === 1000 && event.reason === 'room_closed') {
        this.ending = { kind: 'room_closed' };
      }
    }
    if (this.ending) return this.end(this.ending);
    // 1012: the gateway is restarting; reconnect at once (to another gateway, by a new ticket).
    if (event.code === 1012) this.attempt = 0;
    this.retry();
  }

  keepAlive(ws) {
    if (ws !== this.ws || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastHeard > DEAD_AFTER_MS) {
      // Give up on it without waiting for a closing handshake that may never come.
      this.detach(ws);
      this.ws = null;
      clearInterval(this.pingTimer);
      try { ws.close(CLOSE_ABANDONED, 'unresponsive'); } catch { /* already closing */ }
      this.retry();
      return;
    }
    this.send('ping', { timestamp_ms: String(Date.now()) });
  }

  retry() {
    if (this.stopped) return;
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.handlers.onStatus(this.everWelcomed ? 'reconnecting' : 'connecting', { attempt: this.attempt, delay });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  retryNow() {
    clearTimeout(this.retryTimer);
    this.connect();
  }

  end(reason) {
    this.stop();
    this.handlers.onEnd(reason);
  }

  detach(ws) {
    ws.onopen = null;
    ws.onmessage = null;
    ws.onclose = null;
  }

  /** Sends queued frames as the token bucket allows; only on a welcomed connection. */
  pump() {
    clearTimeout(this.pumpTimer);
    this.pumpTimer = null;
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || !this.welcomed) return;
    const now = performance.now();
    this.tokens = Math.min(BURST, this.tokens + ((now - this.refilledAt) / 1000) * RATE_PER_S);
    this.refilledAt = now;
    while (this.queue.length && this.tokens >= 1) {
      ws.send(this.queue.shift());
      this.tokens -= 1;
    }
    if (this.queue.length) {
      const wait = Math.ceil(((1 - this.tokens) / RATE_PER_S) * 1000);
      this.pumpTimer = setTimeout(() => this.pump(), Math.max(wait, 10));
    }
  }
}

/** A server frame as {type, body}, field names in snake_case; null if it is not one. */
function parse(data) {
  if (typeof data !== 'string') return null;
  let value;
  try { value = JSON.parse(data); } catch { return null; }
  if (!value || typeof value !== 'object' || Array.isArray(value)) return null;
  const keys = Object.keys(value);
  if (keys.length !== 1) return null;
  const body = value[keys[0]];
  return { type: snake(keys[0]), body: snakeKeys(body && typeof body === 'object' ? body : {}) };
}

function snake(name) {
  return name.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
}

/** Readers accept lowerCamelCase too (proto3 JSON); SDP and candidate strings are left alone. */
function snakeKeys(value) {
  if (Array.isArray(value)) return value.map(snakeKeys);
  if (!value || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([key, inner]) => [snake(key), snakeKeys(inner)]));
}
