// A media server dies mid-call and the call goes on through the other (issue 17). Ann, Bob and
// Cleo meet in a room whose `media` is `sfu`; the media server the room was placed on (read from
// the admin API, `GET /v1/admin/sfus`) is killed with SIGKILL. The room moves to the other
// instance and every browser plays the two others' video and hears their audio through it again,
// without anyone leaving: the same peer ids, no tile removed. How long media took to come back
// is printed (the aim in docs/operations.md is 5 s). (tests/e2e/run brings the killed server
// back, under its old instance id, before the next scenario.)

import {
  adminToken, assertNoConsoleErrors, check, everyoneInCall, launch, peerIdOf, playsThroughSfu, screenshot,
  servicePids, servingSfu,
} from '../lib.mjs';

const NAMES = ['Ann', 'Bob', 'Cleo'];
const VIEWPORT = { width: 800, height: 600 };

const sfuPids = servicePids('E2E_SFUS');

const browser = await launch();
try {
  await run();
} finally {
  await browser.close();
}

async function run() {
  const operator = await adminToken();
  const room = { name: `Failover ${Date.now() % 100000}`, media: 'sfu' };
  const { pages, ids, roomId } = await everyoneInCall(browser, NAMES, room, VIEWPORT);
  const [owner] = pages;
  await Promise.all(pages.map((page, i) => playsThroughSfu(page, ids.filter((_, j) => j !== i))));

  const serving = await servingSfu(operator, roomId);
  check(sfuPids.has(serving), `the room is on a media server of this stack (${serving})`);
  console.log(`  the call runs through ${serving}; killing it`);
  process.kill(sfuPids.get(serving), 'SIGKILL');
  const killed = Date.now();

  const backAfter = await Promise.all(pages.map(async (page, i) => {
    await playsThroughSfu(page, ids.filter((_, j) => j !== i), 30_000);
    return Date.now() - killed;
  }));
  const now = await servingSfu(operator, roomId);
  check(now !== serving, `the room moved to the other media server (${now})`);
  for (const [i, page] of pages.entries()) {
    check(await peerIdOf(page) === ids[i], `${page.userName} kept their place in the call (${ids[i]})`);
    const tiles = await page.locator('figure.tile:not(.tile-local)').count();
    check(tiles === NAMES.length - 1, `${page.userName} still has a tile for each of the others (${tiles})`);
  }
  console.log(`  media back through ${now} for everyone, ${backAfter.map((ms) => `${ms} ms`).join(', ')} after the kill`
    + ' (measured to the first second of ≥ 5 frames from each of the others)');
  await screenshot(owner, 'after-the-media-server-died');
  assertNoConsoleErrors(pages);
}
