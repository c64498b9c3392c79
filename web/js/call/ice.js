// ICE candidates between the browser's form (RTCIceCandidate) and the protocol's `candidate`
// object (proto field names, defaults omitted on the wire: read a missing field as its default).

/** An RTCIceCandidate as the protocol's `candidate` object. */
export function toWire(candidate) {
  const wire = { candidate: candidate.candidate };
  if (candidate.sdpMid != null) wire.sdp_mid = candidate.sdpMid;
  if (candidate.sdpMLineIndex != null) wire.sdp_mline_index = candidate.sdpMLineIndex;
  if (candidate.usernameFragment) wire.username_fragment = candidate.usernameFragment;
  return wire;
}

/** The protocol's `candidate` object as an RTCIceCandidateInit. */
export function fromWire(wire) {
  const init = { candidate: wire.candidate || '', sdpMLineIndex: wire.sdp_mline_index || 0 };
  if (wire.sdp_mid) init.sdpMid = wire.sdp_mid;
  if (wire.username_fragment) init.usernameFragment = wire.username_fragment;
  return init;
}
