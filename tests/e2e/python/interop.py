"""What the aiortc scenarios (tests/e2e/scenarios/*.py) share: clients on a WebRTC stack nobody
here wrote, each written from docs/protocol.md. This is only the plumbing around the protocol:
checks, the API over HTTP, synthetic camera and microphone tracks, and SDP trickling helpers.
tests/e2e/run puts this directory on PYTHONPATH.
"""

import asyncio
import json
import math
import os
import struct
import time
import urllib.error
import urllib.request
from fractions import Fraction

import av
from aiortc import MediaStreamTrack

BASE_URL = os.environ.get("BASE_URL", "http://127.0.0.1:20180")

# The synthetic camera's picture size.
WIDTH, HEIGHT = 320, 240


class Failure(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)
    print(f"  ok: {what}", flush=True)


def api(method, path, token=None, body=None, raw=False):
    """(status, body): JSON decoded, or the bytes with `raw`; an error's text."""
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    request = urllib.request.Request(BASE_URL + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            payload = response.read()
            return response.status, payload if raw else (json.loads(payload) if payload else None)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


class MovingPicture(MediaStreamTrack):
    """WIDTH x HEIGHT at 30 fps whose brightness and colour change every frame."""

    kind = "video"

    def __init__(self):
        super().__init__()
        self._start = None
        self._frames = 0

    async def recv(self):
        rate = 30
        if self._start is None:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self._start + self._frames / rate - time.monotonic()))
        frame = av.VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        for i, plane in enumerate(frame.planes):
            value = (self._frames * (3 + 2 * i)) % 256
            plane.update(bytes([value]) * plane.buffer_size)
        frame.pts = self._frames * 3000
        frame.time_base = Fraction(1, 90000)
        self._frames += 1
        return frame


class Tone(MediaStreamTrack):
    """A tone of `pitch` Hz, 48 kHz mono, in 20 ms frames."""

    kind = "audio"

    def __init__(self, pitch=440):
        super().__init__()
        self._start = None
        self._samples = 0
        self._pitch = pitch

    async def recv(self):
        rate, per_frame = 48000, 960
        if self._start is None:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self._start + self._samples / rate - time.monotonic()))
        frame = av.AudioFrame(format="s16", layout="mono", samples=per_frame)
        pcm = b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * self._pitch * (self._samples + n) / rate)))
            for n in range(per_frame)
        )
        plane = frame.planes[0]
        plane.update(pcm + bytes(plane.buffer_size - len(pcm)))
        frame.pts = self._samples
        frame.sample_rate = rate
        frame.time_base = Fraction(1, rate)
        self._samples += per_frame
        return frame


def without_candidates(sdp):
    """The offer as a trickling client sends it: its candidates go as `signal.candidate`."""
    lines = sdp.split("\r\n")
    return "\r\n".join(l for l in lines if not l.startswith(("a=candidate:", "a=end-of-candidates")))


def first_section_candidates(sdp):
    """(mid, candidate lines) of the first m-line: with max-bundle, the one transport's."""
    mid, candidates, section = None, [], -1
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            section += 1
        elif section == 0 and line.startswith("a=mid:"):
            mid = line[len("a=mid:"):]
        elif section == 0 and line.startswith("a=candidate:"):
            candidates.append(line[len("a="):])
    return mid, candidates
