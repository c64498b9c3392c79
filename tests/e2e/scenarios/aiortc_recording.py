"""A participant on a WebRTC stack nobody here wrote: aiortc (Python), written from
docs/protocol.md alone. Ann signs up, opens a room, joins the call over the gateway WebSocket
(subprotocols `confab.v1` and `confab.ticket.<ticket>`) and starts a recording; on
`recording_started` she opens a send-only connection to the recorder peer (VP8 + Opus from
synthetic tracks), offers without candidates and trickles hers as `signal.candidate`, takes the
recorder's answer and its trickled candidates (each must name its m-line, as the protocol says,
and aiortc must accept it), records about 5 s, stops the recording through the API, waits for
`recording_stopped`, says `bye`, waits for the recording to be `ready`, downloads her file and
checks it with ffprobe: VP8 + Opus, 5 s give or take.

Run by tests/e2e/run with the aiortc virtualenv's Python; BASE_URL is the API, OUT the output
directory. Nothing here logs an SDP or a candidate.
"""

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid

import websockets
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.sdp import candidate_from_sdp

from interop import Failure, MovingPicture, Tone, api, check, first_section_candidates, without_candidates

OUT = os.environ.get("OUT", "output")
RECORD_FOR_S = 5.0
PASSWORD = "correct horse battery"


class Participant:
    def __init__(self, socket, ice_servers):
        self.socket = socket
        self.ice_servers = ice_servers
        self.pc = None
        self.recorder = None
        self.answered = asyncio.Event()
        self.pending = []
        self.candidates_received = 0
        self.candidates_refused = []
        self.candidates_without_section = 0

    async def send(self, message):
        await self.socket.send(json.dumps(message))

    async def record_to(self, recorder_peer_id):
        self.recorder = recorder_peer_id
        servers = [
            RTCIceServer(urls=s.get("urls", []), username=s.get("username") or None, credential=s.get("credential") or None)
            for s in self.ice_servers
        ]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        video = self.pc.addTransceiver(MovingPicture(), direction="sendonly")
        vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]
        video.setCodecPreferences(vp8)
        audio = self.pc.addTransceiver(Tone(), direction="sendonly")
        opus = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/opus"]
        audio.setCodecPreferences(opus)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        local = self.pc.localDescription.sdp
        offer = {"type": "offer", "sdp": without_candidates(local)}
        await self.send({"signal": {"to": recorder_peer_id, "sdp": offer}})
        mid, candidates = first_section_candidates(local)
        check(candidates, f"aiortc gathered {len(candidates)} candidate(s) to trickle")
        for candidate in candidates:
            wire = {"candidate": candidate, "sdp_mid": mid, "sdp_mline_index": 0}
            await self.send({"signal": {"to": recorder_peer_id, "candidate": wire}})
        await self.send({"signal": {"to": recorder_peer_id, "candidate": {"candidate": "", "sdp_mid": mid, "sdp_mline_index": 0}}})

    async def on_signal(self, signal):
        if signal.get("from") != self.recorder or self.pc is None:
            return
        if "sdp" in signal and signal["sdp"].get("type") == "answer":
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=signal["sdp"]["sdp"], type="answer"))
            self.answered.set()
            for wire in self.pending:
                await self.add_candidate(wire)
            self.pending = []
        elif "candidate" in signal:
            if self.answered.is_set():
                await self.add_candidate(signal["candidate"])
            else:
                self.pending.append(signal["candidate"])

    async def add_candidate(self, wire):
        """As a W3C client does: the object's fields as they are, missing ones null."""
        line = wire.get("candidate", "")
        if not line:
            await self.pc.addIceCandidate(None)
            return
        self.candidates_received += 1
        if "sdp_mid" not in wire and "sdp_mline_index" not in wire:
            self.candidates_without_section += 1
        candidate = candidate_from_sdp(re.sub(r"^candidate:", "", line))
        candidate.sdpMid = wire.get("sdp_mid")
        candidate.sdpMLineIndex = wire.get("sdp_mline_index")
        try:
            await self.pc.addIceCandidate(candidate)
        except Exception as error:  # aiortc raises ValueError for a candidate naming no m-line
            self.candidates_refused.append(f"{type(error).__name__}: {error}")


async def next_message(socket, participant, wanted, timeout):
    """Reads frames until one of type `wanted` (signals go to the participant meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure(f"no {wanted} within {timeout} s")
        message = json.loads(await asyncio.wait_for(socket.recv(), left))
        kind = next(iter(message))
        if kind == "signal" and participant is not None:
            await participant.on_signal(message["signal"])
        if kind == "error":
            raise Failure(f"gateway error {message['error'].get('code')}")
        if kind == wanted:
            return message[kind]


async def pump_until(socket, participant, condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure(f"{what}: not within {timeout} s")
        try:
            message = json.loads(await asyncio.wait_for(socket.recv(), min(left, 0.2)))
        except asyncio.TimeoutError:
            continue
        if "signal" in message:
            await participant.on_signal(message["signal"])


async def main():
    print("aiortc participant: sign up, room, join", flush=True)
    email = f"aiortc-{uuid.uuid4().hex[:12]}@example.org"
    status, _ = api("POST", "/v1/auth/signup", body={"email": email, "password": PASSWORD, "display_name": "Ann Aiortc"})
    check(status == 201, f"signed up ({status})")
    status, login = api("POST", "/v1/auth/login", body={"email": email, "password": PASSWORD})
    check(status == 200, f"logged in ({status})")
    token = login["access_token"]
    status, room = api("POST", "/v1/rooms", token, {"name": "aiortc interop"})
    check(status == 201, f"room created ({status})")
    status, join = api("POST", f"/v1/rooms/{room['id']}/join", token)
    check(status == 200, f"ticket issued ({status})")

    subprotocols = ["confab.v1", f"confab.ticket.{join['ticket']}"]
    async with websockets.connect(join["gateway_url"], subprotocols=subprotocols) as socket:
        check(socket.subprotocol == "confab.v1", "the gateway selected confab.v1")
        welcome = await next_message(socket, None, "welcome", 10)
        check(welcome.get("peer_id"), "welcome with a peer id")
        participant = Participant(socket, welcome.get("ice_servers", []))

        status, recording = api("POST", f"/v1/rooms/{room['id']}/recordings", token)
        check(status == 202, f"recording requested ({status})")
        started = await next_message(socket, participant, "recording_started", 30)
        check(started.get("recording_id") == recording["id"], "recording_started for our recording")
        await participant.record_to(started["recorder_peer_id"])

        await pump_until(socket, participant, participant.answered.is_set, 15, "the recorder's answer")
        connected = lambda: participant.pc.connectionState in ("connected", "failed", "closed")
        await pump_until(socket, participant, connected, 20, "the connection to the recorder")
        check(participant.candidates_received > 0, f"the recorder trickled {participant.candidates_received} candidate(s)")
        refused = participant.candidates_refused
        check(not refused, "aiortc accepted every recorder candidate" + (f": refused {refused}" if refused else ""))
        check(participant.candidates_without_section == 0, "every recorder candidate names its m-line (sdp_mid, sdp_mline_index)")
        check(participant.pc.connectionState == "connected", f"connected to the recorder ({participant.pc.connectionState})")

        recorded_until = time.monotonic() + RECORD_FOR_S
        await pump_until(socket, participant, lambda: time.monotonic() >= recorded_until, RECORD_FOR_S + 1, "recording")
        status, _ = api("POST", f"/v1/recordings/{recording['id']}/stop", token)
        check(status in (200, 202), f"recording stopped through the API ({status})")
        stopped = await next_message(socket, participant, "recording_stopped", 15)
        check(stopped.get("recorder_peer_id") == participant.recorder, "recording_stopped for our recorder")
        await participant.pc.close()
        await participant.send({"bye": {}})

    deadline = time.monotonic() + 60
    while True:
        status, view = api("GET", f"/v1/recordings/{recording['id']}", token)
        if status == 200 and view["status"] not in ("pending", "starting", "recording", "finalizing"):
            break
        if time.monotonic() > deadline:
            raise Failure(f"recording still {view['status'] if status == 200 else status} after 60 s")
        await asyncio.sleep(0.5)
    check(view["status"] == "ready", f"recording ready ({view['status']}: {view.get('reason')})")
    files = [f for f in view["files"] if f["participant"] == "Ann Aiortc"]
    check(len(files) == 1, f"one file of Ann ({len(files)})")
    status, body = api("GET", f"/v1/recordings/{recording['id']}/files/{files[0]['id']}", token, raw=True)
    check(status == 200 and len(body) > 10_000, f"downloaded ({status}, {len(body)} bytes)")
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "aiortc-recording.webm")
    with open(path, "wb") as file:
        file.write(body)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name:format=duration,format_name", "-of", "json", path],
        capture_output=True, text=True, check=False,
    )
    check(probe.returncode == 0, "ffprobe accepts the file" + (f": {probe.stderr.strip()}" if probe.returncode else ""))
    parsed = json.loads(probe.stdout)
    codecs = sorted(s["codec_name"] for s in parsed["streams"])
    check(codecs == ["opus", "vp8"], f"VP8 + Opus ({codecs})")
    check("webm" in parsed["format"]["format_name"], f"a WebM ({parsed['format']['format_name']})")
    duration = float(parsed["format"]["duration"])
    check(RECORD_FOR_S - 1.5 <= duration <= RECORD_FOR_S + 2.5, f"{duration:.2f} s recorded (about {RECORD_FOR_S} s)")
    decode = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "null", "-"], capture_output=True, text=True, check=False)
    errors = decode.stderr.strip()[:300] or f"exit {decode.returncode}"
    check(decode.returncode == 0 and not decode.stderr.strip(), "ffmpeg decodes every frame" + ("" if decode.returncode == 0 and not decode.stderr.strip() else f": {errors}"))


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), 180))
    except Failure as failure:
        print(f"  FAILED: {failure}", file=sys.stderr, flush=True)
        sys.exit(1)
