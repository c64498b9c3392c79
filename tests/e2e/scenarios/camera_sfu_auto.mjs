// A room's RTSP camera follows an `auto` room between the mesh and the media server (issue 16):
// with Ann and Bob in the call the camera offers each of them a connection of its own; Cleo joins,
// the call moves to the SFU, and the camera publishes there instead: Ann's camera tile is fed
// through the SFU and her mesh connection to the camera closes. Cleo leaves, the SFU leaves, and
// the camera offers Ann a mesh connection again, which her camera tile plays.

import {
  BASE_URL, apiCall, assertNoConsoleErrors, check, eventually, inCall, joinCall, launch, mediaStats, peerIdOf,
  playsThroughSfu, remoteVideo, roomOf, screenshot, signedUpUser, startRtspServer, tokenOf,
} from '../lib.mjs';

const rtsp = await startRtspServer();
const browser = await launch();
try {
  await run();
} finally {
  await browser.close();
  rtsp.child.kill();
}

async function run() {
  const [ann, bob, cleo] = await Promise.all(['Ann', 'Bob', 'Cleo'].map((name) => signedUpUser(browser, name)));
  const roomId = await roomOf(ann, { name: `Depot ${Date.now() % 100000}`, media: 'auto' }, [bob, cleo]);
  const added = await apiCall('POST', `/v1/rooms/${roomId}/cameras`, await tokenOf(ann),
    { name: 'Side gate', rtsp_url: `rtsp://127.0.0.1:${rtsp.port}/cam` });
  check(added.status === 201, `camera added (${added.status} ${added.bytes})`);
  for (const page of [ann, bob, cleo]) await page.goto(`${BASE_URL}/rooms/${roomId}/call`);

  await joinCall(ann);
  await joinCall(bob);
  const bobId = await peerIdOf(bob);
  const cameraTile = ann.locator('figure.tile[data-kind="camera"]');
  await cameraTile.waitFor({ timeout: 30_000 });
  const cameraId = await cameraTile.getAttribute('data-peer-id');
  const plays = (via) => eventually(`Ann to play the camera through the ${via}`, async () => {
    if (await cameraTile.getAttribute('data-via') !== via) return false;
    const seen = await remoteVideo(ann, cameraId);
    return seen && seen.state === 'connected' && seen.frames >= 5 && seen.advanced > 0.5 && seen;
  }, 40_000);
  await plays('mesh');
  check(await ann.locator('section.call').getAttribute('data-media') === 'mesh', 'two people: a mesh');
  console.log('  two people: Ann plays the camera on its own connection');

  await joinCall(cleo);
  const cleoId = await peerIdOf(cleo);
  await ann.locator('section.call[data-media="sfu"]').waitFor({ timeout: 20_000 });
  await plays('sfu');
  await playsThroughSfu(ann, [cameraId, bobId, cleoId], 40_000);
  const throughSfu = await eventually('Ann\'s mesh connections (the camera\'s too) to close', async () => {
    const now = await mediaStats(ann);
    return now.open === 2 && now;
  }, 15_000);
  check(throughSfu.from[cameraId]?.framesDecoded > 0, 'the camera\'s frames are decoded from the SFU connection');
  console.log('  three people: Ann plays the camera through the SFU, no mesh connection left');
  await screenshot(ann, 'camera-follows-the-call-to-the-sfu');

  await cleo.getByRole('button', { name: 'Leave' }).click();
  await ann.locator('section.call[data-media="mesh"]').waitFor({ timeout: 20_000 });
  await inCall(ann);
  await plays('mesh');
  const backInMesh = await mediaStats(ann);
  check(backInMesh.open === 2, `Ann has mesh connections to Bob and the camera only (${backInMesh.open} open)`);
  console.log('  two people again: the camera offered Ann a mesh connection, which plays');
  assertNoConsoleErrors([ann, bob, cleo]);
  console.log('  camera following an auto room scenario passed');
}
