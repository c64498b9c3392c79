// A gateway dies mid-call and the room does not notice. Ann and Bob are in a call through
// different gateways; Bob's gateway is killed with SIGKILL. Bob's page reconnects through the
// other gateway by itself and resumes his place (same peer id). Ann's page never loses Bob: the
// same peer connection, no tile removed, even after the dead gateway's heartbeat has expired
// and the sweep has run; she still sees and hears him. (tests/e2e/run brings the gateway back,
// under its old instance id, before the next scenario.)

import {
  BASE_URL, allowErrors, assertNoConsoleErrors, check, eventually, inCall, joinCall, launch, peerConnections, peerIdOf,
  screenshot, seesAndHears, servicePids, signUp, uniqueEmail, user,
} from '../lib.mjs';

const ROOM = `Night shift ${Date.now() % 100000}`;
/** Past the dead gateway's heartbeat (10 s), a sweep (3 s) and the resume window's remainder (5 s). */
const WATCH_MS = 20_000;

const gatewayPids = servicePids('E2E_GATEWAYS');

const browser = await launch();
try {
  await run();
} finally {
  await browser.close();
}

async function run() {
  const ann = await user(browser, 'ann');
  const bob = await user(browser, 'bob');
  const emails = { ann: uniqueEmail('ann'), bob: uniqueEmail('bob') };

  await bob.goto(`${BASE_URL}/signup`);
  await signUp(bob, 'Bob Baker', emails.bob);
  await bob.getByRole('heading', { name: 'Your rooms' }).waitFor();
  await ann.goto(`${BASE_URL}/signup`);
  await signUp(ann, 'Ann Archer', emails.ann);
  const create = ann.getByRole('region', { name: 'Create a room' });
  await create.getByLabel('Room name').fill(ROOM);
  await create.getByRole('button', { name: 'Create room' }).click();
  await ann.getByRole('row', { name: new RegExp(ROOM) }).getByRole('link', { name: 'Settings' }).click();
  await ann.getByRole('heading', { level: 1, name: ROOM }).waitFor();
  const roomId = new URL(ann.url()).pathname.split('/')[2];
  const addMember = ann.getByRole('region', { name: 'Add a member' });
  await addMember.getByLabel('Email').fill(emails.bob);
  await addMember.getByRole('button', { name: 'Add member' }).click();
  await ann.getByRole('table', { name: `Members of ${ROOM}` }).getByRole('row', { name: /Bob Baker/ }).waitFor();

  await ann.goto(`${BASE_URL}/rooms/${roomId}/call`);
  await joinCall(ann);
  await bob.goto(`${BASE_URL}/rooms/${roomId}/call`);
  await joinCall(bob);
  for (let attempt = 0; ann.gateways.at(-1) === bob.gateways.at(-1); attempt += 1) {
    check(attempt < 4, `both stay on ${ann.gateways.at(-1)}`);
    await bob.getByRole('button', { name: 'Leave' }).click();
    await joinCall(bob, 'Rejoin');
  }
  const annId = await peerIdOf(ann);
  const bobId = await peerIdOf(bob);
  await seesAndHears(ann, bobId, 'Bob');
  await seesAndHears(bob, annId, 'Ann');

  // Bob's gateway dies.
  const doomed = bob.gateways.at(-1);
  const pid = gatewayPids.get(doomed);
  check(pid > 0, `the pid of ${doomed} is known (E2E_GATEWAYS)`);
  const annConnections = await peerConnections(ann);
  const bobSockets = await bob.evaluate(() => window.__e2eSockets.length);
  const killedAt = Date.now();
  // Bob's page may try the dead gateway before the living one: the browser logs that failure.
  allowErrors(bob, new RegExp(`WebSocket connection to '${doomed.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  process.kill(pid, 'SIGKILL');
  console.log(`  killed ${doomed} (pid ${pid}) under Bob`);

  await eventually('Bob\'s page to reconnect through the other gateway', async () => bob.evaluate(
    (before) => window.__e2eSockets.length > before && window.__e2eSockets.at(-1).readyState === WebSocket.OPEN,
    bobSockets), 15_000);
  await inCall(bob);
  console.log(`  Bob back in the call ${Date.now() - killedAt} ms after the kill, through ${bob.gateways.at(-1)}`);
  check(bob.gateways.at(-1) !== doomed, 'Bob reconnected through the living gateway');
  check(await peerIdOf(bob) === bobId, 'Bob resumed the same peer');

  // Ann watches past the point where the dead gateway's peers would have been announced gone.
  const bobTile = ann.locator(`figure.tile[data-peer-id="${bobId}"]`);
  const watchUntil = killedAt + WATCH_MS;
  while (Date.now() < watchUntil) {
    check(await bobTile.count() === 1, 'Bob\'s tile never left Ann\'s page');
    await ann.waitForTimeout(500);
  }
  check((await peerConnections(ann)).created === annConnections.created, 'Ann kept her one connection to Bob');
  await seesAndHears(ann, bobId, 'Bob');
  await seesAndHears(bob, annId, 'Ann');
  await screenshot(ann, 'after-gateway-death');
  assertNoConsoleErrors([ann, bob]);
}
