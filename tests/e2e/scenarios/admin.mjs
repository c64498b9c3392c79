// The admin area in a real browser. Eve, an ordinary user, creates a room and joins its call.
// Dana signs up and finds the admin page closed to her; once the operator promotes her with
// `confab-api admin create` (the documented way to make an admin), she logs in again and sees
// the statistics (the live call counted), Eve among the users, Eve's room, Eve as its live
// participant, kicks her (Eve's page says a moderator removed her) and finds the kick in the
// audit log.

import { execFileSync } from 'node:child_process';

import {
  API_BIN, BASE_URL, PASSWORD, assertNoConsoleErrors, check, eventually, launch, screenshot, signUp, uniqueEmail, user,
} from '../lib.mjs';

const ROOM = `Lab bench ${Date.now() % 100000}`;

const browser = await launch();
try {
  await run();
} finally {
  await browser.close();
}

async function run() {
  const eve = await user(browser, 'eve');
  const dana = await user(browser, 'dana');
  const emails = { eve: uniqueEmail('eve'), dana: uniqueEmail('dana') };

  // Eve: a room of her own, and its call.
  await eve.goto(`${BASE_URL}/signup`);
  await signUp(eve, 'Eve Evans', emails.eve);
  const create = eve.getByRole('region', { name: 'Create a room' });
  await create.getByLabel('Room name').fill(ROOM);
  await create.getByRole('button', { name: 'Create room' }).click();
  await eve.getByRole('row', { name: new RegExp(ROOM) }).getByRole('link', { name: 'Settings' }).click();
  await eve.waitForURL(/\/rooms\/[0-9a-f-]+$/);
  await eve.goto(`${eve.url()}/call`);
  await eve.getByRole('button', { name: 'Join call' }).click();
  await eve.locator('section.call[data-phase="in-call"][data-peer-id]').waitFor({ timeout: 20_000 });

  // Dana, not yet an admin, is turned away.
  await dana.goto(`${BASE_URL}/signup`);
  await signUp(dana, 'Dana Diaz', emails.dana);
  await dana.getByRole('heading', { name: 'Your rooms' }).waitFor();
  await dana.goto(`${BASE_URL}/admin`);
  await dana.getByRole('heading', { level: 1, name: 'Admins only' }).waitFor();
  await screenshot(dana, 'admins-only');

  // The operator promotes her; her next login carries the admin role.
  const promoted = execFileSync(API_BIN, ['admin', 'create', '--email', emails.dana], { input: `${PASSWORD}\n` });
  console.log(`  ${promoted.toString().trim()}`);
  await dana.getByRole('button', { name: 'Log out' }).click();
  await dana.goto(`${BASE_URL}/login`);
  await dana.getByLabel('Email').fill(emails.dana);
  await dana.getByLabel('Password').fill(PASSWORD);
  await dana.getByRole('button', { name: 'Log in' }).click();
  await dana.getByRole('heading', { name: 'Your rooms' }).waitFor();
  await dana.goto(`${BASE_URL}/admin`);
  await dana.getByRole('heading', { level: 1, name: 'Administration' }).waitFor();

  const stats = dana.getByRole('region', { name: 'Statistics' });
  const liveCalls = Number(await stats.locator('dt:text-is("Live calls") + dd').textContent());
  check(liveCalls >= 1, `the live call is counted (${liveCalls})`);
  const users = dana.getByRole('region', { name: 'Users' });
  await users.getByRole('row', { name: new RegExp(emails.eve.replace(/[.+]/g, '\\$&')) }).waitFor();
  const rooms = dana.getByRole('region', { name: 'Rooms' });
  const room = rooms.getByRole('row', { name: new RegExp(ROOM) });
  await room.waitFor();
  await screenshot(dana, 'admin-page');

  // Eve's room's live participants: Eve; kick her.
  await room.getByRole('button', { name: 'Participants' }).click();
  const live = dana.getByRole('region', { name: 'Live participants' });
  const eveRow = live.getByRole('row', { name: /Eve Evans/ });
  await eveRow.waitFor();
  await eveRow.getByRole('button', { name: 'Kick' }).click();
  await dana.getByRole('dialog').getByRole('button', { name: 'Kick participant' }).click();
  await eveRow.waitFor({ state: 'detached' });
  await live.getByText(`In the call of “${ROOM}”: 0 people.`).waitFor();
  await eve.getByText('A moderator removed you from the call.').waitFor();
  await screenshot(eve, 'kicked');

  // The kick is in the audit log.
  const audit = dana.getByRole('region', { name: 'Audit log' });
  await eventually('the kick in the audit log', async () => {
    await audit.getByRole('button', { name: 'Refresh audit log' }).click();
    return (await audit.getByRole('row', { name: /participant\.kick/ }).count()) >= 1;
  });
  await screenshot(dana, 'audit-log');

  assertNoConsoleErrors([eve, dana]);
  console.log('  admin scenario passed');
}
