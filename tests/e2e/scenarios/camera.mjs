// Issue 8: a room's RTSP camera appears in its call. GStreamer's RTSP server (tests/rtsp/server.py)
// plays the camera (H.264 + PCMU); Ann adds it to her room (the API, as the room page has no
// camera form yet), joins the call in Chromium, and sees a tile named after the camera with a
// Camera badge whose H.264 video plays, hears its audio, and sends it nothing; the camera is not
// counted as a person. The RTSP server is stopped mid-call: the camera's status shows it down and
// counts the reconnects; restarted, the camera plays in the call again. When Ann leaves, the room
// is empty and the camera leaves the call.

import {
  BASE_URL, apiCall, assertNoConsoleErrors, check, eventually, launch, remoteVideo, screenshot, signUp,
  startRtspServer, tokenOf, uniqueEmail, user,
} from '../lib.mjs';

const ROOM = `Front office ${Date.now() % 100000}`;
const CAMERA = 'Front door';

let rtsp = await startRtspServer();
const browser = await launch();
try {
  await run();
} finally {
  await browser.close();
  rtsp.child.kill();
}

async function run() {
  const ann = await user(browser, 'ann');
  await ann.goto(`${BASE_URL}/signup`);
  await signUp(ann, 'Ann Archer', uniqueEmail('ann'));
  await ann.getByRole('heading', { name: 'Your rooms' }).waitFor();
  const create = ann.getByRole('region', { name: 'Create a room' });
  await create.getByLabel('Room name').fill(ROOM);
  await create.getByRole('button', { name: 'Create room' }).click();
  const row = ann.getByRole('row', { name: new RegExp(ROOM) });
  await row.waitFor();
  await row.getByRole('link', { name: 'Settings' }).click();
  await ann.getByRole('heading', { level: 1, name: ROOM }).waitFor();
  const roomId = new URL(ann.url()).pathname.split('/')[2];
  const token = await tokenOf(ann);
  const added = await apiCall('POST', `/v1/rooms/${roomId}/cameras`, token,
    { name: CAMERA, rtsp_url: `rtsp://127.0.0.1:${rtsp.port}/cam` });
  check(added.status === 201, `camera added (${added.status} ${added.bytes})`);

  await ann.getByRole('link', { name: 'Join call' }).click();
  await ann.getByRole('button', { name: 'Join call' }).click();
  await ann.locator('section.call[data-phase="in-call"][data-peer-id]').waitFor({ timeout: 20_000 });

  // The camera joins once the call is there (the ingest worker's next scan) and offers.
  const tile = ann.locator('figure.tile[data-kind="camera"]');
  await tile.waitFor({ timeout: 30_000 });
  const cameraId = await tile.getAttribute('data-peer-id');
  check((await tile.locator('.tile-name').textContent()) === CAMERA, 'the camera tile is named after the camera');
  check(await tile.getByText('Camera', { exact: true }).isVisible(), 'the camera tile has a Camera badge');
  const video = await eventually('Ann to see the camera\'s video', async () => {
    const seen = await remoteVideo(ann, cameraId);
    return seen && seen.state === 'connected' && seen.width === 320 && seen.frames >= 5 && seen.advanced > 0.5
      && !seen.paused && seen;
  }, 30_000);
  console.log(`  Ann sees the camera (${video.width}×${video.height}, ${video.frames} frames/s)`);
  const grid = ann.locator('.call-grid');
  check(await grid.getAttribute('data-people') === '1', 'the camera is not counted as a person');
  check(await grid.getAttribute('data-count') === '2', 'Ann\'s tile and the camera\'s');

  const media = await eventually('the camera\'s H.264 and PCMU to arrive', async () => {
    const stats = await cameraStats(ann);
    return stats.videoCodec === 'video/H264' && stats.audioCodec === 'audio/PCMU' && stats.audioBytes > 0 && stats;
  });
  check(media.bytesSent === 0, `Ann sends the camera nothing (${media.bytesSent} bytes)`);
  console.log(`  the camera's media: ${media.videoCodec} + ${media.audioCodec}; Ann sends it nothing`);
  await screenshot(ann, 'camera-in-call');

  // The camera's server goes away mid-call: the status says so and counts the attempts to
  // reconnect; once it is back at the same address, the camera's video plays in the call again.
  const statusPath = `/v1/rooms/${roomId}/cameras/${added.body.id}/status`;
  const cameraStatus = async () => (await apiCall('GET', statusPath, token)).body;
  const reconnectsBefore = (await cameraStatus()).reconnects;
  rtsp.child.kill();
  const down = await eventually('the status to show the camera down and retrying', async () => {
    const status = await cameraStatus();
    return status.state !== 'connected' && status.last_error && status.reconnects > reconnectsBefore && status;
  }, 40_000);
  console.log(`  RTSP server stopped: ${down.state}, "${down.last_error}", ${down.reconnects} reconnects`);
  rtsp = await startRtspServer(rtsp.port);
  await eventually('the camera to be connected again', async () => (await cameraStatus()).state === 'connected', 60_000);
  const again = await eventually('Ann to see the camera\'s video again', async () => {
    const id = await ann.locator('figure.tile[data-kind="camera"]').getAttribute('data-peer-id', { timeout: 1000 })
      .catch(() => null);
    const seen = id && await remoteVideo(ann, id);
    return seen && seen.state === 'connected' && seen.frames >= 5 && seen.advanced > 0.5 && seen;
  }, 40_000);
  const up = await cameraStatus();
  check(up.reconnects > reconnectsBefore, `the reconnects are counted (${up.reconnects})`);
  console.log(`  RTSP server back: the camera plays again (${again.width}×${again.height}), ${up.reconnects} reconnects`);
  await screenshot(ann, 'camera-back');

  // Ann leaves: the room is empty, the camera leaves the call.
  await ann.getByRole('button', { name: 'Leave' }).click();
  await eventually('the camera to leave the empty room', async () => {
    const participants = await apiCall('GET', `/v1/rooms/${roomId}/participants`, token);
    return participants.status === 200 && participants.body.participants.length === 0;
  }, 20_000);
  assertNoConsoleErrors([ann]);
  console.log('  camera scenario passed');
}

/** What Ann's connections receive and send: the codecs of inbound media, bytes in and out. */
async function cameraStats(page) {
  return page.evaluate(async () => {
    const result = { videoCodec: null, audioCodec: null, audioBytes: 0, bytesSent: 0 };
    for (const pc of window.__e2ePeerConnections || []) {
      if (pc.connectionState === 'closed') continue;
      const stats = [...(await pc.getStats()).values()];
      const codecs = new Map(stats.filter((s) => s.type === 'codec').map((s) => [s.id, s.mimeType]));
      for (const s of stats) {
        if (s.type === 'inbound-rtp' && s.kind === 'video') result.videoCodec = codecs.get(s.codecId) || null;
        if (s.type === 'inbound-rtp' && s.kind === 'audio') {
          result.audioCodec = codecs.get(s.codecId) || null;
          result.audioBytes += s.bytesReceived || 0;
        }
        if (s.type === 'outbound-rtp') result.bytesSent += s.bytesSent || 0;
      }
    }
    return result;
  });
}
