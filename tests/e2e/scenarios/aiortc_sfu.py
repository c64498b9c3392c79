"""Three participants on a WebRTC stack nobody here wrote (aiortc, Python) in a call through the
media server, written from docs/protocol.md alone ("Signaling", "The media server", "Media
through the SFU", "Tokens").

Ann, Bob and Cat sign up; Ann creates a room with `media: "sfu"` and invites the other two. Each
joins over the gateway WebSocket, learns the SFU's peer id (`welcome.sfu` or `media_changed`),
offers a `publish` connection (VP8 + Opus from synthetic tracks, one encoding: aiortc cannot send
simulcast) whose candidates it trickles with `connection: "publish"`, and answers every
`subscribe` offer of the SFU (Ann and Cat with their candidates in the SDP, Bob trickling them
with `connection: "subscribe"`). Checks:

- everyone decodes the others' video (>= 30 frames each) and audio through `subscribe`, and each
  received track's msid stream id is its publisher's peer id;
- `track_request` for a small tile is taken (no refusal; frames go on), for an unknown track it is
  refused `unknown_track`, with `paused: true` the track's frames stop while the others' go on,
  and a request without `paused` brings them back;
- when Cat says `bye`, the SFU offers Ann and Bob again without Cat's tracks, and Cat's frames
  stop; when she comes back (a new peer id) her new tracks reach both in new sections;
- every subscribe offer keeps the doc's promises: one `sendonly` section per track, with one
  SSRC and msid `<publisher> <publisher>-<n>`; an ended track's section `inactive` and never
  used again (aiortc keys its receivers by section and demultiplexes by SSRC);
- in a `lecture` room a plain member's `publish` offer is refused `not_allowed_to_publish`
  while the owner's is answered, the member still receives the owner, and a `track_request`
  from the owner, who receives nothing, is refused `unknown_track`.

Run by tests/e2e/run with the aiortc virtualenv's Python; BASE_URL is the API, OUT the output
directory. Nothing here logs an SDP, a candidate or a token (SFU_DEBUG=1 prints each subscribe
offer's sections: kind, mid, direction, track id). Every wait is bounded.
"""

import asyncio
import json
import os
import re
import sys
import time
import uuid

import av
import websockets
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.sdp import candidate_from_sdp

from interop import HEIGHT, WIDTH, Failure, MovingPicture, Tone, api, check, first_section_candidates, without_candidates

OUT = os.environ.get("OUT", "output")
PASSWORD = "correct horse battery"


def sections(sdp):
    """Each m-line of an SDP as a dict: kind, port, mid, direction, stream and track (msid)."""
    found = []
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            parts = line[2:].split()
            found.append({"kind": parts[0], "port": int(parts[1]), "mid": None, "direction": "sendrecv", "stream": None, "track": None, "ssrcs": set()})
        elif not found:
            continue
        elif line.startswith("a=mid:"):
            found[-1]["mid"] = line[len("a=mid:"):]
        elif line in ("a=sendonly", "a=recvonly", "a=sendrecv", "a=inactive"):
            found[-1]["direction"] = line[2:]
        elif line.startswith("a=ssrc:"):
            found[-1]["ssrcs"].add(line[len("a=ssrc:"):].split()[0])
        elif line.startswith("a=msid:"):
            ids = line[len("a=msid:"):].split()
            found[-1]["stream"] = ids[0]
            found[-1]["track"] = ids[1] if len(ids) > 1 else None
    return found


def active(section):
    return section["port"] != 0 and section["direction"] in ("sendonly", "sendrecv")


class Received:
    """One track received on the subscribe connection, and the frames decoded from it."""

    def __init__(self, kind, mid, stream, track_id):
        self.kind, self.mid, self.stream, self.track_id = kind, mid, stream, track_id
        self.frames = 0
        self.last_at = None
        self.sizes = set()
        self.ended = False


class Participant:
    def __init__(self, name, pitch, trickle_subscribe=False):
        self.name = name
        # Whether the subscribe answer's candidates go as `signal.candidate` rather than in it.
        self.trickle_subscribe = trickle_subscribe
        self.pitch = pitch
        self.email = f"aiortc-sfu-{name.lower()}-{uuid.uuid4().hex[:10]}@example.org"
        self.token = None
        self.socket = None
        self.peer_id = None
        self.sfu = None
        self.ice_servers = []
        self.publish_pc = None
        self.subscribe_pc = None
        self.publish_answered = False
        self.refusals = []  # (connection or None, code)
        self.subscribe_offers = []  # the sections of each offer, once answered
        self.received = {}  # mid -> Received
        self.speakers = []
        self.violations = []  # broken promises of the SFU's subscribe offers
        self.mid_tracks = {}  # mid -> the track id its section carried
        self.ended_mids = set()
        self.errors = []
        self.reader = None
        self.consumers = []
        self._changed = asyncio.Event()

    # --- accounts and the room -------------------------------------------------------------

    def sign_up(self):
        status, _ = api("POST", "/v1/auth/signup", body={"email": self.email, "password": PASSWORD, "display_name": self.name})
        check(status == 201, f"{self.name} signed up ({status})")
        status, login = api("POST", "/v1/auth/login", body={"email": self.email, "password": PASSWORD})
        check(status == 200, f"{self.name} logged in ({status})")
        self.token = login["access_token"]

    # --- waiting -----------------------------------------------------------------------------

    def changed(self):
        self._changed.set()

    async def until(self, condition, timeout, what):
        deadline = time.monotonic() + timeout
        while not condition():
            if self.errors:
                raise Failure(f"{self.name}: {self.errors[0]}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure(f"{self.name}: {what}: not within {timeout} s")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.25))
            except asyncio.TimeoutError:
                pass  # conditions on time (no frame for a while) are checked again
        if self.errors:
            raise Failure(f"{self.name}: {self.errors[0]}")

    # --- the gateway -------------------------------------------------------------------------

    async def join(self, room_id):
        status, join = api("POST", f"/v1/rooms/{room_id}/join", self.token)
        check(status == 200, f"{self.name} got a ticket ({status})")
        subprotocols = ["confab.v1", f"confab.ticket.{join['ticket']}"]
        self.socket = await asyncio.wait_for(websockets.connect(join["gateway_url"], subprotocols=subprotocols), 10)
        check(self.socket.subprotocol == "confab.v1", f"{self.name}: the gateway selected confab.v1")
        first = json.loads(await asyncio.wait_for(self.socket.recv(), 10))
        welcome = first.get("welcome")
        check(welcome and welcome.get("peer_id"), f"{self.name}: welcome with a peer id")
        self.peer_id = welcome["peer_id"]
        self.ice_servers = welcome.get("ice_servers", [])
        self.sfu = (welcome.get("sfu") or {}).get("peer_id")
        self.reader = asyncio.create_task(self.read())

    async def send(self, message):
        await self.socket.send(json.dumps(message))

    async def read(self):
        try:
            async for frame in self.socket:
                message = json.loads(frame)
                kind = next(iter(message))
                body = message[kind]
                if kind == "media_changed" or kind == "resync":
                    self.sfu = (body.get("sfu") or {}).get("peer_id")
                elif kind == "signal":
                    await self.on_signal(body)
                elif kind == "error":
                    self.errors.append(f"gateway error {body.get('code')}: {body.get('message')}")
                self.changed()
        except websockets.ConnectionClosed:
            pass
        except Exception as error:  # a failure in a handler must reach the waits
            self.errors.append(f"{type(error).__name__}: {error}")
            self.changed()

    async def on_signal(self, signal):
        if signal.get("from") != self.sfu:
            return
        connection = signal.get("connection")
        if "refusal" in signal:
            self.refusals.append((connection, signal["refusal"].get("code")))
        elif "speaker" in signal:
            self.speakers.append(signal["speaker"].get("peer_id"))
        elif connection == "publish" and "sdp" in signal:
            description = signal["sdp"]
            if description.get("type") != "answer":
                raise Failure(f"an SFU publish sdp of type {description.get('type')}")
            await self.publish_pc.setRemoteDescription(RTCSessionDescription(sdp=description["sdp"], type="answer"))
            self.publish_answered = True
        elif connection == "subscribe" and "sdp" in signal:
            await self.on_subscribe_offer(signal["sdp"])
        elif "candidate" in signal:
            pc = self.publish_pc if connection == "publish" else self.subscribe_pc
            if pc is not None and signal["candidate"].get("candidate"):
                wire = signal["candidate"]
                candidate = candidate_from_sdp(re.sub(r"^candidate:", "", wire["candidate"]))
                candidate.sdpMid = wire.get("sdp_mid")
                candidate.sdpMLineIndex = wire.get("sdp_mline_index")
                await pc.addIceCandidate(candidate)

    def configuration(self):
        servers = [
            RTCIceServer(urls=s.get("urls", []), username=s.get("username") or None, credential=s.get("credential") or None)
            for s in self.ice_servers
        ]
        return RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)

    # --- publish -----------------------------------------------------------------------------

    async def publish(self):
        """Offers the publish connection to the SFU, then trickles its candidates on it."""
        self.publish_pc = RTCPeerConnection(self.configuration())
        video = self.publish_pc.addTransceiver(MovingPicture(), direction="sendonly")
        video.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"])
        audio = self.publish_pc.addTransceiver(Tone(self.pitch), direction="sendonly")
        audio.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/opus"])
        await self.publish_pc.setLocalDescription(await self.publish_pc.createOffer())
        local = self.publish_pc.localDescription.sdp
        await self.send({"signal": {"to": self.sfu, "connection": "publish", "sdp": {"type": "offer", "sdp": without_candidates(local)}}})
        mid, candidates = first_section_candidates(local)
        for candidate in candidates + [""]:
            wire = {"candidate": candidate, "sdp_mid": mid, "sdp_mline_index": 0}
            await self.send({"signal": {"to": self.sfu, "connection": "publish", "candidate": wire}})

    # --- subscribe ---------------------------------------------------------------------------

    async def on_subscribe_offer(self, description):
        if description.get("type") != "offer":
            raise Failure(f"an SFU subscribe sdp of type {description.get('type')}")
        if self.subscribe_pc is None:
            self.subscribe_pc = RTCPeerConnection(self.configuration())
            self.subscribe_pc.on("track", self.on_track)
        offered = sections(description["sdp"])
        self._offered = {s["mid"]: s for s in offered}
        await self.subscribe_pc.setRemoteDescription(RTCSessionDescription(sdp=description["sdp"], type="offer"))
        await self.subscribe_pc.setLocalDescription(await self.subscribe_pc.createAnswer())
        local = self.subscribe_pc.localDescription.sdp
        if not self.trickle_subscribe:
            await self.send({"signal": {"to": self.sfu, "connection": "subscribe", "sdp": {"type": "answer", "sdp": local}}})
        else:  # once per connection: a re-answer's candidates are those already sent
            await self.send({"signal": {"to": self.sfu, "connection": "subscribe", "sdp": {"type": "answer", "sdp": without_candidates(local)}}})
            if not self.subscribe_offers:
                mid, candidates = first_section_candidates(local)
                for candidate in candidates + [""]:
                    wire = {"candidate": candidate, "sdp_mid": mid, "sdp_mline_index": 0}
                    await self.send({"signal": {"to": self.sfu, "connection": "subscribe", "candidate": wire}})
        self.subscribe_offers.append(offered)
        self.check_offer(offered)
        if os.environ.get("SFU_DEBUG"):
            summary = "; ".join(f"{x['kind']} {x['mid']} {x['direction']}{' port 0' if x['port'] == 0 else ''} {x['track'] or '-'}" for x in offered)
            print(f"    {self.name} subscribe offer {len(self.subscribe_offers)}: {summary}", flush=True)

    def check_offer(self, offered):
        """What docs/protocol.md promises of each subscribe offer; broken promises are kept."""
        for section in offered:
            mid, track = section["mid"], section["track"]
            if track is not None:
                if section["direction"] != "sendonly" or section["port"] == 0:
                    self.violations.append(f"section {mid} with a track is {section['direction']}, not sendonly")
                if not (track.startswith(f"{section['stream']}-") and section["stream"] != self.peer_id):
                    self.violations.append(f"section {mid}: track id {track} is not <another publisher's peer id>-<n>")
                if len(section["ssrcs"]) != 1:
                    self.violations.append(f"section {mid} declares {len(section['ssrcs'])} SSRCs, not 1")
                if self.mid_tracks.setdefault(mid, track) != track:
                    self.violations.append(f"section {mid} was reused: {self.mid_tracks[mid]}, then {track}")
            elif active(section):
                self.violations.append(f"section {mid} without a track is {section['direction']}, not inactive")
            elif mid in self.mid_tracks:
                self.ended_mids.add(mid)
        for mid in self.ended_mids:
            if any(s["mid"] == mid and s["track"] is not None for s in offered):
                self.violations.append(f"section {mid} came back after its track ended")

    def on_track(self, track):
        transceiver = next(t for t in self.subscribe_pc.getTransceivers() if t.receiver.track is track)
        section = self._offered.get(transceiver.mid, {})
        received = Received(track.kind, transceiver.mid, section.get("stream"), section.get("track"))
        self.received[transceiver.mid] = received
        self.consumers.append(asyncio.create_task(self.consume(track, received)))

    async def consume(self, track, received):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                received.ended = True
                self.changed()
                return
            received.frames += 1
            received.last_at = time.monotonic()
            if isinstance(frame, av.VideoFrame):
                received.sizes.add((frame.width, frame.height))
            self.changed()

    def check_offers(self):
        what = f"{self.name}'s {len(self.subscribe_offers)} subscribe offer(s) as documented: a sendonly section per track (msid <publisher> <publisher>-<n>, one SSRC), ended tracks' sections inactive, never reused"
        check(not self.violations, what + (f"; not so: {self.violations[:3]}" if self.violations else ""))

    def track_of(self, publisher, kind):
        matches = [r for r in self.received.values() if r.stream == publisher.peer_id and r.kind == kind]
        return matches[-1] if matches else None

    def frames_from(self, publisher, kind):
        track = self.track_of(publisher, kind)
        return track.frames if track else 0

    def quiet(self, track, for_s):
        """No frame of the track for the last `for_s` seconds."""
        return track.last_at is None or time.monotonic() - track.last_at >= for_s

    # --- leaving -----------------------------------------------------------------------------

    async def leave(self):
        if self.socket is not None:
            try:
                await self.send({"bye": {}})
                await asyncio.wait_for(self.socket.wait_closed(), 5)
            except (websockets.ConnectionClosed, asyncio.TimeoutError):
                pass
        await self.close_media()

    async def close_media(self):
        for task in self.consumers:
            task.cancel()
        for pc in (self.publish_pc, self.subscribe_pc):
            if pc is not None:
                await pc.close()
        if self.reader is not None:
            self.reader.cancel()
        if self.socket is not None:
            await self.socket.close()


def make_room(owner, members, name, mode):
    status, room = api("POST", "/v1/rooms", owner.token, {"name": name, "media": "sfu", "mode": mode, "max_participants": 8})
    check(status == 201, f"{mode} room with media sfu created ({status})")
    check(room.get("media") == "sfu" and room.get("mode") == mode, f"the room says media sfu, mode {mode}")
    for member in members:
        status, invite = api("POST", f"/v1/rooms/{room['id']}/invites", owner.token, {"max_uses": 1, "expires_in": 600})
        check(status == 201, f"invite for {member.name} ({status})")
        status, _ = api("POST", f"/v1/invites/{invite['token']}/accept", member.token)
        check(status in (200, 201), f"{member.name} accepted the invite ({status})")
    return room


async def enter(participants, room):
    """Everyone joins, learns the SFU and offers its publish connection."""
    for p in participants:
        await p.join(room["id"])
    for p in participants:
        await p.until(lambda: p.sfu is not None, 30, "the SFU's peer id (welcome.sfu or media_changed)")
        check(p.sfu != p.peer_id, f"{p.name} ({p.peer_id}) knows the SFU's peer id")
    for p in participants:
        await p.publish()


async def meeting(ann, bob, cat, made):
    print("meeting through the SFU: Ann, Bob and Cat", flush=True)
    everyone = [ann, bob, cat]
    room = make_room(ann, [bob, cat], "aiortc sfu meeting", "meeting")
    await enter(everyone, room)
    for p in everyone:
        await p.until(lambda: p.publish_answered or p.refusals, 15, "the SFU's answer on publish")
        check(p.publish_answered and not p.refusals, f"{p.name}'s publish offer answered ({p.refusals or 'no refusal'})")

    for p in everyone:
        others = [o for o in everyone if o is not p]
        enough = lambda: all(p.frames_from(o, "video") >= 30 and p.frames_from(o, "audio") >= 50 for o in others)
        await p.until(enough, 40, "30 video and 50 audio frames from each other participant")
        counts = ", ".join(f"{o.name} {p.frames_from(o, 'video')} video / {p.frames_from(o, 'audio')} audio" for o in others)
        check(True, f"{p.name} decoded frames through subscribe: {counts}")
        streams = {r.stream for r in p.received.values()}
        check(streams <= {o.peer_id for o in others}, f"{p.name}'s received tracks' msid stream ids are the publishers' peer ids ({sorted(streams)})")
        for o in others:
            video = p.track_of(o, "video")
            check(video.sizes == {(WIDTH, HEIGHT)}, f"{p.name} gets {o.name}'s picture at {WIDTH}x{HEIGHT} ({sorted(video.sizes)})")
            check(re.fullmatch(re.escape(o.peer_id) + r"-\d+", video.track_id or ""), f"{o.name}'s video track id is <publisher>-<n> ({video.track_id})")
        check(p.subscribe_pc.connectionState == "connected", f"{p.name}'s subscribe connection is connected")
        p.check_offers()

    print("track_request: a small tile, an unknown track, a pause and back", flush=True)
    cat_video, bob_video = ann.track_of(cat, "video"), ann.track_of(bob, "video")
    await ann.send({"signal": {"to": ann.sfu, "track_request": {"track_id": cat_video.track_id, "max_width": 160, "max_height": 90}}})
    await ann.send({"signal": {"to": ann.sfu, "track_request": {"track_id": f"{ann.peer_id}-unknown"}}})
    await ann.until(lambda: ann.refusals, 10, "a refusal of the unknown track")
    check([code for _, code in ann.refusals] == ["unknown_track"], f"a track_request for a track Ann does not receive is refused unknown_track ({ann.refusals}), the small tile is not")
    ann.refusals.clear()
    before = cat_video.frames
    await ann.until(lambda: cat_video.frames >= before + 30, 10, "Cat's video going on after the small-tile request")
    check(True, f"Cat's video goes on after the small-tile request (+{cat_video.frames - before} frames)")

    await ann.send({"signal": {"to": ann.sfu, "track_request": {"track_id": bob_video.track_id, "paused": True}}})
    await ann.until(lambda: ann.quiet(bob_video, 1.5), 10, "Bob's video stopping once paused")
    paused_at, cat_at = bob_video.frames, cat_video.frames
    await ann.until(lambda: cat_video.frames >= cat_at + 30, 10, "Cat's video while Bob's is paused")
    check(bob_video.frames == paused_at, f"paused: no frame of Bob's video meanwhile, Cat's go on (+{cat_video.frames - cat_at})")
    bob_audio = ann.track_of(bob, "audio")
    check(not ann.quiet(bob_audio, 1.0), "Bob's audio goes on while his video is paused")
    await ann.send({"signal": {"to": ann.sfu, "track_request": {"track_id": bob_video.track_id}}})
    await ann.until(lambda: bob_video.frames >= paused_at + 30, 15, "Bob's video coming back after the request without paused")
    check(not ann.refusals, f"resumed: Bob's video is back (+{bob_video.frames - paused_at} frames)")

    print("Cat leaves", flush=True)
    offers = {p.name: len(p.subscribe_offers) for p in (ann, bob)}
    await cat.leave()
    for p in (ann, bob):
        without_cat = lambda: any(
            not any(active(s) and s["stream"] == cat.peer_id for s in offer) for offer in p.subscribe_offers[offers[p.name]:]
        )
        await p.until(without_cat, 15, "a subscribe re-offer without Cat's tracks")
        check(True, f"{p.name} got a subscribe offer without Cat's tracks, and answered it")
        cat_tracks = [r for r in p.received.values() if r.stream == cat.peer_id]
        await p.until(lambda: all(r.ended or p.quiet(r, 1.5) for r in cat_tracks), 10, "Cat's frames stopping")
        ended = sum(r.ended for r in cat_tracks)
        other = p.track_of(bob if p is ann else ann, "video")
        at = other.frames
        await p.until(lambda: other.frames >= at + 15, 10, "the remaining participant's video after Cat left")
        check(True, f"{p.name}: Cat's {len(cat_tracks)} tracks stopped ({ended} ended by aiortc), the other's video goes on")
        p.check_offers()

    print("Cat comes back: a new peer id, new tracks", flush=True)
    cat2 = Participant("Cat", cat.pitch)
    cat2.email, cat2.token = cat.email, cat.token
    made.append(cat2)
    await enter([cat2], room)
    check(cat2.peer_id != cat.peer_id, "Cat is back under a new peer id")
    await cat2.until(lambda: cat2.publish_answered or cat2.refusals, 15, "the SFU's answer on publish")
    check(cat2.publish_answered and not cat2.refusals, f"Cat's new publish offer answered ({cat2.refusals or 'no refusal'})")
    for p in (ann, bob, cat2):
        others = [o for o in (ann, bob, cat2) if o is not p]
        enough = lambda: all(p.frames_from(o, "video") >= 30 and p.frames_from(o, "audio") >= 50 for o in others)
        await p.until(enough, 30, "30 video and 50 audio frames from each other participant")
        counts = ", ".join(f"{o.name} {p.frames_from(o, 'video')} video / {p.frames_from(o, 'audio')} audio" for o in others)
        check(True, f"{p.name} decoded frames through subscribe: {counts}")
        p.check_offers()

    everyone = [ann, bob, cat2]
    peer_ids = {p.peer_id for p in everyone} | {cat.peer_id}
    speakers = {s for p in everyone for s in p.speakers}
    check(speakers <= peer_ids, f"every speaker signal names a participant ({len(speakers)} distinct speakers told)")
    for p in everyone:
        await p.leave()


async def lecture(ann, bob):
    print("lecture through the SFU: Ann (owner) and Bob (member)", flush=True)
    room = make_room(ann, [bob], "aiortc sfu lecture", "lecture")
    await enter([ann, bob], room)
    await bob.until(lambda: bob.refusals or bob.publish_answered, 15, "the SFU's reply to Bob's publish offer")
    check(not bob.publish_answered and bob.refusals == [("publish", "not_allowed_to_publish")],
          f"Bob's publish offer refused on publish: not_allowed_to_publish ({bob.refusals})")
    await ann.until(lambda: ann.publish_answered or ann.refusals, 15, "the SFU's answer to Ann's publish offer")
    check(ann.publish_answered and not ann.refusals, f"Ann's (the owner's) publish offer answered ({ann.refusals or 'no refusal'})")
    await bob.until(lambda: bob.frames_from(ann, "video") >= 30, 30, "Ann's video at Bob")
    check(True, f"Bob, who may not publish, receives Ann ({bob.frames_from(ann, 'video')} video frames)")
    check(ann.frames_from(bob, "video") == 0, "Ann receives nothing of Bob")
    await ann.send({"signal": {"to": ann.sfu, "track_request": {"track_id": f"{bob.peer_id}-0", "paused": True}}})
    await ann.until(lambda: ann.refusals, 10, "a refusal of a track_request from Ann, who receives nothing")
    check(ann.refusals == [("subscribe", "unknown_track")], f"a track_request from Ann, who receives nothing, is refused unknown_track ({ann.refusals})")
    bob.check_offers()
    for p in (ann, bob):
        await p.leave()


async def main():
    ann, bob, cat = Participant("Ann", 440), Participant("Bob", 554, trickle_subscribe=True), Participant("Cat", 659)
    for p in (ann, bob, cat):
        p.sign_up()
    made = [ann, bob, cat]
    try:
        await meeting(ann, bob, cat, made)
    finally:
        for p in made:
            await p.close_media()
    ann2, bob2 = Participant("Ann", 440), Participant("Bob", 554)
    ann2.email, ann2.token, bob2.email, bob2.token = ann.email, ann.token, bob.email, bob.token
    try:
        await lecture(ann2, bob2)
    finally:
        for p in (ann2, bob2):
            await p.close_media()


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), 240))
    except Failure as failure:
        print(f"  FAILED: {failure}", file=sys.stderr, flush=True)
        sys.exit(1)
    except asyncio.TimeoutError:
        print("  FAILED: the scenario took over 240 s", file=sys.stderr, flush=True)
        sys.exit(1)
