// A lecture through the media server (issue 16): a room with `mode: lecture` and `media: sfu`,
// its owner (the teacher) and five students, plain members. Each student's page says they are
// watching, never opens a camera or microphone and sends no media (no outbound RTP bytes on any
// connection), and plays the teacher's video and audio through the SFU. The teacher uploads
// once. Then the teacher lets one student speak (`POST /v1/rooms/{id}/speakers`): the student's
// page publishes, and the teacher and another student play the student; taken back, the
// student's page stops publishing and watches again.

import {
  apiCall, assertNoConsoleErrors, check, eventually, inCall, joinCall, launch, mediaStats, peerIdOf, playsThroughSfu,
  roomOf, screenshot, signedUpUser, tokenOf, BASE_URL,
} from '../lib.mjs';

const STUDENTS = ['Ari', 'Bea', 'Cy', 'Di', 'Ed'];
const VIEWPORT = { width: 800, height: 600 };

const browser = await launch();
try {
  await run();
} finally {
  await browser.close();
}

async function run() {
  const [teacher, ...students] = await Promise.all(['Prof', ...STUDENTS].map((name) => signedUpUser(browser, name, VIEWPORT)));
  const roomId = await roomOf(teacher, { name: `Lecture ${Date.now() % 100000}`, media: 'sfu', mode: 'lecture' }, students);

  await teacher.goto(`${BASE_URL}/rooms/${roomId}/call`);
  await joinCall(teacher);
  const teacherId = await peerIdOf(teacher);
  for (const student of students) {
    await student.goto(`${BASE_URL}/rooms/${roomId}/call`);
    await student.locator('section.call[data-publishing="false"]').waitFor();
    check(await student.getByText('You are watching').isVisible(), `${student.userName}'s page says they are watching`);
    check(await student.getByRole('button', { name: 'Mute' }).isHidden(), `${student.userName} has no microphone button`);
    await joinCall(student);
  }

  await Promise.all(students.map(async (student) => {
    await inCall(student);
    await student.locator('section.call[data-media="sfu"]').waitFor({ timeout: 20_000 });
    const widths = await playsThroughSfu(student, [teacherId]);
    const stats = await mediaStats(student);
    check(stats.bytesSent === 0 && stats.sending === 0, `${student.userName} sends no media (${stats.bytesSent} bytes)`);
    check(stats.open === 1, `${student.userName} has only the subscribe connection (${stats.open} open)`);
    check(await student.evaluate(() => !document.querySelector('figure.tile-local video').srcObject),
      `${student.userName}'s camera and microphone were never opened`);
    console.log(`  ${student.userName} watches the teacher through the SFU (frame width ${widths[teacherId]}) and sends nothing`);
  }));
  const teacherStats = await mediaStats(teacher);
  check(teacherStats.sending === 1 && teacherStats.open === 1,
    `the teacher uploads once and receives nothing (${teacherStats.sending} sending, ${teacherStats.open} open)`);
  await screenshot(students[0], 'student-watching');
  await screenshot(teacher, 'teacher');

  const [speaker, listener] = students;
  const speakerId = await peerIdOf(speaker);
  const token = await tokenOf(teacher);
  const granted = await apiCall('POST', `/v1/rooms/${roomId}/speakers`, token, { peer_id: speakerId });
  check(granted.status === 204, `the teacher lets ${speaker.userName} speak (${granted.status} ${granted.bytes})`);
  await speaker.locator('section.call[data-publishing="true"]').waitFor();
  await Promise.all([playsThroughSfu(teacher, [speakerId]), playsThroughSfu(listener, [teacherId, speakerId])]);
  check((await mediaStats(speaker)).sending === 1, `${speaker.userName} uploads once`);
  console.log(`  ${speaker.userName}, let speak, is seen and heard by the teacher and ${listener.userName}`);
  await screenshot(listener, 'student-let-speak');
  const revoked = await apiCall('DELETE', `/v1/rooms/${roomId}/speakers/${speakerId}`, token);
  check(revoked.status === 204, `the teacher takes it back (${revoked.status})`);
  await speaker.locator('section.call[data-publishing="false"]').waitFor();
  await eventually(`${speaker.userName} to stop publishing`, async () => (await mediaStats(speaker)).sending === 0);
  console.log(`  ${speaker.userName}, silenced, watches again`);
  assertNoConsoleErrors([teacher, ...students]);
}
