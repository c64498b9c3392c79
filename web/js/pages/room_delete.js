// Deleting a room, asked in words: the room goes, and its recordings go too only when the user
// ticks the box for them; otherwise the API keeps them for the people who were in the room
// (`DELETE …?delete_recordings=true` is the only way to take them along).

import { api, withQuery } from '../api.js';
import { confirmDialog } from './ui.js';

/**
 * Asks before deleting `room` (as listed by the API): null for no, else `{ deleteRecordings }`.
 * A member is told how many recordings the room has (no box when none); an admin who is not a
 * member does not see them listed, so the box then names no number.
 */
export async function confirmRoomDelete(room) {
  const count = room.my_role ? await recordingCount(room).catch(() => undefined) : undefined;
  const none = count === '0';
  const message = `Delete the room “${room.name}”? Its members and invites are deleted and a call in progress ends.`
    + (none ? '' : ' Its recordings are kept for the people who were in the room unless you tick the box.');
  const what = count === undefined ? 'its recordings' : `its ${count} recording${count === '1' ? '' : 's'}`;
  const answer = await confirmDialog(message, 'Delete room', none ? undefined : `Also delete ${what} and their files`);
  if (!answer) return null;
  return { deleteRecordings: answer !== true && answer.option };
}

/** How many recordings of `room` the caller sees, as text ("200+" past one page). */
async function recordingCount(room) {
  const page = await api.get(withQuery('/v1/recordings', { room_id: room.id, limit: 200 }));
  return `${page.recordings.length}${page.next_cursor ? '+' : ''}`;
}
