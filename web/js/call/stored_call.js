// What this tab remembers about its call so that a reload brings the user back in, in
// sessionStorage under `confab.call` (this tab only, gone when the tab closes):
//
//   {room_id, peer_id, resume_token, audio, video, camera_id, mic_id, saved_at}
//
// With `peer_id` and `resume_token` a reload within the gateway's 15 s window resumes the same
// peer: the user keeps their place in a full room and the others see no leave and join (their
// connections to the old page are replaced when its fresh offers arrive; see mesh.js). The
// resume token is kept for that reason. It is as sensitive as the refresh token session.js already
// keeps here: tab-scoped, single use, valid 15 s after a disconnect, and only with a fresh ticket
// for the same user. After the window the gateway just admits the user as a new peer.
//
// `saved_at` is renewed while the call runs and when the page is hidden; the call is rejoined
// automatically only if it is at most ten minutes old, so a tab restored a day later does not
// switch the camera on by itself. Leaving the call forgets it.

const KEY = 'confab.call';
const REJOIN_WITHIN_MS = 10 * 60 * 1000;

/** The remembered call for `roomId`, if recent enough to rejoin. */
export function storedCall(roomId) {
  let value = null;
  try { value = JSON.parse(sessionStorage.getItem(KEY) || 'null'); } catch { value = null; }
  if (!value || value.room_id !== roomId) return null;
  if (!(Date.now() - value.saved_at < REJOIN_WITHIN_MS)) return null;
  return value;
}

/** Device preferences remembered for `roomId` even when the call is too old to rejoin. */
export function storedPreferences(roomId) {
  let value = null;
  try { value = JSON.parse(sessionStorage.getItem(KEY) || 'null'); } catch { value = null; }
  return value && value.room_id === roomId ? value : null;
}

export function storeCall(call) {
  sessionStorage.setItem(KEY, JSON.stringify({ ...call, saved_at: Date.now() }));
}

/** Renews `saved_at` of the remembered call for `roomId`. */
export function touchCall(roomId) {
  const value = storedPreferences(roomId);
  if (value) storeCall(value);
}

export function forgetCall() {
  sessionStorage.removeItem(KEY);
}
