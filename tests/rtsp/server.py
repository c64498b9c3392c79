#!/usr/bin/python3
"""A loopback RTSP server for the ingest tests (GStreamer's RTSP server through PyGObject).

Serves a live test pattern on rtsp://127.0.0.1:PORT/PATH: H.264 (or MJPEG / H.265, to test that
they are refused) and PCMU audio (or PCMA, Opus, none). Prints "ready PORT" once it listens, then
serves until SIGTERM/SIGINT. Debian packages: python3-gi gir1.2-gst-rtsp-server-1.0
python3-gst-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
gstreamer1.0-rtsp (H.265 also needs gstreamer1.0-plugins-bad).
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

VIDEO = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate=300"
    " ! video/x-h264,profile=constrained-baseline ! rtph264pay name=pay0 pt=96 config-interval=-1",
    "mjpeg": "video/x-raw,format=I420 ! jpegenc ! rtpjpegpay name=pay0 pt=26",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} ! rtph265pay name=pay0 pt=96",
}
AUDIO = {
    "pcmu": "audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1",
    "pcma": "audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1",
    "opus": "audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=48000,channels=1 ! opusenc ! rtpopuspay name=pay1 pt=97",
    "none": "",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--path", default="/cam")
    parser.add_argument("--video", choices=sorted(VIDEO), default="h264")
    parser.add_argument("--audio", choices=sorted(AUDIO), default="pcmu")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--gop", type=int, default=0, help="frames from one keyframe to the next; 0: two seconds")
    parser.add_argument("--user", help="require basic auth with this user")
    parser.add_argument("--password", default="")
    parser.add_argument(
        "--resize-after", type=float, default=0, help="seconds after which the picture doubles in size (new SPS)"
    )
    args = parser.parse_args()

    Gst.init(None)
    missing = [e for e in ("x264enc", "rtph264pay", "mulawenc", "jpegenc") if Gst.ElementFactory.find(e) is None]
    if missing:
        sys.exit(f"missing GStreamer elements {missing}: install the packages named in {__file__}")

    caps = f"video/x-raw,width={args.width},height={args.height},framerate={args.fps}/1"
    video = VIDEO[args.video].format(gop=args.gop or args.fps * 2)
    launch = f"( videotestsrc is-live=true pattern=ball ! capsfilter name=size caps={caps} ! videoconvert ! {video} {AUDIO[args.audio]} )"

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)

    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("user", "media.factory.access", True)
        permissions.add_permission_for_role("user", "media.factory.construct", True)
        factory.set_permissions(permissions)

    if args.resize_after > 0:

        def configured(_factory, media):
            size = media.get_element().get_by_name("size")

            def resize():
                bigger = f"video/x-raw,width={args.width * 2},height={args.height * 2},framerate={args.fps}/1"
                size.set_property("caps", Gst.Caps.from_string(bigger))
                print("resized", flush=True)
                return False

            GLib.timeout_add(int(args.resize_after * 1000), resize)

        factory.connect("media-configure", configured)

    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{args.port}")
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"ready {server.get_bound_port()}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
