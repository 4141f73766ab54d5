"""Where the camera app's frames come from: webcams, video files, image folders, RTSP/HTTP
streams, GStreamer pipelines and the video bench's MOTChallenge camera folders.

:func:`open_source` turns a ``--source`` spec into a :class:`Source` that reads in its own thread:

- live sources (webcam, URL, GStreamer pipeline) keep only the newest frame, so a slow consumer
  sees the present rather than a growing backlog; a dropped stream is reopened with exponential
  backoff while the other cameras keep running, and :attr:`Source.state` says where it stands;
- files and folders deliver every frame, in order, through a bounded queue: the reader waits
  for the consumer instead of skipping.

Open and read timeouts are passed to ``cv2.VideoCapture`` at open time
(``CAP_PROP_OPEN_TIMEOUT_MSEC``, ``CAP_PROP_READ_TIMEOUT_MSEC``, OpenCV 4.5.2+); a backend that
refuses them (OpenCV bails out of ``open`` on parameters a backend does not know) is opened
again without them. FFmpeg picks the RTSP transport itself (UDP, then TCP); set
``OPENCV_FFMPEG_CAPTURE_OPTIONS="rtsp_transport;tcp"`` to force TCP through lossy networks.

OpenCV's and FFmpeg's own warnings ("moov atom not found", "[ WARN:0] ... can't be used to
capture by name") are silenced, since the errors raised here say what went wrong in one line;
set ``OPENCV_LOG_LEVEL`` or ``OPENCV_FFMPEG_LOGLEVEL`` to see them again.
"""

from __future__ import annotations

import configparser
import contextlib
import functools
import logging
import math
import os
import queue
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from dgnet_edge.apps.camera.defaults import OPEN_TIMEOUT_S, READ_TIMEOUT_S
from dgnet_edge.errors import SourceError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
FILE_QUEUE_FRAMES = 8  # frames a file reader decodes ahead of the consumer
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0

SPEC_HELP = ("expected a webcam index (0), a video file, an image folder, an rtsp:// or http:// URL, "
             "a GStreamer pipeline (elements joined by '!') or a video bench camera folder (DIR/cam1)")


@dataclass
class Frame:
    """One image of one camera.

    ``index`` is the 1-based frame number in its source (from the file name for MOTChallenge
    folders); ``time`` is seconds: ``(index - 1) / fps`` for files with a frame rate, else the
    monotonic clock when the frame was read.
    """

    camera: str
    index: int
    image: np.ndarray  # (H, W, 3) uint8, BGR
    time: float


# -- GStreamer pipelines for a Jetson ------------------------------------------------------------
def jetson_csi_pipeline(sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30) -> str:
    """A CSI camera through the Argus ISP, converted to BGR in hardware (nvvidconv) and by videoconvert."""
    return (f"nvarguscamerasrc sensor-id={sensor_id} ! "
            f"video/x-raw(memory:NVMM), width=(int){width}, height=(int){height}, format=(string)NV12, "
            f"framerate=(fraction){fps}/1 ! nvvidconv ! video/x-raw, format=(string)BGRx ! "
            f"videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false")


def jetson_rtsp_pipeline(url: str, latency: int = 200, codec: str = "h264") -> str:
    """An RTSP camera decoded by the Jetson's hardware decoder (nvv4l2decoder); ``codec`` h264 or h265."""
    if codec not in ("h264", "h265"):
        raise SourceError(f"codec {codec!r} for {url}: expected h264 or h265")
    return (f"rtspsrc location={url} latency={latency} ! rtp{codec}depay ! {codec}parse ! nvv4l2decoder ! "
            f"nvvidconv ! video/x-raw, format=(string)BGRx ! videoconvert ! video/x-raw, format=(string)BGR ! "
            f"appsink drop=true max-buffers=1 sync=false")


# -- OpenCV capture ------------------------------------------------------------------------------
def import_cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise SourceError("OpenCV is not installed: pip install opencv-python-headless "
                          "(on a Jetson use JetPack's python3-opencv, which has GStreamer)") from None
    _quiet(cv2)
    return cv2


@functools.lru_cache(maxsize=None)  # once per process
def _quiet(cv2: Any) -> None:
    """Keep OpenCV's and FFmpeg's warnings off stderr unless the user asked for them."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when a capture opens
    cv_log = getattr(getattr(cv2, "utils", None), "logging", None)
    if "OPENCV_LOG_LEVEL" not in os.environ and cv_log is not None:
        cv_log.setLogLevel(cv_log.LOG_LEVEL_ERROR)


def has_backend(name: str) -> bool:
    """Whether this OpenCV can capture with ``name`` (FFMPEG, GSTREAMER, V4L2...)."""
    cv2 = import_cv2()
    registry = getattr(cv2, "videoio_registry", None)
    backend = getattr(cv2, f"CAP_{name}", None)
    if registry is not None and backend is not None:
        return bool(registry.hasBackend(backend))
    line = re.search(rf"^\s*{name}:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE | re.IGNORECASE)
    return line is not None and line.group(1).upper() == "YES"


def ffmpeg_or_any() -> int:
    """FFmpeg for files and URLs where this OpenCV has it, else whichever backend opens them."""
    cv2 = import_cv2()
    return cv2.CAP_FFMPEG if has_backend("FFMPEG") else cv2.CAP_ANY


def timeout_params(open_timeout_s: float, read_timeout_s: float) -> list[int]:
    """``[CAP_PROP_OPEN_TIMEOUT_MSEC, ms, CAP_PROP_READ_TIMEOUT_MSEC, ms]`` for the props this OpenCV has."""
    cv2 = import_cv2()
    params: list[int] = []
    for prop, seconds in (("CAP_PROP_OPEN_TIMEOUT_MSEC", open_timeout_s), ("CAP_PROP_READ_TIMEOUT_MSEC", read_timeout_s)):
        if hasattr(cv2, prop):
            params += [getattr(cv2, prop), int(seconds * 1000)]
    return params


def open_capture(target: int | str, api: int, params: list[int], retry_without_params: bool = True) -> Any | None:
    """An opened ``cv2.VideoCapture`` or None; tried again without ``params`` when the backend may refuse them."""
    cv2 = import_cv2()
    attempts = [params, []] if params and retry_without_params else [params]
    for attempt in attempts:
        try:
            capture = cv2.VideoCapture(target, api, attempt) if attempt else cv2.VideoCapture(target, api)
        except cv2.error as e:
            log.debug("cv2.VideoCapture(%r) failed: %s", target, e)
            continue
        if capture.isOpened():
            return capture
        capture.release()
    return None


class CaptureReader:
    """Frames of a ``cv2.VideoCapture`` (webcam, video file, URL, GStreamer pipeline)."""

    def __init__(self, target: int | str, api: int, describe: str, params: list[int], fps: float | None = None):
        self.target = target
        self.api = api
        self.describe = describe
        self.params = params
        self.fps = fps
        self.capture: Any = None
        self.count = 0  # frames read, across reopenings

    def open(self) -> bool:
        cv2 = import_cv2()
        # FFmpeg knows both timeouts: a failure with them is real, and a retry without them would
        # wait FFmpeg's own 30 s default on a stream that does not answer.
        retry = self.api != cv2.CAP_FFMPEG
        self.capture = open_capture(self.target, self.api, self.params, retry)
        if self.capture is not None and self.fps is None:
            rate = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
            self.fps = rate if 0 < rate < 1000 else None
        return self.capture is not None

    def read(self) -> np.ndarray | None:
        if self.capture is None:
            return None
        ok, image = self.capture.read()
        if not ok or image is None:
            return None
        if image.ndim == 2 or image.shape[2] != 3:  # GRAY8 or BGRx pipelines, some webcams
            cv2 = import_cv2()
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_BGRA2BGR)
        return image

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """Frames until the capture stops giving them; the index keeps counting across reopenings."""
        while (image := self.read()) is not None:
            self.count += 1
            yield self.count, image

    def reopen(self) -> bool:
        self.close()
        return self.open()

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


class ImageFilesReader:
    """Images from a list of files, each with its frame index; unreadable files are skipped, and
    images of another size than the first are resized to it (one warning names the first such
    file), so a folder reads as one video whose frames all have one size.

    With ``loop`` the files start over at the end, and frame numbers go on counting (pass ``k``
    gives frame ``k * last_index + index``), so a replayed folder reads like one long recording.
    """

    def __init__(self, files: list[Path], indices: list[int], describe: str, fps: float | None = None, loop: bool = False):
        self.files = files
        self.indices = indices
        self.describe = describe
        self.fps = fps
        self.loop = loop
        self.position = 0
        self.skipped = 0
        self.passes = 0
        self.size: tuple[int, int] | None = None  # (height, width) of the first readable image
        self.resized = 0

    def next(self) -> tuple[int, np.ndarray] | None:
        cv2 = import_cv2()
        while True:
            if self.position == len(self.files):
                if self.skipped >= len(self.files) * (self.passes + 1):
                    raise SourceError(f"{self.describe}: {len(self.files)} image(s) found, none could be read "
                                      f"(corrupt or not images): a source needs readable frames")
                if not self.loop:
                    return None
                self.position, self.passes = 0, self.passes + 1
            path, index = self.files[self.position], self.indices[self.position]
            self.position += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                return self.passes * self.indices[-1] + index, self._fit(path, image)
            self.skipped += 1
            log.warning("%s: cannot decode %s, skipped", self.describe, path)

    def _fit(self, path: Path, image: np.ndarray) -> np.ndarray:
        if self.size is None:
            self.size = image.shape[:2]
        if image.shape[:2] == self.size:
            return image
        height, width = self.size
        if not self.resized:
            log.warning("%s: %s is %dx%d, the first frame %dx%d: frames of another size are resized to %dx%d",
                        self.describe, path, image.shape[1], image.shape[0], width, height, width, height)
        self.resized += 1
        cv2 = import_cv2()
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


# -- the source ----------------------------------------------------------------------------------
class Source:
    """A camera or video read in its own thread; a context manager.

    Attributes:
        name: the camera name carried by each :class:`Frame`.
        live: True for webcams, streams and pipelines (latest frame wins, reconnects).
        fps: frames per second when known.
        state: ``connected``, ``reconnecting`` (live, stream lost), ``ended`` (end of file, closed,
            or a live source lost with ``reconnect=False``) or ``failed`` (the reader thread hit
            an error; :attr:`error` says which).
        reconnects: how many times a dropped live source has been reopened.
        dropped: live frames replaced by a newer one before anyone read them.
        length: the frames of a video bench camera folder, None for other sources.
    """

    def __init__(self, name: str, spec: str, live: bool, fps: float | None, frames: Callable[[], Iterator[tuple[int, np.ndarray]]],
                 reopen: Callable[[], bool] | None = None, release: Callable[[], None] = lambda: None,
                 reconnect: bool = True, backoff_s: tuple[float, float] = (BACKOFF_FIRST_S, BACKOFF_MAX_S)):
        self.name = name
        self.spec = spec
        self.live = live
        self.fps = fps
        self.state = "connected"
        self.reconnects = 0
        self.dropped = 0
        self.frames_read = 0
        self.length: int | None = None
        self.error: str | None = None
        self._frames = frames
        self._reopen = reopen
        self._release = release
        self._reconnect = reconnect and live and reopen is not None
        self._backoff = backoff_s
        self._stop = threading.Event()
        self._settled = threading.Event()  # set by the first frame, or by the end of the source
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._queue: queue.Queue[Frame | None] = queue.Queue(maxsize=FILE_QUEUE_FRAMES)
        self._thread = threading.Thread(target=self._run, name=f"source-{name}", daemon=True)
        self._thread.start()

    # -- reader thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    for index, image in self._frames():
                        if self._stop.is_set():
                            break
                        self._deliver(index, image)
                except Exception as e:  # noqa: BLE001 - a decoder error on a live stream is a drop
                    if not self._reconnect:
                        raise
                    self.error = f"{type(e).__name__}: {e}"
                    log.warning("camera %s: %s", self.name, self.error)
                if self._stop.is_set() or not self._reconnect:
                    break
                self._reconnect_with_backoff()
            self._finish("ended")
        except Exception as e:  # noqa: BLE001 - reported through state, error and read(), never lost
            if isinstance(e, SourceError):  # the source's own fault: read() says it in one line
                self.error = str(e)
            else:
                log.exception("camera %s: reader thread failed", self.name)
                self.error = f"{type(e).__name__}: {e}"
            self._finish("failed")
        finally:
            self._release()

    def _deliver(self, index: int, image: np.ndarray) -> None:
        if self.live:
            frame = Frame(self.name, index, image, time.monotonic())
            with self._cond:
                if self._latest is not None:
                    self.dropped += 1
                self._latest = frame
                self.frames_read += 1
                self._cond.notify_all()
            self._settled.set()
            return
        stamp = (index - 1) / self.fps if self.fps else time.monotonic()
        frame = Frame(self.name, index, image, stamp)
        while not self._stop.is_set():
            try:
                self._queue.put(frame, timeout=0.1)
                self.frames_read += 1
                self._settled.set()
                return
            except queue.Full:
                continue

    def _reconnect_with_backoff(self) -> None:
        self.state = "reconnecting"
        log.warning("camera %s: stream lost, reconnecting to %s", self.name, self.spec)
        delay, longest = self._backoff
        while not self._stop.wait(delay):
            try:
                reopened = self._reopen()
            except Exception as e:  # noqa: BLE001 - one failed attempt; the next one follows
                self.error = f"{type(e).__name__}: {e}"
                reopened = False
            if reopened:
                self.reconnects += 1
                self.state = "connected"
                log.warning("camera %s: reconnected (reconnect %d)", self.name, self.reconnects)
                return
            delay = min(delay * 2, longest)

    def _finish(self, state: str) -> None:
        self.state = state
        self._settled.set()
        with self._cond:
            self._cond.notify_all()
        if not self.live:
            # The end marker waits behind the last frames while the consumer reads; once the
            # source is closed, frames nobody will read make room for it.
            while True:
                try:
                    self._queue.put(None, timeout=0.1)
                    return
                except queue.Full:
                    if self._stop.is_set():
                        with contextlib.suppress(queue.Empty):
                            self._queue.get_nowait()

    # -- consumer side ---------------------------------------------------------------------------
    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame (live: the newest one not yet read); None once the source has ended.

        Raises TimeoutError when no frame came within ``timeout`` seconds while the source is
        still running (a live source may be reconnecting: see :attr:`state`), and SourceError
        when the reader thread failed.
        """
        if self._stop.is_set():
            return None
        if self.live:
            with self._cond:
                ready = self._cond.wait_for(lambda: self._latest is not None or self.state in ("ended", "failed"), timeout)
                frame, self._latest = self._latest, None
            if frame is None and ready:
                return self._ended()
            if frame is None:
                raise TimeoutError(f"camera {self.name}: no frame within {timeout} s ({self.state})")
            return frame
        try:
            frame = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"camera {self.name}: no frame within {timeout} s") from None
        if frame is None:
            self._queue.put_nowait(None)  # later reads see the end too
            return self._ended()
        return frame

    def ended_empty(self, timeout: float | None = None) -> bool:
        """Whether the source ended without a single frame (an empty video): waits up to
        ``timeout`` seconds for the first frame; False while it may still come, or when reading
        failed (:meth:`read` raises that error)."""
        self._settled.wait(timeout)
        return self.state == "ended" and self.frames_read == 0 and not self._stop.is_set()

    def _ended(self) -> None:
        if self.state == "failed":
            raise SourceError(f"camera {self.name} ({self.spec}): reading failed: {self.error}")
        return None

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def close(self, timeout: float = 10.0) -> None:
        """Stop the reader thread and release the device (waits up to ``timeout`` for a blocked read)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join(timeout)
        if self.state in ("connected", "reconnecting"):
            self.state = "ended"

    @property
    def alive(self) -> bool:
        """Whether the reader thread still runs."""
        return self._thread.is_alive()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Source({self.name!r}, {self.spec!r}, live={self.live}, state={self.state!r}, reconnects={self.reconnects})"


# -- spec parsing -------------------------------------------------------------------------------
def _capture_source(name: str, spec: str, reader: CaptureReader, live: bool, reconnect: bool, what: str) -> Source:
    if not reader.open():
        raise SourceError(f"{spec}: cannot open {what}; {reader.describe}")
    return Source(name, spec, live, reader.fps, reader.frames, reader.reopen, reader.close, reconnect)


def _files_source(name: str, spec: str, reader: ImageFilesReader) -> Source:
    return Source(name, spec, False, reader.fps, lambda: iter(reader.next, None))


def image_files(folder: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def read_seqinfo(path: Path) -> configparser.SectionProxy:
    """The [Sequence] section of a MOTChallenge seqinfo.ini; its frameRate (a positive number) and
    seqLength (a whole number of frames) are checked when present."""
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as e:
        raise SourceError(f"{path}: not a MOTChallenge seqinfo.ini ({type(e).__name__}); rewrite it with `dgnet-edge data video`") from None
    if not parser.has_section("Sequence"):
        raise SourceError(f"{path}: no [Sequence] section; a MOTChallenge seqinfo.ini has one (rewrite it with `dgnet-edge data video`)")
    info = parser["Sequence"]
    checks = (("frameRate", float, lambda v: math.isfinite(v) and v > 0, "a positive number of frames per second"),
              ("seqLength", int, lambda v: v >= 0, "a whole number of frames (0 or more)"))
    for key, kind, ok, expected in checks:
        text = info.get(key)
        if text is None:
            continue
        try:
            good = ok(kind(text))
        except ValueError:
            good = False
        if not good:
            raise SourceError(f"{path}: {key} = {text!r}: expected {expected} (rewrite it with `dgnet-edge data video`)")
    return info


def _mot_source(folder: Path, name: str, spec: str, params: list[int], loop: bool = False) -> Source:
    info = read_seqinfo(folder / "seqinfo.ini")
    fps = float(info["frameRate"]) if "frameRate" in info else None
    frames_dir = folder / info.get("imDir", "img1")
    if frames_dir.is_dir():
        files = image_files(frames_dir, (info.get("imExt", ".jpg").lower(),))
        try:
            indices = [int(p.stem) for p in files]
        except ValueError:
            bad = next(p for p in files if not p.stem.isdigit())
            raise SourceError(f"{bad}: MOTChallenge frames are named by frame number (000001.jpg)") from None
        if not files:
            raise SourceError(f"{frames_dir}: no {info.get('imExt', '.jpg')} frames")
        source = _files_source(name, spec, ImageFilesReader(files, indices, str(frames_dir), fps, loop))
    elif loop:
        raise SourceError(f"{folder}: only frame folders can be replayed in a loop, and {frames_dir} is missing; "
                          f"write frames with `dgnet-edge data video --frames`")
    else:
        video = folder.parent / f"{folder.name}.mp4"
        if not video.is_file():
            raise SourceError(f"{folder}: a MOTChallenge camera folder without frames ({frames_dir}) or a video ({video}); "
                              f"write them with `dgnet-edge data video`")
        reader = CaptureReader(str(video), ffmpeg_or_any(), "the video is unreadable (corrupt or an unsupported codec)", params, fps)
        source = _capture_source(name, spec, reader, False, False, f"the camera's video {video}")
    source.length = int(info.get("seqLength", 0))
    return source


def _folder_source(folder: Path, name: str, spec: str, params: list[int], loop: bool = False) -> Source:
    if (folder / "seqinfo.ini").is_file():
        return _mot_source(folder, name, spec, params, loop)
    cameras = sorted(p.name for p in folder.iterdir() if (p / "seqinfo.ini").is_file())
    if cameras:
        shown = " ".join(f"--source {folder / c}" for c in cameras[:4]) + (" ..." if len(cameras) > 4 else "")
        raise SourceError(f"{folder}: a video bench with cameras {', '.join(cameras)}: give one source per camera ({shown})")
    files = image_files(folder)
    if not files:
        raise SourceError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder; {SPEC_HELP}")
    return _files_source(name, spec, ImageFilesReader(files, list(range(1, len(files) + 1)), str(folder), loop=loop))


def _url_name(spec: str) -> str:
    parsed = urlparse(spec)
    tail = parsed.path.strip("/").replace("/", "-")
    return f"{parsed.hostname or parsed.scheme}{'-' + tail if tail else ''}"


def is_url(spec: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", spec) is not None and spec.split("://", 1)[0].lower() in URL_SCHEMES


def open_source(spec: str, name: str | None = None, *, open_timeout_s: float = OPEN_TIMEOUT_S, read_timeout_s: float = READ_TIMEOUT_S,
                reconnect: bool = True, loop: bool = False) -> Source:
    """Open ``spec`` and start reading it; SourceError naming the spec when it cannot be opened.

    Args:
        spec: webcam index ("0") or device (/dev/video0), video file, image folder (sorted
            images), rtsp/http URL, GStreamer pipeline (contains "!"), or a video bench camera
            folder (DIR/camN with seqinfo.ini: img1/ frames, or DIR/camN.mp4).
        name: the camera name in frames (default: the folder or file name, ``webcamN``, the host).
        open_timeout_s, read_timeout_s: how long opening, and then each frame, may take for
            streams and files (a stalled stream counts as dropped after ``read_timeout_s``).
        reconnect: reopen a dropped live source with exponential backoff (0.5 s doubling to 10 s).
        loop: replay an image folder or a bench camera's frames without end (frame numbers keep
            counting); other sources cannot loop.
    """
    cv2 = import_cv2()
    spec = str(spec).strip()
    if not spec:
        raise SourceError(f"empty source; {SPEC_HELP}")
    params = timeout_params(open_timeout_s, read_timeout_s)
    if loop and not Path(spec).expanduser().is_dir():
        raise SourceError(f"{spec}: only image folders and bench camera folders can be replayed in a loop")
    if "!" in spec:
        if not has_backend("GSTREAMER"):
            raise SourceError(
                f"GStreamer pipeline {spec!r}: this OpenCV ({cv2.__version__}, {Path(cv2.__file__).parent}) is built "
                f"without GStreamer (see cv2.getBuildInformation()); use an OpenCV with GStreamer, e.g. JetPack's "
                f"python3-opencv (pip uninstall opencv-python opencv-contrib-python-headless in a venv made with "
                f"--system-site-packages)")
        reader = CaptureReader(spec, cv2.CAP_GSTREAMER, "check the pipeline with gst-launch-1.0 (it must end in appsink)", params)
        return _capture_source(name or "gstreamer", spec, reader, True, reconnect, "the GStreamer pipeline")
    if is_url(spec):
        reader = CaptureReader(spec, ffmpeg_or_any(), f"no stream within {open_timeout_s:g} s: check the address, "
                               f"credentials and that the camera is on", params)
        return _capture_source(name or _url_name(spec), spec, reader, True, reconnect, "the stream")
    if spec.isdigit() or spec.startswith("/dev/video") or _is_video_device(Path(spec)):
        target: int | str = int(spec) if spec.isdigit() else spec
        reader = CaptureReader(target, cv2.CAP_ANY, "check that the camera is plugged in and not used by another program", params)
        return _capture_source(name or (f"webcam{spec}" if spec.isdigit() else Path(spec).name), spec, reader, True,
                               reconnect, "the webcam")
    path = Path(spec).expanduser()
    if path.is_dir():
        return _folder_source(path, name or path.name, spec, params, loop)
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise SourceError(f"{spec}: a single image; give the folder that holds the frames")
        reader = CaptureReader(str(path), ffmpeg_or_any(), "not a readable video (corrupt or an unsupported codec)", params)
        return _capture_source(name or path.stem, spec, reader, False, False, "the video file")
    if path.exists():
        raise SourceError(f"{spec}: {_special_file(path)}; {SPEC_HELP}")
    raise SourceError(f"{spec}: no such file or folder; {SPEC_HELP}")


def _is_video_device(path: Path) -> bool:
    """A character device that is a V4L2 camera under another name (/dev/v4l/by-id/... links to /dev/videoN)."""
    try:
        return stat.S_ISCHR(path.stat().st_mode) and path.resolve().name.startswith("video")
    except OSError:
        return False


def _special_file(path: Path) -> str:
    """What a path that exists but is neither a file nor a folder is, and why no frame comes from it."""
    mode = path.stat().st_mode
    if stat.S_ISFIFO(mode):
        return ("a named pipe (FIFO), not a video file: a pipe cannot be opened as a video; "
                "stream through a URL (udp://, rtsp://) or a GStreamer pipeline instead")
    if stat.S_ISCHR(mode):
        return "a character device that is not a camera (cameras are /dev/videoN), so it holds no video"
    if stat.S_ISBLK(mode):
        return "a block device (a disk), not a video file or folder"
    if stat.S_ISSOCK(mode):
        return "a socket, not a video file or folder; stream through a URL or a GStreamer pipeline instead"
    return "not a regular file or folder"
