// A room's RTSP camera in a call through the media server (issue 16): GStreamer's RTSP server
// (tests/rtsp/server.py) plays the camera (H.264 + PCMU) in a room whose `media` is `sfu`. Ann
// and Bob join in Chromium; the camera publishes once, to the SFU, and each of them sees a tile
// named after the camera with a Camera badge whose H.264 video is decoded, arriving on the one
// `subscribe` connection the SFU offered them (getStats: the section whose stream id is the
// camera's peer id, codec H.264), with its PCMU; neither has a mesh connection to the camera (two
// open connections each: publish and subscribe), and the camera is not counted as a person.

import {
  BASE_URL, apiCall, assertNoConsoleErrors, check, eventually, inCall, joinCall, launch, mediaStats, peerIdOf,
  playsThroughSfu, roomOf, screenshot, signedUpUser, startRtspServer, tokenOf,
} from '../lib.mjs';

const CAMERA = 'Loading dock';

const rtsp = await startRtspServer();
const browser = await launch();
try {
  await run();
} finally {
  await browser.close();
  rtsp.child.kill();
}

async function run() {
  const [ann, bob] = await Promise.all(['Ann', 'Bob'].map((name) => signedUpUser(browser, name)));
  const roomId = await roomOf(ann, { name: `Warehouse ${Date.now() % 100000}`, media: 'sfu' }, [bob]);
  const added = await apiCall('POST', `/v1/rooms/${roomId}/cameras`, await tokenOf(ann),
    { name: CAMERA, rtsp_url: `rtsp://127.0.0.1:${rtsp.port}/cam` });
  check(added.status === 201, `camera added (${added.status} ${added.bytes})`);

  const pages = [ann, bob];
  for (const page of pages) {
    await page.goto(`${BASE_URL}/rooms/${roomId}/call`);
    await joinCall(page);
  }
  await Promise.all(pages.map(async (page) => {
    await inCall(page);
    await page.locator('section.call[data-media="sfu"]').waitFor({ timeout: 20_000 });
  }));

  await Promise.all(pages.map(async (page) => {
    // The camera joins once the call is there (the ingest worker's next scan) and publishes.
    const tile = page.locator('figure.tile[data-kind="camera"]');
    await tile.waitFor({ timeout: 30_000 });
    const cameraId = await tile.getAttribute('data-peer-id');
    check((await tile.locator('.tile-name').textContent()) === CAMERA, 'the camera tile is named after the camera');
    check(await tile.getByText('Camera', { exact: true }).isVisible(), 'the camera tile has a Camera badge');
    const widths = await playsThroughSfu(page, [cameraId], 40_000);
    await page.locator(`figure.tile[data-peer-id="${cameraId}"][data-via="sfu"][data-state="connected"]`)
      .waitFor({ timeout: 10_000 });
    const codecs = await eventually(`${page.userName} to get the camera's H.264 and PCMU on the subscribe connection`,
      async () => {
        const found = await codecsFrom(page, cameraId);
        return found.video === 'video/H264' && found.audio === 'audio/PCMU' && found;
      });
    const stats = await mediaStats(page);
    check(stats.open === 2, `${page.userName} has its publish and subscribe connections and no mesh (${stats.open} open)`);
    check(stats.from[cameraId].framesDecoded > 0, 'the camera\'s frames are decoded from the SFU connection');
    const grid = page.locator('.call-grid');
    check(await grid.getAttribute('data-people') === '2', 'the camera is not counted as a person');
    check(/packetization-mode=1/.test(codecs.fmtp), `the camera's H.264 is offered in packetization-mode 1 (${codecs.fmtp})`);
    console.log(`  ${page.userName} sees the camera through the SFU (${codecs.video} ${widths[cameraId]} px wide,`
      + ` ${codecs.audio}, ${codecs.profile}), on connection ${codecs.connection} of ${stats.open}`);
  }));
  await screenshot(ann, 'camera-through-the-sfu');
  assertNoConsoleErrors(pages);
  console.log('  camera through the SFU scenario passed');
}

/**
 * Of the page's open connections, the one whose remote description sends `peerId`'s tracks (a
 * section with `a=msid:<peerId> …`): its index and the codecs its inbound video and audio of
 * that stream arrive in, with the H.264 format parameters (and profile-level-id) offered.
 */
async function codecsFrom(page, peerId) {
  return page.evaluate(async (id) => {
    const open = (window.__e2ePeerConnections || []).filter((pc) => pc.connectionState !== 'closed');
    for (const [index, pc] of open.entries()) {
      const sdp = pc.remoteDescription?.sdp || '';
      const mids = new Set();
      let profile = null;
      let fmtp = null;
      for (const section of sdp.split(/\r?\nm=/).slice(1)) {
        const mid = /^a=mid:(\S+)$/m.exec(section);
        if (!mid || !section.includes(`\na=msid:${id} `)) continue;
        mids.add(mid[1]);
        profile ||= /profile-level-id=(\w+)/.exec(section)?.[0] || null;
        fmtp ||= /^a=fmtp:\d+ (.*packetization-mode.*)$/m.exec(section)?.[1] || null;
      }
      if (mids.size === 0) continue;
      const found = { connection: index + 1, video: null, audio: null, profile, fmtp };
      const stats = [...(await pc.getStats()).values()];
      const codecs = new Map(stats.filter((s) => s.type === 'codec').map((s) => [s.id, s.mimeType]));
      for (const s of stats) {
        if (s.type === 'inbound-rtp' && mids.has(s.mid)) found[s.kind] = codecs.get(s.codecId) || null;
      }
      return found;
    }
    return {};
  }, peerId);
}
