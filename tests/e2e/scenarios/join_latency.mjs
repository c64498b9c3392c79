// Join latency, measured in the browser (docs/benchmarks.md, "Issue 6 — join latency"): a host
// sits in a call; a guest joins it 20 times (after one warm-up join that is not counted). Each
// time the guest's page is loaded fresh, its camera preview is running, and then "Join call" is
// clicked. The phases come from the call page's `window.confabTimings` (web/js/call/timings.js),
// in ms from the click:
//
//   ws_open        ticket from the API, then the WebSocket to the gateway open
//   welcome        the gateway's welcome
//   offer_sent     the guest's offer left (it is the newcomer, so it offers)
//   answer         the host's answer applied
//   ice_connected  ICE connected
//   connected      ICE and DTLS up (connectionState 'connected')
//   first_frame    the first remote video frame shown (requestVideoFrameCallback)
//
// and durations that are not from the click:
//
//   offer_answer_rtt  offer sent → answer applied, on the guest's page (confabTimings): the
//                     signaling round trip as the page sees it, both browsers' SDP work included
//   signaling_rtt     the two trips over the wire alone, guest → gateway(s) → host for the offer
//                     plus host → gateway(s) → guest for the answer, from the timestamps Chromium
//                     gives each WebSocket frame as a page sends or receives it (DevTools protocol
//                     Network.webSocketFrameSent/Received; one monotonic clock for the browser)
//   offer_wire, answer_wire  the two one-way trips of signaling_rtt
//   host_answer       host: offer frame received → answer frame sent (its SDP work)
//
// Guests alternate between the host's gateway and the other one (the API hands gateways out in
// turn); `signaling_rtt` is also given for each case. For comparison, the gateways' own part of
// each relayed message comes from their `gateway_relay_latency_seconds` histograms.
//
// Prints median and p95 of each and writes them with every sample to $OUT/join_latency.json. It
// asserts that every join completed, never how long it took.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BASE_URL, OUT, assertNoConsoleErrors, check, eventually, launch, screenshot, signUp, uniqueEmail, user,
} from '../lib.mjs';

const JOINS = Number(process.env.JOINS || 20);
/** The gateways' metrics addresses, from the gateway list `run` gives the API. */
const GATEWAYS = (process.env.CONFAB_GATEWAY_URLS || '').split(',').filter(Boolean).map((ws) => {
  const url = new URL(ws);
  return `http://${url.host}/metrics`;
});
const ROOM = `Latency ${Date.now() % 100000}`;
const PHASES = ['ws_open', 'welcome', 'offer_sent', 'answer', 'ice_connected', 'connected', 'first_frame',
  'offer_answer_rtt', 'signaling_rtt', 'offer_wire', 'answer_wire', 'host_answer'];

const browser = await launch();
try {
  await run();
} finally {
  await browser.close();
}

async function run() {
  const host = await user(browser, 'host');
  const guest = await user(browser, 'guest');
  await watchSignals(host);
  await watchSignals(guest);
  const guestEmail = uniqueEmail('guest');

  await guest.goto(`${BASE_URL}/signup`);
  await signUp(guest, 'Guest', guestEmail);
  await guest.getByRole('heading', { name: 'Your rooms' }).waitFor();

  await host.goto(`${BASE_URL}/signup`);
  await signUp(host, 'Host', uniqueEmail('host'));
  const create = host.getByRole('region', { name: 'Create a room' });
  await create.getByLabel('Room name').fill(ROOM);
  await create.getByRole('button', { name: 'Create room' }).click();
  await host.getByRole('row', { name: new RegExp(ROOM) }).getByRole('link', { name: 'Settings' }).click();
  await host.getByRole('heading', { level: 1, name: ROOM }).waitFor();
  const roomId = new URL(host.url()).pathname.split('/')[2];
  const addMember = host.getByRole('region', { name: 'Add a member' });
  await addMember.getByLabel('Email').fill(guestEmail);
  await addMember.getByRole('button', { name: 'Add member' }).click();
  await host.getByRole('row', { name: /Guest/ }).waitFor();
  await host.getByRole('link', { name: 'Join call' }).click();
  await host.getByRole('button', { name: 'Join call' }).click();
  await host.locator('section.call[data-phase="in-call"][data-peer-id]').waitFor();
  await eventually('the host\'s join ticket', async () => host.gateways.length > 0);
  const hostGateway = host.gateways.at(-1);

  const samples = [];
  let relayBefore = null;
  for (let i = 0; i <= JOINS; i += 1) {
    const sample = await measureJoin(host, guest, roomId, hostGateway);
    if (i === 0) {
      await screenshot(guest, 'latency-join');
      relayBefore = await gatewayRelay();
      continue;
    }
    samples.push(sample);
  }
  const relayAfter = await gatewayRelay();
  const relayed = relayAfter.count - relayBefore.count;
  const gatewayRelayStats = {
    messages: relayed,
    mean_ms: relayed ? Math.round(((relayAfter.sum - relayBefore.sum) / relayed) * 1e5) / 100 : null,
    under_1ms: relayed ? Math.round(((relayAfter.le1ms - relayBefore.le1ms) / relayed) * 1000) / 1000 : null,
    under_2_5ms: relayed ? Math.round(((relayAfter.le2_5ms - relayBefore.le2_5ms) / relayed) * 1000) / 1000 : null,
  };
  check(samples.length === JOINS && samples.every((s) => PHASES.every((p) => Number.isFinite(s[p]))),
    `all ${JOINS} joins completed with every mark`);

  const summary = {};
  for (const phase of PHASES) summary[phase] = stats(samples.map((s) => s[phase]));
  for (const same of [true, false]) {
    summary[same ? 'signaling_rtt_same_gateway' : 'signaling_rtt_cross_gateway'] =
      stats(samples.filter((s) => s.same_gateway === same).map((s) => s.signaling_rtt));
  }
  const result = {
    joins: JOINS,
    unit: 'ms',
    measured: new Date().toISOString(),
    note: 'ms from the click on Join call, except the durations offer_answer_rtt, signaling_rtt, '
      + 'offer_wire, answer_wire and host_answer',
    summary,
    gateway_relay: gatewayRelayStats,
    samples,
  };
  writeFileSync(join(OUT, 'join_latency.json'), JSON.stringify(result, null, 2));
  console.log(`  ${JOINS} joins (ms)            median     p95     min     max`);
  for (const [phase, s] of Object.entries(summary)) {
    console.log(`  ${phase.padEnd(28)}${fmt(s.median)}${fmt(s.p95)}${fmt(s.min)}${fmt(s.max)}`);
  }
  if (relayed) {
    console.log(`  gateways' own relay time (gateway_relay_latency_seconds, ${relayed} messages): mean `
      + `${gatewayRelayStats.mean_ms} ms, ${Math.round(gatewayRelayStats.under_1ms * 100)} % under 1 ms`);
  }
  assertNoConsoleErrors([host, guest]);
}

/**
 * The two gateways' `gateway_relay_latency_seconds` histograms added up: sum (s), count, and the
 * counts under 1 ms and 2.5 ms (from the reading gateway to the receiving one's socket).
 */
async function gatewayRelay() {
  const total = { sum: 0, count: 0, le1ms: 0, le2_5ms: 0 };
  for (const url of GATEWAYS) {
    const text = await (await fetch(url)).text();
    const value = (pattern) => {
      const line = text.split('\n').find((l) => pattern.test(l));
      return line ? Number(line.split(' ').at(-1)) : 0;
    };
    total.sum += value(/^gateway_relay_latency_seconds_sum(\{[^}]*\})? /);
    total.count += value(/^gateway_relay_latency_seconds_count(\{[^}]*\})? /);
    total.le1ms += value(/^gateway_relay_latency_seconds_bucket\{le="0\.001"\} /);
    total.le2_5ms += value(/^gateway_relay_latency_seconds_bucket\{le="0\.0025"\} /);
  }
  return total;
}

/** One join of `guest` into the host's call, from a freshly loaded page; its phases in ms. */
async function measureJoin(host, guest, roomId, hostGateway) {
  await guest.goto(`${BASE_URL}/rooms/${roomId}/call`);
  // The camera preview runs before the click, as it does for a user who looks at it first.
  await eventually('the guest\'s preview', () => guest.evaluate(() => {
    const video = document.querySelector('figure.tile-local video');
    return Boolean(video && video.videoWidth > 0 && !video.paused);
  }), 10_000, 50);
  host.signals.length = 0;
  guest.signals.length = 0;
  await guest.getByRole('button', { name: 'Join call' }).click();
  const marks = await eventually('the guest\'s first remote frame', () => guest.evaluate(() => {
    const t = window.confabTimings;
    return t && t.first_remote_frame && t.first_connected ? JSON.parse(JSON.stringify(t)) : null;
  }), 15_000, 50);
  const guestId = await guest.locator('section.call').getAttribute('data-peer-id');
  const hostId = await host.locator('section.call').getAttribute('data-peer-id');
  const wire = {
    offerSent: guest.signals.find((f) => f.sent && f.sdp === 'offer' && f.to === hostId),
    offerReceived: host.signals.find((f) => !f.sent && f.sdp === 'offer' && f.from === guestId),
    answerSent: host.signals.find((f) => f.sent && f.sdp === 'answer' && f.to === guestId),
    answerReceived: guest.signals.find((f) => !f.sent && f.sdp === 'answer' && f.from === hostId),
  };
  check(Object.values(wire).every(Boolean), `the offer and answer frames were seen: ${JSON.stringify(wire)}`);
  const gateway = guest.gateways.at(-1);

  await guest.getByRole('button', { name: 'Leave' }).click();
  await guest.getByText('You left the call.').waitFor();
  await eventually('the host to see the guest leave',
    () => host.locator('figure.tile:not(.tile-local)').count().then((n) => n === 0), 10_000, 50);

  const from = (name) => marks[name] - marks.join_clicked;
  const offerAnswer = marks.first_answer_received - marks.first_offer_sent;
  return {
    ws_open: from('ws_open'),
    welcome: from('welcome'),
    offer_sent: from('first_offer_sent'),
    answer: from('first_answer_received'),
    ice_connected: from('first_ice_connected'),
    connected: from('first_connected'),
    first_frame: from('first_remote_frame'),
    offer_answer_rtt: offerAnswer,
    signaling_rtt: (wire.offerReceived.t - wire.offerSent.t) + (wire.answerReceived.t - wire.answerSent.t),
    offer_wire: wire.offerReceived.t - wire.offerSent.t,
    answer_wire: wire.answerReceived.t - wire.answerSent.t,
    host_answer: wire.answerSent.t - wire.offerReceived.t,
    same_gateway: gateway === hostGateway,
  };
}

/**
 * Keeps the SDP-carrying `signal` frames of the page's WebSockets in `page.signals` as
 * {t (ms, the browser's monotonic clock), sent, sdp ('offer'/'answer'), to, from}.
 */
async function watchSignals(page) {
  page.signals = [];
  const cdp = await page.context().newCDPSession(page);
  const keep = (sent) => ({ timestamp, response }) => {
    if (!response.payloadData.includes('"sdp"')) return;
    let frame;
    try { frame = JSON.parse(response.payloadData).signal; } catch { return; }
    if (!frame || !frame.sdp) return;
    page.signals.push({ t: timestamp * 1000, sent, sdp: frame.sdp.type, to: frame.to, from: frame.from });
  };
  cdp.on('Network.webSocketFrameSent', keep(true));
  cdp.on('Network.webSocketFrameReceived', keep(false));
  await cdp.send('Network.enable');
}

/** Median and p95 by nearest rank, min and max, rounded to 0.1 ms. */
function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (q) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
  const round = (v) => (v === undefined ? null : Math.round(v * 10) / 10);
  return { n: sorted.length, median: round(rank(0.5)), p95: round(rank(0.95)), min: round(sorted[0]), max: round(sorted.at(-1)) };
}

function fmt(value) {
  return (value === null ? '—' : value.toFixed(1)).padStart(8);
}
