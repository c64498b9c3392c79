// A lecture through the media server (issue 16): a room with `mode: lecture` and `media: sfu`,
// its owner (the teacher) and five students, plain members. Each student's page says they are
// watching, never opens a camera or microphone and sends no media (no outbound RTP bytes on any
// connection), and plays the teacher's video and audio through the SFU. The teacher uploads
// once. (Letting a student speak is not driven here: its API is still being built.)

import {
  assertNoConsoleErrors, check, inCall, joinCall, launch, mediaStats, peerIdOf, playsThroughSfu, roomOf, screenshot,
  signedUpUser, BASE_URL,
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
  assertNoConsoleErrors([teacher, ...students]);
}
