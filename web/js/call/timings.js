// Timing marks for the join-latency benchmark: `performance.now()` values (ms since the page's
// time origin) on `window.confabTimings`, one object per page, cleared when a join starts. Only
// the first occurrence of each mark is kept, so a mark measures the path to the first success.
//
//   join_clicked            the Join button was pressed (or the call was rejoined after a reload:
//                           then `auto_join` is true as well)
//   ws_open                 the signaling WebSocket opened
//   welcome                 the gateway's `welcome` arrived
//   first_offer_sent        an SDP offer left for some peer          } the first over all peers;
//   first_offer_received    an SDP offer arrived from some peer      } the same names without
//   first_answer_sent       an SDP answer left for some peer         } `first_` are kept per peer
//   first_answer_received   an SDP answer arrived from some peer     } in `peers[peer_id]`
//   first_ice_connected     some RTCPeerConnection's iceConnectionState became connected/completed
//   first_connected         some connectionState became 'connected' (ICE and DTLS are up)
//   first_remote_frame      the first remote video frame was shown (requestVideoFrameCallback
//                           where the browser has it, else the video's `loadeddata` event)
//   peers[peer_id].{offer_sent, offer_received, answer_sent, answer_received, ice_connected,
//                   connected, first_frame}
//   peers[peer_id].sfu_frame  the first frame of that peer shown through the media server (also
//                             after a move from the mesh); `first_sfu_frame` over all peers
//
// The recorder's connection is not a peer of the mesh and is not measured here.

function timings() {
  if (typeof window.confabTimings !== 'object' || window.confabTimings === null) window.confabTimings = {};
  return window.confabTimings;
}

/** Empties the marks (the same object stays on `window`) at the start of a join. */
export function resetTimings(extra = {}) {
  const marks = timings();
  for (const key of Object.keys(marks)) delete marks[key];
  marks.peers = {};
  Object.assign(marks, extra);
}

/** Records `name` now unless it was recorded already. */
export function mark(name) {
  const marks = timings();
  if (!(name in marks)) marks[name] = performance.now();
}

/** Records a per-peer mark, and the room-wide `first_<name>` mark with it. */
export function markPeer(peerId, name) {
  const marks = timings();
  if (!marks.peers) marks.peers = {};
  const peer = marks.peers[peerId] || (marks.peers[peerId] = {});
  if (!(name in peer)) peer[name] = performance.now();
  mark(name === 'first_frame' ? 'first_remote_frame' : 'first_' + name);
}
