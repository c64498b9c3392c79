// Shared pieces of the browser tests: Chromium with a fake camera and microphone, one browser
// context per user, screenshots of every step, small checks (API calls, ffprobe), and the test
// RTSP camera.

import { chromium } from 'playwright-core';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const BASE_URL = process.env.BASE_URL || 'http://127.0.0.1:20180';
export const OUT = process.env.OUT || 'output';
/** The API's binary where cargo put it (CARGO_TARGET_DIR, as tests/e2e/run runs it). */
export const API_BIN = `${process.env.CARGO_TARGET_DIR || fileURLToPath(new URL('../../target', import.meta.url))}`
  + `/${process.env.E2E_PROFILE || 'debug'}/confab-api`;

/** The services tests/e2e/run lists in the environment variable `name` ("id=pid,id=pid"): pid by id. */
export function servicePids(name) {
  return new Map((process.env[name] || '').split(',').map((entry) => {
    const at = entry.lastIndexOf('=');
    return [entry.slice(0, at), Number(entry.slice(at + 1))];
  }));
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--no-sandbox',
      '--autoplay-policy=no-user-gesture-required'],
  });
}

/**
 * A fresh browser context (a separate user) with a page that collects console errors in
 * `page.errors` (each with the URL it came from) and the gateway of every join ticket it got in
 * `page.gateways`. Every RTCPeerConnection the page creates is kept in `window.__e2ePeerConnections`
 * (an init script; the client has no hook for it), so checks can read their statistics.
 */
export async function user(browser, name, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, permissions: ['camera', 'microphone'] });
  await context.addInitScript(() => {
    // The page's peer connections and signaling sockets, for checks and for dropping a socket.
    window.__e2eSockets = [];
    const NativeSocket = window.WebSocket;
    window.WebSocket = class extends NativeSocket {
      constructor(...args) {
        super(...args);
        window.__e2eSockets.push(this);
      }
    };
    const Native = window.RTCPeerConnection;
    if (!Native) return;
    window.__e2ePeerConnections = [];
    window.RTCPeerConnection = class extends Native {
      constructor(...args) {
        super(...args);
        window.__e2ePeerConnections.push(this);
      }
    };
  });
  const page = await context.newPage();
  page.userName = name;
  page.errors = [];
  page.allowedErrors = [];
  page.gateways = [];
  page.on('console', (message) => {
    if (message.type() === 'error') page.errors.push(`${name}: ${message.text()} [${message.location().url}]`);
  });
  page.on('pageerror', (error) => page.errors.push(`${name}: ${error.message}`));
  page.on('response', async (response) => {
    if (response.request().method() !== 'POST' || !/\/v1\/rooms\/[^/]+\/join$/.test(new URL(response.url()).pathname)) return;
    if (response.status() !== 200) return;
    try {
      page.gateways.push((await response.json()).gateway_url);
    } catch { /* the page went away meanwhile */ }
  });
  return page;
}

/** Lets console errors matching `pattern` through `assertNoConsoleErrors` (errors the test provokes). */
export function allowErrors(page, pattern) {
  page.allowedErrors.push(pattern);
}

/** Fails on any console error or uncaught exception that no `allowErrors` pattern covers. */
export function assertNoConsoleErrors(pages) {
  const all = pages.flatMap((page) => page.errors.map((e) => [page, e]));
  const unexpected = all.filter(([page, e]) => !page.allowedErrors.some((p) => p.test(e))).map(([, e]) => e);
  check(unexpected.length === 0, `unexpected console errors:\n  ${unexpected.join('\n  ')}`);
  console.log(`  console errors: ${all.length} provoked on purpose, none unexpected`);
}

/** Bytes of inbound audio over the page's open peer connections (RTP `inbound-rtp`, kind audio). */
export async function audioBytesReceived(page) {
  return page.evaluate(async () => {
    let total = 0;
    for (const pc of window.__e2ePeerConnections || []) {
      if (pc.connectionState === 'closed') continue;
      const stats = await pc.getStats();
      stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'audio') total += s.bytesReceived || 0; });
    }
    return total;
  });
}

/** How many RTCPeerConnections the page has created so far, and how many of them are not closed. */
export async function peerConnections(page) {
  return page.evaluate(() => {
    const all = window.__e2ePeerConnections || [];
    return { created: all.length, open: all.filter((pc) => pc.connectionState !== 'closed').length };
  });
}

/**
 * The remote tile of `peerId`: its state, its video's size, and over 1 s how far its playback
 * time moved and how many new frames it showed (requestVideoFrameCallback).
 */
export async function remoteVideo(page, peerId) {
  return page.evaluate(async (id) => {
    const tile = document.querySelector(`figure.tile[data-peer-id="${CSS.escape(id)}"]`);
    const video = tile && tile.querySelector('video');
    if (!video) return null;
    let frames = 0;
    let handle;
    const count = () => { frames += 1; handle = video.requestVideoFrameCallback(count); };
    handle = video.requestVideoFrameCallback(count);
    const before = video.currentTime;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    video.cancelVideoFrameCallback(handle);
    return {
      state: tile.dataset.state, width: video.videoWidth, height: video.videoHeight,
      advanced: video.currentTime - before, frames, paused: video.paused,
    };
  }, peerId);
}

/**
 * What the page's open peer connections carry: `states`, their connectionStates; `sending`, how
 * many of them send media (outbound-rtp bytes), `bytesSent` the total; `from[peerId]` sums what
 * arrives from each publisher through the media server (the stream id of a subscribe
 * connection's sections is the publisher's peer id): audio bytes, video packets, frames decoded
 * and keyframe requests sent, and the frame width now.
 */
export async function mediaStats(page) {
  return page.evaluate(async () => {
    const result = { open: 0, states: [], sending: 0, bytesSent: 0, from: {} };
    for (const pc of window.__e2ePeerConnections || []) {
      if (pc.connectionState === 'closed') continue;
      result.open += 1;
      result.states.push(pc.connectionState);
      const publisherOfMid = new Map();
      for (const section of (pc.remoteDescription?.sdp || '').split(/\r?\nm=/).slice(1)) {
        const mid = /^a=mid:(\S+)$/m.exec(section);
        const msid = /^a=msid:(\S+) /m.exec(section);
        if (mid && msid) publisherOfMid.set(mid[1], msid[1]);
      }
      let sent = 0;
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'outbound-rtp') sent += s.bytesSent || 0;
        if (s.type !== 'inbound-rtp' || !publisherOfMid.has(s.mid)) return;
        const from = result.from[publisherOfMid.get(s.mid)] ||= { audioBytes: 0, videoPackets: 0, framesDecoded: 0, plis: 0, width: 0 };
        if (s.kind === 'audio') from.audioBytes += s.bytesReceived || 0;
        else {
          from.videoPackets += s.packetsReceived || 0;
          from.framesDecoded += s.framesDecoded || 0;
          from.plis += s.pliCount || 0;
          from.width = Math.max(from.width, s.frameWidth || 0);
        }
      });
      if (sent > 0) result.sending += 1;
      result.bytesSent += sent;
    }
    return result;
  });
}

/**
 * `page` plays each of `peerIds` through the media server: over a second, video frames of each
 * are decoded and audio bytes of each arrive. Returns the frame width each arrives at.
 */
export async function playsThroughSfu(page, peerIds, ms = 20_000) {
  let seen = {};
  let states = [];
  try {
    return await eventually(`${page.userName} to play ${peerIds.length} publishers through the SFU`, async () => {
      const before = await mediaStats(page);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const after = await mediaStats(page);
      states = after.states;
      const grown = (id, field) => (after.from[id]?.[field] ?? 0) - (before.from[id]?.[field] ?? 0);
      seen = Object.fromEntries(peerIds.map((id) => [id, {
        frames: grown(id, 'framesDecoded'), videoPackets: grown(id, 'videoPackets'), plis: grown(id, 'plis'),
        audioBytes: grown(id, 'audioBytes'),
      }]));
      const flowing = peerIds.every((id) => seen[id].frames >= 5 && seen[id].audioBytes > 0);
      return flowing && Object.fromEntries(peerIds.map((id) => [id, after.from[id].width]));
    }, ms, 0);
  } catch (error) {
    throw new Error(`${error.message}; connections ${states.join(', ')}; in the last second, per publisher: ${JSON.stringify(seen)}`);
  }
}

/** Downloads an API path with a bearer token; the body as a Buffer. */
export async function download(path, token) {
  const response = await fetch(BASE_URL + path, { headers: { Authorization: `Bearer ${token}` } });
  if (response.status !== 200) throw new Error(`GET ${path}: ${response.status}`);
  return Buffer.from(await response.arrayBuffer());
}

let shot = 0;
const SCENARIO = basename(process.argv[1] || 'scenario', '.mjs');
/** Saves a screenshot named after the scenario and the step, numbered in order. */
export async function screenshot(page, step) {
  mkdirSync(join(OUT, 'screenshots'), { recursive: true });
  shot += 1;
  const name = `${SCENARIO}-${String(shot).padStart(2, '0')}-${page.userName}-${step}.png`;
  const file = join(OUT, 'screenshots', name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

export const PASSWORD = 'correct horse battery';

/** Fills and sends the sign-up form (the page is on /signup already); the client logs in after. */
export async function signUp(page, name, email) {
  await page.getByRole('heading', { name: 'Sign up' }).waitFor();
  await page.getByLabel('Display name').fill(name);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
}

/** A new user `name` signed up through the form in a browser context of its own, on `Your rooms`. */
export async function signedUpUser(browser, name, viewport) {
  const page = await user(browser, name.toLowerCase(), viewport);
  page.email = uniqueEmail(name.toLowerCase());
  await page.goto(`${BASE_URL}/signup`);
  await signUp(page, name, page.email);
  await page.getByRole('heading', { name: 'Your rooms' }).waitFor();
  return page;
}

/**
 * A room of `owner`'s made through the API with `settings` (name, media, mode, …) and `members`
 * (pages from `signedUpUser`) added; its id.
 */
export async function roomOf(owner, settings, members = []) {
  const token = await tokenOf(owner);
  const created = await apiCall('POST', '/v1/rooms', token, settings);
  check(created.status === 201, `room created (${created.status} ${created.bytes})`);
  for (const member of members) {
    const added = await apiCall('POST', `/v1/rooms/${created.body.id}/members`, token, { email: member.email });
    check(added.status === 201, `${member.userName} added (${added.status} ${added.bytes})`);
  }
  return created.body.id;
}

/**
 * `names` signed up (windows of `viewport`), a room of the first's made with `settings` with the
 * others its members, and everyone in its call: the pages, their peer ids and the room's id.
 */
export async function everyoneInCall(browser, names, settings, viewport) {
  const pages = await Promise.all(names.map((name) => signedUpUser(browser, name, viewport)));
  const [owner, ...others] = pages;
  const roomId = await roomOf(owner, settings, others);
  for (const page of pages) {
    await page.goto(`${BASE_URL}/rooms/${roomId}/call`);
    await joinCall(page);
  }
  const ids = await Promise.all(pages.map(async (page) => {
    await inCall(page);
    return peerIdOf(page);
  }));
  return { pages, ids, roomId };
}

export function uniqueEmail(name) {
  return `${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.org`;
}

/** An admin's access token: an operator account made with the documented CLI, logged in. */
export async function adminToken() {
  const email = uniqueEmail('operator');
  execFileSync(API_BIN, ['admin', 'create', '--email', email], { input: `${PASSWORD}\n` });
  const login = await apiCall('POST', '/v1/auth/login', null, { email, password: PASSWORD });
  check(login.status === 200, `the operator logs in (${login.status})`);
  return login.body.access_token;
}

/** The live media server whose rooms include `roomId` (`GET /v1/admin/sfus`, as admin `token`). */
export async function servingSfu(token, roomId) {
  return eventually(`a live media server to serve room ${roomId}`, async () => {
    const listed = await apiCall('GET', '/v1/admin/sfus', token);
    check(listed.status === 200, `the admin API lists the media servers (${listed.status})`);
    return listed.body.sfus.find((sfu) => sfu.rooms.includes(roomId))?.id;
  }, 20_000);
}

/** Calls the API directly (for checks, never for what the user does in the UI). */
export async function apiCall(method, path, token, body) {
  const response = await fetch(BASE_URL + path, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null, bytes: text };
}

/** The access token a page holds, obtained the way the client does: its refresh token. */
export async function tokenOf(page) {
  const refreshToken = await page.evaluate(() => sessionStorage.getItem('confab.refresh_token'));
  const refreshed = await apiCall('POST', '/v1/auth/refresh', null, { refresh_token: refreshToken });
  if (refreshed.status !== 200) throw new Error(`refresh failed: ${refreshed.status}`);
  await page.evaluate((token) => sessionStorage.setItem('confab.refresh_token', token), refreshed.body.refresh_token);
  return refreshed.body.access_token;
}

/** Streams and duration of a media file, as ffprobe reads it. */
export function probe(file) {
  const json = execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,codec_type:format=duration',
    '-of', 'json', file]).toString();
  const parsed = JSON.parse(json);
  return { codecs: parsed.streams.map((s) => s.codec_name).sort(), duration: Number(parsed.format.duration) };
}

/**
 * Decodes every frame of the file; returns ffmpeg's error output (empty when it decodes cleanly).
 * Frames pass through with the file's own time base: by default ffmpeg re-times them to a guessed
 * frame rate (20 fps for these files), and two frames closer than one such tick (a camera's
 * uneven capture) would make its null output complain about equal timestamps the file does not have.
 */
export function decodeErrors(file) {
  const run = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-fps_mode', 'passthrough', '-enc_time_base', '-1',
    '-f', 'null', '-']);
  if (run.error) throw run.error;
  return run.stderr.toString() + (run.status === 0 ? '' : `ffmpeg exited with ${run.status}`);
}

export function save(name, bytes) {
  const file = join(OUT, name);
  writeFileSync(file, bytes);
  return file;
}

export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

/** Polls `probe` (async) until it returns a truthy value, or fails after `ms`. */
export async function eventually(what, probeFn, ms = 20_000, every = 250) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await probeFn();
    if (last) return last;
    await new Promise((resolve) => setTimeout(resolve, every));
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

/** Clicks `button` ('Join call', 'Rejoin') and waits until in the call with the ticket's gateway known. */
export async function joinCall(page, button = 'Join call') {
  const tickets = page.gateways.length;
  await page.getByRole('button', { name: button }).click();
  await inCall(page);
  await eventually(`${page.userName}'s join ticket`, async () => page.gateways.length > tickets);
}

export async function inCall(page) {
  await page.locator('section.call[data-phase="in-call"][data-peer-id]').waitFor({ timeout: 20_000 });
}

export async function peerIdOf(page) {
  return page.locator('section.call').getAttribute('data-peer-id');
}

/** `page` shows `peerId`'s tile connected with its video playing, and receives audio. */
export async function seesAndHears(page, peerId, name) {
  const video = await eventually(`${page.userName} to see ${name}'s video`, async () => {
    const seen = await remoteVideo(page, peerId);
    return seen && seen.state === 'connected' && seen.width > 0 && seen.advanced > 0.5 && seen.frames >= 5
      && !seen.paused && seen;
  });
  const caption = page.locator(`figure.tile[data-peer-id="${peerId}"] .tile-name`);
  check((await caption.textContent()).startsWith(name), `${name}'s tile is named`);
  const before = await audioBytesReceived(page);
  check(before > 0, `${page.userName} has received audio (${before} bytes)`);
  const after = await eventually(`${page.userName} to keep receiving audio (${before} bytes so far)`, async () => {
    const now = await audioBytesReceived(page);
    return now > before && now;
  }, 2_000);
  console.log(`  ${page.userName} sees ${name} (${video.width}×${video.height}, ${video.frames} frames/s) and receives audio`
    + ` (${before} → ${after} bytes)`);
}

/** tests/rtsp/server.py on `port` (0: a free one), 15 fps with a keyframe every 2 s: `{child, port}`. */
export function startRtspServer(port = 0) {
  const script = fileURLToPath(new URL('../rtsp/server.py', import.meta.url));
  const child = spawn(process.env.RTSP_TEST_PYTHON || '/usr/bin/python3', [script, '--port', String(port), '--fps', '15'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the RTSP test server did not start')), 20_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.startsWith('ready ')) return;
      clearTimeout(timer);
      resolve({ child, port: Number(line.slice(6)) });
    });
    child.on('exit', (code) => reject(new Error(`the RTSP test server exited (${code})`)));
  });
}
