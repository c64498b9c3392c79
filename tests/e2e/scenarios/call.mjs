// The issue's scenario, end to end in real browsers: Ann signs up, creates a room for two and
// invites Bob by link; Bob signs up from the link and accepts. Both join the call through
// different gateways and see and hear each other. Cleo, not a member, cannot see the room; once
// added, she finds the call full. Ann records the call for 6 s; the recording becomes ready and
// both participants' files decode as VP8/VP9 + Opus of the right length; Ann plays, downloads and
// deletes it on the recordings page, and bans Cleo (listed until lifted). Bob turns his mic and
// camera off and on; his connection to the gateway drops and he is back in the call, as after he
// reloads his tab mid-call. Everything a user does goes through the UI; the API only checks.

import {
  BASE_URL, allowErrors, apiCall, assertNoConsoleErrors, check, decodeErrors, download, eventually, inCall,
  joinCall, launch, peerConnections, peerIdOf, probe, save, screenshot, seesAndHears, signUp, tokenOf, uniqueEmail,
  user,
} from '../lib.mjs';
import { statSync } from 'node:fs';

const ROOM = `Design review ${Date.now() % 100000}`;
const RECORD_FOR_MS = 6000;

const browser = await launch();
try {
  await run();
} finally {
  await browser.close();
}

async function run() {
  const ann = await user(browser, 'ann');
  const bob = await user(browser, 'bob');
  const cleo = await user(browser, 'cleo', { width: 390, height: 844 });
  const emails = { ann: uniqueEmail('ann'), bob: uniqueEmail('bob'), cleo: uniqueEmail('cleo') };

  // Ann: sign up, create a room for two, open its settings, make an invite link.
  await ann.goto(`${BASE_URL}/signup`);
  await signUp(ann, 'Ann Archer', emails.ann);
  await ann.getByRole('heading', { name: 'Your rooms' }).waitFor();
  const create = ann.getByRole('region', { name: 'Create a room' });
  await create.getByLabel('Room name').fill(ROOM);
  await create.getByLabel('Max participants').fill('2');
  await create.getByRole('button', { name: 'Create room' }).click();
  const row = ann.getByRole('row', { name: new RegExp(ROOM) });
  await row.waitFor();
  await screenshot(ann, 'room-created');
  await row.getByRole('link', { name: 'Settings' }).click();
  await ann.getByRole('heading', { level: 1, name: ROOM }).waitFor();
  const roomId = new URL(ann.url()).pathname.split('/')[2];
  const invites = ann.getByRole('region', { name: 'Invites' });
  await invites.getByRole('button', { name: 'Create invite' }).click();
  const inviteField = invites.getByLabel('Invite link');
  await inviteField.waitFor();
  const inviteLink = await inviteField.inputValue();
  check(inviteLink.startsWith(`${BASE_URL}/invite/`), `invite link ${inviteLink}`);
  await screenshot(ann, 'invite-created');

  // Cleo has an account but is not a member: the room does not exist for her.
  await cleo.goto(`${BASE_URL}/signup`);
  await signUp(cleo, 'Cleo Chan', emails.cleo);
  await cleo.getByRole('heading', { name: 'Your rooms' }).waitFor();
  const roomUrl = new RegExp(`status of 404 \\(Not Found\\) \\[${escape(`${BASE_URL}/v1/rooms/${roomId}`)}\\]$`);
  allowErrors(cleo, roomUrl);
  await cleo.goto(`${BASE_URL}/rooms/${roomId}`);
  await cleo.getByRole('heading', { level: 1, name: 'Room not found' }).waitFor();
  await screenshot(cleo, 'not-a-member-room-page');
  await cleo.goto(`${BASE_URL}/rooms/${roomId}/call`);
  const refused = cleo.locator('section.call[data-phase="blocked"] [role="alert"]');
  await refused.waitFor();
  check(await refused.getAttribute('data-code') === 'room_not_found', 'the call page refuses a non-member');
  check(/not a member/.test(await refused.textContent()), 'the refusal names the not-a-member case');
  check(await cleo.getByRole('button', { name: 'Join call' }).isHidden(), 'no Join button for a non-member');
  await screenshot(cleo, 'not-a-member-call-page');
  const cleoToken = await tokenOf(cleo);
  check((await apiCall('POST', `/v1/rooms/${roomId}/join`, cleoToken)).status === 404, 'a non-member gets no ticket');
  check((await apiCall('GET', `/v1/rooms/${roomId}`, cleoToken)).status === 404, 'a non-member cannot read the room');

  // Ann adds Cleo by email (she will find the call full later).
  const addMember = ann.getByRole('region', { name: 'Add a member' });
  await addMember.getByLabel('Email').fill(emails.cleo);
  await addMember.getByRole('button', { name: 'Add member' }).click();
  await ann.getByRole('table', { name: `Members of ${ROOM}` }).getByRole('row', { name: /Cleo Chan/ }).waitFor();
  await screenshot(ann, 'member-added');

  // Bob opens the invite link logged out, creates an account from there, and accepts.
  await bob.goto(inviteLink);
  await bob.getByRole('heading', { name: 'Log in' }).waitFor();
  await bob.getByRole('link', { name: 'Create an account' }).click();
  await signUp(bob, 'Bob Baker', emails.bob);
  await bob.getByRole('heading', { name: 'You are invited' }).waitFor();
  await screenshot(bob, 'invited');
  await bob.getByRole('button', { name: 'Accept invitation' }).click();
  await bob.waitForURL(`${BASE_URL}/rooms/${roomId}/call`);
  await bob.getByRole('heading', { level: 1, name: ROOM }).waitFor();

  // Both join, Ann first, each through another gateway.
  await ann.getByRole('link', { name: 'Join call' }).click();
  await ann.waitForURL(`${BASE_URL}/rooms/${roomId}/call`);
  await joinCall(ann);
  await joinCall(bob);
  // The API hands gateways out in turn, so two consecutive joins differ; if anything else took a
  // ticket in between, Bob leaves and rejoins until they do.
  for (let attempt = 0; ann.gateways.at(-1) === bob.gateways.at(-1); attempt += 1) {
    check(attempt < 4, `both stay on ${ann.gateways.at(-1)}`);
    await bob.getByRole('button', { name: 'Leave' }).click();
    await joinCall(bob, 'Rejoin');
  }
  console.log(`  ann on ${ann.gateways.at(-1)}, bob on ${bob.gateways.at(-1)}`);
  const annId = await peerIdOf(ann);
  const bobId = await peerIdOf(bob);
  await seesAndHears(ann, bobId, 'Bob');
  await seesAndHears(bob, annId, 'Ann');
  await screenshot(ann, 'in-call');
  await screenshot(bob, 'in-call');

  // Bob turns his microphone and camera off: Ann's tile for him says so; he turns them on again.
  const bobOnAnn = ann.locator(`figure.tile[data-peer-id="${bobId}"]`);
  await bob.getByRole('button', { name: 'Mute' }).click();
  await bob.getByRole('button', { name: 'Camera off' }).click();
  check(await bob.getByRole('button', { name: 'Mute' }).getAttribute('aria-pressed') === 'true', 'Mute is pressed');
  await ann.locator(`figure.tile[data-peer-id="${bobId}"][data-audio="off"][data-video="off"]`).waitFor();
  check(await bobOnAnn.getByText('Mic off').isVisible() && await bobOnAnn.getByText('Camera off').isVisible(),
    'Ann sees Bob\'s mic and camera off');
  await screenshot(ann, 'bob-muted');
  await bob.getByRole('button', { name: 'Mute' }).click();
  await bob.getByRole('button', { name: 'Camera off' }).click();
  await ann.locator(`figure.tile[data-peer-id="${bobId}"][data-audio="on"][data-video="on"]`).waitFor();
  await seesAndHears(ann, bobId, 'Bob');

  // Bob's signaling connection drops as on a network change (closed, not left): his page
  // reconnects and resumes his place (same peer id); the peer connections never noticed.
  const annConnections = await peerConnections(ann);
  const bobSockets = await bob.evaluate(() => window.__e2eSockets.length);
  await bob.evaluate(() => window.__e2eSockets.at(-1).close(4000, 'e2e: connection dropped'));
  await eventually('Bob\'s page to reconnect', async () => bob.evaluate(
    (before) => window.__e2eSockets.length > before && window.__e2eSockets.at(-1).readyState === WebSocket.OPEN,
    bobSockets));
  await inCall(bob);
  check(await peerIdOf(bob) === bobId, 'the reconnected page resumed the same peer');
  check((await peerConnections(ann)).created === annConnections.created, 'Ann kept her connection to Bob');
  await seesAndHears(ann, bobId, 'Bob');

  // The room holds two: Cleo, a member now, is turned away.
  await cleo.goto(`${BASE_URL}/rooms/${roomId}/call`);
  await cleo.getByRole('heading', { level: 1, name: ROOM }).waitFor();
  await cleo.getByRole('button', { name: 'Join call' }).click();
  const full = cleo.locator('section.call[data-phase="lobby"] [role="alert"][data-code="room_full"]');
  await full.waitFor();
  check(/This room is full \(2 of 2 participants\)/.test(await full.textContent()), 'the room-full message');
  await screenshot(cleo, 'room-full');

  // Ann records; both see the indicator; she stops after 6 s.
  const start = ann.getByRole('button', { name: 'Start recording' });
  check(await bob.getByRole('button', { name: 'Start recording' }).isHidden(), 'members cannot record');
  await start.click();
  await Promise.all([ann, bob].map((page) => page.locator('.call-recording').getByText('Recording').waitFor()));
  await screenshot(ann, 'recording');
  await screenshot(bob, 'recording');
  await ann.waitForTimeout(RECORD_FOR_MS);
  await ann.getByRole('button', { name: 'Stop recording' }).click();
  await Promise.all([ann, bob].map((page) => page.locator('section.call[data-recording="false"]').waitFor()));
  check(await ann.getByRole('button', { name: 'Start recording' }).isVisible(), 'Start recording is back');

  // Bob reloads his tab mid-call and comes back in (resuming his place: same peer id); Ann's
  // connection to his old page is replaced by a new one, and his video plays again.
  const annBefore = await peerConnections(ann);
  await bob.reload();
  await inCall(bob);
  check(await peerIdOf(bob) === bobId, 'the reloaded page resumed the same peer');
  await eventually('Ann to connect to Bob\'s new page', async () => {
    const now = await peerConnections(ann);
    return now.created > annBefore.created && now.open === 1;
  });
  await seesAndHears(ann, bobId, 'Bob');
  await seesAndHears(bob, annId, 'Ann');
  await screenshot(bob, 'back-after-reload');
  await screenshot(ann, 'bob-back');

  // The recording is ready: on Ann's recordings page, and both files check out.
  await ann.getByRole('button', { name: 'Leave' }).click();
  await ann.getByText('You left the call.').waitFor();
  await bob.getByRole('button', { name: 'Leave' }).click();
  await bob.getByText('You left the call.').waitFor();
  await ann.getByRole('link', { name: 'Recordings' }).click();
  await ann.getByRole('heading', { level: 1, name: 'Recordings' }).waitFor();
  const card = ann.getByRole('article', { name: new RegExp(ROOM) });
  await card.locator('.badge', { hasText: 'Ready' }).waitFor({ timeout: 60_000 });
  const files = card.getByRole('table', { name: /^Files of / });
  check(await files.getByRole('row', { name: /Ann Archer/ }).count() >= 1, 'Ann\'s file is listed');
  check(await files.getByRole('row', { name: /Bob Baker/ }).count() >= 1, 'Bob\'s file is listed');
  await screenshot(ann, 'recording-ready');
  await checkRecording(await tokenOf(ann), roomId);
  await useRecordingPage(ann, card);

  // Ann bans Cleo from the room's settings; the ban is listed (also after a reload) until lifted.
  await ann.goto(`${BASE_URL}/rooms/${roomId}`);
  await ann.getByRole('region', { name: 'Members' }).getByRole('row', { name: /Cleo Chan/ })
    .getByRole('button', { name: 'Ban' }).click();
  await ann.getByRole('dialog').getByRole('button', { name: 'Ban member' }).click();
  const bans = ann.getByRole('region', { name: 'Bans' });
  await bans.getByRole('row', { name: /Cleo Chan/ }).waitFor();
  await ann.reload();
  await bans.getByRole('row', { name: /Cleo Chan/ }).waitFor();
  await screenshot(ann, 'cleo-banned');
  await bans.getByRole('row', { name: /Cleo Chan/ }).getByRole('button', { name: 'Unban' }).click();
  await bans.getByText('Nobody is banned from this room.').waitFor();

  // Cleo's 404s are the only console errors, and they were provoked on purpose.
  assertNoConsoleErrors([ann, bob, cleo]);
  console.log('  call scenario passed');
}

/** On the recordings page: a file plays in the page's player, downloads as a WebM, and the
 * recording is deleted (after the confirmation) from the page and from the API. */
async function useRecordingPage(page, card) {
  const row = card.getByRole('table', { name: /^Files of / }).getByRole('row', { name: /Ann Archer/ }).first();
  await row.getByRole('button', { name: 'Play' }).click();
  const player = page.locator('figure.player video');
  const played = await eventually('the recording to play in the page', async () => {
    const state = await player.evaluate((video) => {
      if (video.paused && video.readyState >= 2) video.play().catch(() => {});
      return { time: video.currentTime, duration: video.duration, width: video.videoWidth };
    });
    return state.time > 0.5 && state.width > 0 && state;
  });
  check(played.duration > 3, `the player knows the file's duration (${played.duration} s)`);
  await screenshot(page, 'recording-playing');

  const [saved] = await Promise.all([page.waitForEvent('download'), row.getByRole('button', { name: 'Download' }).click()]);
  check(/^Ann_Archer-[0-9a-f-]+\.webm$/.test(saved.suggestedFilename()), `download named ${saved.suggestedFilename()}`);
  const bytes = statSync(await saved.path()).size;
  check(bytes > 10_000, `the downloaded file has the recording (${bytes} bytes)`);

  await card.getByRole('button', { name: 'Delete recording' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete recording' }).click();
  await card.waitFor({ state: 'detached' });
  const left = await apiCall('GET', '/v1/recordings', await tokenOf(page));
  check(left.status === 200 && left.body.recordings.length === 0, `no recording left (${left.bytes})`);
  await screenshot(page, 'recording-deleted');
}

/**
 * The room's recording is ready, with each participant's media decodable VP8/VP9 + Opus lasting
 * 4–8 s in all. Usually that is one file each; when a sender's resolution changes (Chromium lowers
 * it when the CPU is short, which on this 2-core machine happens), the recorder continues in a
 * new file, so a participant may have several.
 */
async function checkRecording(token, roomId) {
  const list = await apiCall('GET', `/v1/recordings?room_id=${roomId}`, token);
  check(list.status === 200 && list.body.recordings.length === 1, `one recording (${list.bytes})`);
  const recording = list.body.recordings[0];
  check(recording.status === 'ready', `recording status ${recording.status} (${recording.reason})`);
  const participants = [...new Set(recording.files.map((f) => f.participant))].sort();
  check(JSON.stringify(participants) === JSON.stringify(['Ann Archer', 'Bob Baker']), `files of ${participants}`);
  for (const participant of participants) {
    const files = recording.files.filter((f) => f.participant === participant);
    let total = 0;
    for (const [i, file] of files.entries()) {
      const bytes = await download(`/v1/recordings/${recording.id}/files/${file.id}`, token);
      const path = save(`recording-${participant.split(' ')[0].toLowerCase()}-${i + 1}.webm`, bytes);
      const { codecs, duration } = probe(path);
      const video = codecs.find((c) => c === 'vp8' || c === 'vp9');
      check(video && codecs.includes('opus') && codecs.length === 2, `${participant}: codecs ${codecs}`);
      const errors = decodeErrors(path);
      check(errors === '', `${participant}: decode errors: ${errors}`);
      total += duration;
      console.log(`  ${participant}: ${codecs.join(' + ')}, ${duration.toFixed(2)} s, ${bytes.length} bytes, decodes cleanly`);
    }
    check(total >= 4 && total <= 8, `${participant}: ${total} s recorded in ${files.length} file(s)`);
    if (files.length > 1) console.log(`  ${participant}: ${files.length} files (resolution changes), ${total.toFixed(2)} s in all`);
  }
}

function escape(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
