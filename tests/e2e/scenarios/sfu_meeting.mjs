// A meeting through the media server (issue 16): a room whose `media` is `sfu`, five browsers
// in its call. Every browser plays the four others' video (frames decoded, per publisher) and
// receives their audio, all on the one `subscribe` connection the SFU offered it; and uploads
// exactly once: one peer connection sends media (the `publish` one) and no mesh connection is
// open. The windows are small, so each tile asks the SFU (`track_request`) for less than the
// camera's full picture; the widths that arrive are printed. The dominant speaker the SFU names
// is outlined. Then Eve's window shrinks to a phone's width and less than its height, so the
// lower tiles are out of sight: their video stops (`paused`) while their audio goes on, and
// comes back when the window grows again. And the SFU estimates each browser's downlink from the
// browser's TWCC feedback: its estimates rise above where they start.

import {
  assertNoConsoleErrors, check, eventually, everyoneInCall, launch, mediaStats, playsThroughSfu, screenshot,
} from '../lib.mjs';

const NAMES = ['Ann', 'Bob', 'Cleo', 'Dev', 'Eve'];
const VIEWPORT = { width: 800, height: 600 };

const browser = await launch();
try {
  await run();
} finally {
  await browser.close();
}

async function run() {
  const room = { name: `Stand-up ${Date.now() % 100000}`, media: 'sfu' };
  const { pages, ids } = await everyoneInCall(browser, NAMES, room, VIEWPORT);
  const [owner] = pages;

  await Promise.all(pages.map(async (page, i) => {
    await page.locator('section.call[data-media="sfu"]').waitFor({ timeout: 20_000 });
    const others = ids.filter((_, j) => j !== i);
    const widths = await playsThroughSfu(page, others);
    for (const id of others) {
      await page.locator(`figure.tile[data-peer-id="${id}"][data-via="sfu"][data-state="connected"]`).waitFor();
    }
    const stats = await mediaStats(page);
    check(stats.sending === 1, `${page.userName} uploads on exactly one connection (${stats.sending})`);
    check(stats.open === 2, `${page.userName} has its publish and subscribe connections and no mesh (${stats.open} open)`);
    console.log(`  ${page.userName} plays the 4 others through the SFU (frame widths ${Object.values(widths).join(', ')}),`
      + ` one upload of ${stats.bytesSent} bytes`);
  }));
  await screenshot(owner, 'five-through-the-sfu');
  await eventually('the SFU to estimate a downlink above the initial 1 Mbit/s from TWCC feedback', async () => {
    const above = await estimatesAbove(1.5e6);
    console.log(`  ${above} of the SFU's subscriber estimates so far above 1.5 Mbit/s`);
    return above > 0;
  }, 20_000, 2_000);

  const eve = pages.at(-1);
  await eve.setViewportSize({ width: 390, height: 300 });
  const hidden = await eve.evaluate(() => [...document.querySelectorAll('figure.tile:not(.tile-local)')]
    .filter((tile) => tile.getBoundingClientRect().top >= innerHeight).map((tile) => tile.dataset.peerId));
  check(hidden.length > 0, 'tiles are out of sight in a short window');
  // Paused: no video packets in a second (a straggler or a retransmission aside), audio going on.
  let seen = [];
  await eventually(`Eve's out-of-sight tiles to get no video but still audio`, async () => {
    const before = await mediaStats(eve);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const after = await mediaStats(eve);
    seen = hidden.map((id) => ({ videoPackets: after.from[id].videoPackets - before.from[id].videoPackets,
      audioBytes: after.from[id].audioBytes - before.from[id].audioBytes }));
    return seen.every((one) => one.videoPackets <= 2 && one.audioBytes > 0);
  }, 20_000, 0).catch((error) => { throw new Error(`${error.message}: ${JSON.stringify(seen)}`); });
  await eve.setViewportSize(VIEWPORT);
  await playsThroughSfu(eve, hidden);
  console.log(`  eve's ${hidden.length} tiles out of sight were paused and came back`);
  assertNoConsoleErrors(pages);
}

// How many of the subscriber bandwidth estimates the media servers have recorded (one per
// subscriber a second) were above `bound`, one of the histogram's bucket bounds.
async function estimatesAbove(bound) {
  let above = 0;
  for (const url of process.env.SFU_OPS_URLS.split(',')) {
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const bucket = (le) => Number(metrics.match(new RegExp(`^sfu_subscriber_estimate_bits_per_second_bucket\\{le="${le}"\\} (\\d+)`, 'm'))?.[1] ?? 0);
    above += bucket('\\+Inf') - bucket(String(bound));
  }
  return above;
}
