// A lecture through the media server (issue 16): a room with `mode: lecture` and `media: sfu`,
// its owner (the teacher) and five students, plain members. Each student's page says they are
// watching, never opens a camera or microphone and sends no media (no outbound RTP bytes on any
// connection), and plays the teacher's video and audio through the SFU. The teacher uploads
// once. Then the teacher lets one student speak (`POST /v1/rooms/{id}/speakers`): the student's
// page publishes, and the teacher and another student play the student; taken back, the
// student's page stops publishing and watches again. A student who reloads the page watches again
// on a fresh subscribe connection within seconds. The lecture is recorded through the SFU
// all along: nobody's browser uploads to the recorder (the teacher's one upload is to the SFU),
// and the recording holds the teacher's and the let-speak student's files, which ffprobe reads
// and ffmpeg decodes without an error.

import {
  apiCall, assertNoConsoleErrors, check, decodeErrors, download, eventually, inCall, joinCall, launch, mediaStats,
  peerIdOf, playsThroughSfu, probe, roomOf, save, screenshot, signedUpUser, tokenOf, BASE_URL,
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
  const token = await tokenOf(teacher);
  const started = await apiCall('POST', `/v1/rooms/${roomId}/recordings`, token, {});
  check(started.status === 202, `the teacher starts a recording (${started.status} ${started.bytes})`);
  await teacher.locator('section.call[data-recording="true"]').waitFor();
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
    `the teacher uploads once, to the SFU and not the recorder, and receives nothing (${teacherStats.sending} sending, ${teacherStats.open} open)`);
  await screenshot(students[0], 'student-watching');

  // A student reloads the page: the new page resumes the seat and, once the SFU has given up the
  // old page's connection (8 s without a word from it), watches again on a fresh one.
  const reloader = students[STUDENTS.length - 1];
  const reloadedAt = Date.now();
  await reloader.reload();
  await inCall(reloader);
  await playsThroughSfu(reloader, [teacherId], 20_000);
  const back = (Date.now() - reloadedAt) / 1000;
  check(back < 20, `${reloader.userName} watches again ${back.toFixed(1)} s after reloading`);
  console.log(`  ${reloader.userName} reloads and watches the teacher again ${back.toFixed(1)} s later`);
  await screenshot(teacher, 'teacher');

  const [speaker, listener] = students;
  const speakerId = await peerIdOf(speaker);
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

  const stopped = await apiCall('POST', `/v1/recordings/${started.body.id}/stop`, token, {});
  check(stopped.status === 200, `the teacher stops the recording (${stopped.status})`);
  await checkRecording(token, started.body.id, { Prof: 5, [STUDENTS[0]]: 0.5 });
  assertNoConsoleErrors([teacher, ...students]);
}

/**
 * Recording `id` becomes ready with files of exactly the people in `seconds` (display name →
 * the least media recorded), each decoding without an error, a person's files holding VP8 and
 * Opus between them: a person whose camera reaches the recorder more than a second after the
 * microphone (a keyframe slow to come on a busy machine) has an audio-only file first, then one
 * with both (docs/protocol.md, "Recording through the SFU").
 */
async function checkRecording(token, id, seconds) {
  const recording = await eventually('the recording to be ready', async () => {
    const got = await apiCall('GET', `/v1/recordings/${id}`, token);
    return got.status === 200 && got.body.status !== 'recording' && got.body.status !== 'finalizing' && got.body;
  }, 60_000, 500);
  check(recording.status === 'ready', `recording ${recording.status} (${recording.reason || 'no reason'})`);
  const people = [...new Set(recording.files.map((f) => f.participant))].sort();
  check(JSON.stringify(people) === JSON.stringify(Object.keys(seconds).sort()), `files of ${people}, nobody else`);
  for (const [person, least] of Object.entries(seconds)) {
    let total = 0;
    const recorded = new Set();
    for (const [i, file] of recording.files.filter((f) => f.participant === person).entries()) {
      const path = save(`lecture-${person.toLowerCase()}-${i + 1}.webm`, await download(`/v1/recordings/${id}/files/${file.id}`, token));
      const { codecs, duration } = probe(path);
      codecs.forEach((codec) => recorded.add(codec));
      const errors = decodeErrors(path);
      check(errors === '', `${person}: decode errors: ${errors}`);
      total += duration;
    }
    check(recorded.has('vp8') && recorded.has('opus'), `${person}: codecs ${[...recorded]}`);
    check(total >= least, `${person}: ${total.toFixed(1)} s recorded through the SFU (at least ${least} s)`);
    console.log(`  ${person}: ${total.toFixed(1)} s recorded through the SFU, decodes cleanly`);
  }
}
