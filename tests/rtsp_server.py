"""A loopback RTSP server for tests: Debian's GStreamer RTSP server, run by the system python3.

The test process (the project's virtualenv) cannot import GStreamer's Python bindings, so the
server runs as a child process: this file, executed by ``/usr/bin/python3`` with ``gi`` and
``GstRtspServer`` from Debian's packages::

    apt-get install -y --no-install-recommends python3-gi gir1.2-gst-rtsp-server-1.0 \\
        gstreamer1.0-plugins-base gstreamer1.0-plugins-good

It streams Motion JPEG over RTP (no H.264 encoder needed) at ``rtsp://127.0.0.1:PORT/PATH``: a
moving test pattern, or the JPEG frames of a folder (e.g. a video bench camera's ``img1/``),
looped. From a test::

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with LoopbackRtspServer(images=bench / "cam1" / "img1") as server:
        source = open_source(server.url, "cam1", open_timeout_s=3, read_timeout_s=1)
        ...
        server.kill()                   # the camera drops off the network
        server.start(start_index=100)   # and comes back, streaming from frame 100

Only the standard library is imported at module level: the server side runs without numpy.
"""

from __future__ import annotations

import argparse
import functools
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
APT_LINE = ("apt-get install -y --no-install-recommends python3-gi gir1.2-gst-rtsp-server-1.0 "
            "gstreamer1.0-plugins-base gstreamer1.0-plugins-good")
_PROBE = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
          "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
          "missing = [e for e in ('videotestsrc', 'jpegenc', 'rtpjpegpay', 'multifilesrc') if Gst.ElementFactory.find(e) is None]; "
          "print(' '.join(missing))")


@functools.cache
def unavailable_reason() -> str | None:
    """None when the loopback server can run here, else why not (and what to install)."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"no {SYSTEM_PYTHON} to run Debian's GStreamer RTSP server ({APT_LINE})"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["import failed"])[-1]
        return f"GStreamer RTSP server bindings missing ({last}): {APT_LINE}"
    if probe.stdout.strip():
        return f"GStreamer elements missing: {probe.stdout.strip()}: {APT_LINE}"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackRtspServer:
    """Starts, kills and restarts an RTSP server on 127.0.0.1 (one child process).

    Args:
        images: a folder of JPEG frames named ``%06d.jpg`` from 1 (a bench camera's ``img1``);
            None streams a moving test pattern.
        fps: frame rate of the stream.
        size: (width, height) of the test pattern.
        port: TCP port; a free one when None. It stays the same across restarts.
        path: the mount point (``rtsp://127.0.0.1:PORT/PATH``).
    """

    def __init__(self, images: str | Path | None = None, fps: int = 15, size: tuple[int, int] = (320, 240),
                 port: int | None = None, path: str = "cam"):
        self.images = Path(images) if images is not None else None
        self.fps = fps
        self.size = size
        self.port = port or free_port()
        self.path = path.strip("/")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{self.path}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, start_index: int = 1, timeout: float = 20.0) -> LoopbackRtspServer:
        """Start the server (streaming from frame ``start_index`` of ``images``); returns once it listens."""
        if self.running:
            raise RuntimeError(f"the RTSP server on port {self.port} is already running")
        command = [SYSTEM_PYTHON, str(Path(__file__).resolve()), "--port", str(self.port), "--path", self.path,
                   "--fps", str(self.fps), "--size", f"{self.size[0]}x{self.size[1]}", "--start-index", str(start_index)]
        if self.images is not None:
            command += ["--images", str(self.images)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace").strip()
                raise RuntimeError(f"the RTSP server exited with code {self.process.returncode}: {err}")
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready and self.process.stdout.readline().strip() == b"READY":
                return self
        self.kill()
        raise RuntimeError(f"the RTSP server did not start listening on port {self.port} within {timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL the server, as a camera that loses power: clients see the stream stop dead."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(timeout=10)
            for stream in (self.process.stdout, self.process.stderr):
                stream.close()
            self.process = None

    def restart(self, start_index: int = 1, timeout: float = 20.0) -> LoopbackRtspServer:
        self.kill()
        return self.start(start_index, timeout)

    def __enter__(self) -> LoopbackRtspServer:
        return self.start() if not self.running else self

    def __exit__(self, *exc: object) -> None:
        self.kill()


# -- the server side (system python3 with gi) ---------------------------------------------------
def _launch_line(args: argparse.Namespace) -> str:
    if args.images:
        location = str(Path(args.images) / "%06d.jpg")
        # decoded and encoded again: the payloader needs the frame size in the caps and 4:2:0 JPEG
        source = (f'multifilesrc location="{location}" index={args.start_index} start-index={args.start_index} loop=true '
                  f"caps=image/jpeg,framerate={args.fps}/1 ! identity sync=true ! jpegdec ! videoconvert ! video/x-raw,format=I420 ! jpegenc quality=90")
    else:
        width, height = (int(v) for v in args.size.split("x"))
        source = (f"videotestsrc pattern=ball is-live=true ! video/x-raw,format=I420,width={width},height={height},"
                  f"framerate={args.fps}/1 ! jpegenc quality=85")
    return f"( {source} ! rtpjpegpay name=pay0 pt=26 )"


def serve(args: argparse.Namespace) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(_launch_line(args))
    factory.set_shared(True)  # one stream for every client, as a camera has
    server.get_mount_points().add_factory("/" + args.path, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{args.port}")
    print("READY", flush=True)
    GLib.MainLoop().run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="cam")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--images", default=None)
    parser.add_argument("--start-index", type=int, default=1)
    serve(parser.parse_args())


if __name__ == "__main__":
    main()
