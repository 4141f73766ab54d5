"""The camera app's sinks: annotated video per camera, MOT text per camera (the input of
``dgnet-edge eval-tracks``) and events, as JSON lines (:class:`EventLog`) or to an MQTT broker
(:mod:`.mqtt_events`), picked by :func:`open_event_sink`. Every sink takes each frame's
:class:`~dgnet_edge.apps.camera.live.record.FrameResult` in :meth:`Sink.write` and writes its files
in :meth:`Sink.close`.

Video and MOT files are written to a temporary name and renamed when the run ends, so a killed
run never leaves a half-written file under the final name (the next run into the same folder
removes the temporary videos of runs that are gone); the event stream is appended and flushed
line by line instead, since other systems follow it while the app runs.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from dgnet_edge.data.video.mot import MotRows, write_mot
from dgnet_edge.staging import process_alive

if TYPE_CHECKING:
    from dgnet_edge.apps.camera.live.record import FrameResult

log = logging.getLogger(__name__)
TRACK_ID_OFFSET = 100_000  # MOT ids of per-camera tracks when there is no gallery: camera k -> k * offset + id
TEMP_VIDEO = re.compile(r"^\.(.+)\.(\d+)\.tmp\.mp4$")  # .CAMERA.PID.tmp.mp4


@dataclass(frozen=True)
class Label:
    """One box to draw: where, what to write, and the identity that picks its colour."""

    box: np.ndarray  # (4,) x1, y1, x2, y2
    text: str
    key: int  # identity id (or negative track id while the identity is unknown)
    track_id: int = 0
    selected: bool = False


def colour_of(key: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour per identity (golden-ratio hue steps)."""
    import cv2

    hue = int((key * 0.618033988749895 % 1.0) * 180)
    sat = 80 if key < 0 else 220
    hsv = np.uint8([[[hue, sat, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def annotate(image: np.ndarray, labels: Sequence[Label], header: str) -> np.ndarray:
    """A copy of ``image`` (BGR) with the boxes, their labels and a header line drawn on it."""
    import cv2

    canvas = image.copy()
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    for label in labels:
        x1, y1, x2, y2 = (int(round(v)) for v in label.box)
        colour = colour_of(label.key)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 3 if label.selected else 2)
        (tw, th), base = cv2.getTextSize(label.text, font, scale, 1)
        ty = max(y1, th + base + 2)
        cv2.rectangle(canvas, (x1, ty - th - base - 2), (x1 + tw + 4, ty), colour, -1)
        cv2.putText(canvas, label.text, (x1 + 2, ty - base), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    (tw, th), base = cv2.getTextSize(header, font, 0.55, 1)
    cv2.rectangle(canvas, (0, 0), (tw + 10, th + base + 8), (0, 0, 0), -1)
    cv2.putText(canvas, header, (5, th + 4), font, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


class Sink:
    """Where the live path's results go. ``what`` names the files :meth:`close` returns; a sink that
    ``draws`` gets each result's labels and header filled in."""

    what = ""
    draws = False

    def start(self, cameras: Sequence[str]) -> None:
        """The cameras of the run, in order, before the first frame."""

    def write(self, result: FrameResult) -> None:
        raise NotImplementedError

    def close(self) -> list[Path]:
        """Finish; the files written."""
        return []


class VideoSink(Sink):
    """An annotated video per camera, ``DIR/<camera>.mp4``, renamed into place on :meth:`close`."""

    what = "annotated video"
    draws = True

    def __init__(self, folder: Path, fps: float):
        self.folder = folder
        self.fps = fps
        self._writers: dict[str, Any] = {}
        self._tmp: dict[str, Path] = {}
        self._size: dict[str, tuple[int, int]] = {}  # (width, height) of each camera's video
        self._resized: set[str] = set()  # cameras warned about frames of another size
        remove_stale_videos(folder)

    def write(self, result: FrameResult) -> None:
        if result.frame is not None:
            self.write_image(result.camera, annotate(result.frame.image, result.labels, result.header))

    def write_image(self, camera: str, image: np.ndarray) -> None:
        import cv2

        writer = self._writers.get(camera)
        if writer is None:
            tmp = self.folder / f".{camera}.{os.getpid()}.tmp.mp4"
            h, w = image.shape[:2]
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not writer.isOpened():
                raise OSError(f"OpenCV cannot write an mp4 video to {tmp}")
            self._writers[camera], self._tmp[camera], self._size[camera] = writer, tmp, (w, h)
        size = self._size[camera]
        if image.shape[1::-1] != size:  # OpenCV drops frames of another size without a word
            if camera not in self._resized:
                self._resized.add(camera)
                log.warning("camera %s: frames of %dx%d in a %dx%d video are resized to fit", camera, *image.shape[1::-1], *size)
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        writer.write(image)

    def close(self) -> list[Path]:
        written = []
        for camera, writer in self._writers.items():
            writer.release()
            final = self.folder / f"{camera}.mp4"
            os.replace(self._tmp[camera], final)
            written.append(final)
        self._writers.clear()
        return written


def remove_stale_videos(folder: Path) -> list[Path]:
    """Remove the temporary videos (``.CAMERA.PID.tmp.mp4``) that runs which are gone left in ``folder``."""
    removed = []
    for path in sorted(folder.glob(".*.tmp.mp4")):
        match = TEMP_VIDEO.match(path.name)
        if match and int(match.group(2)) != os.getpid() and not process_alive(int(match.group(2))):
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("removed %d temporary video(s) of runs that ended without finishing them: %s",
                 len(removed), ", ".join(p.name for p in removed))
    return removed


class MotSink(Sink):
    """Tracks per camera in MOTChallenge text, ``DIR/<camera>.txt``, written on :meth:`close`.

    With a gallery, a track's rows are held back until it has an identity, then written under it
    (so the files hold gallery identities that ``eval-tracks`` scores across cameras); a held row
    in a frame where another track of the camera already had that identity (which the new track
    took from it when it was lost) is dropped. Without a gallery, camera k's track t is written as
    ``k * TRACK_ID_OFFSET + t``.
    """

    what = "tracks"

    def __init__(self, folder: Path):
        self.folder = folder
        self._rows: dict[str, list[tuple[int, int, float, float, float, float, float]]] = {}
        self._index: dict[str, int] = {}
        self._held: dict[tuple[str, int], list[tuple[int, np.ndarray, float]]] = {}  # rows before an identity

    def start(self, cameras: Sequence[str]) -> None:
        for camera in cameras:
            self._rows.setdefault(camera, [])
            self._index.setdefault(camera, len(self._index) + 1)

    def write(self, result: FrameResult) -> None:
        if result.frame is None:
            return
        camera, index, identities = result.camera, result.frame.index, result.identities
        for track in result.ended:
            self._held.pop((camera, track.track_id), None)
        for track in result.tracks:
            if not track.is_confirmed() or track.det_index < 0:
                continue
            if identities is None:
                self._add(camera, index, self._index[camera] * TRACK_ID_OFFSET + track.track_id, track.box, track.score)
            elif track.track_id not in identities:
                self._held.setdefault((camera, track.track_id), []).append((index, track.box.copy(), float(track.score)))
            else:
                identity = identities[track.track_id]
                for held_index, box, score in self._held.pop((camera, track.track_id), []):
                    self._add(camera, held_index, identity, box, score)
                self._add(camera, index, identity, track.box, track.score)

    def _add(self, camera: str, frame: int, identity: int, box: np.ndarray, score: float) -> None:
        x1, y1, x2, y2 = (float(v) for v in box)
        self._rows.setdefault(camera, []).append((frame, identity, x1, y1, x2 - x1, y2 - y1, float(score)))

    def close(self) -> list[Path]:
        written = []
        for camera, rows in self._rows.items():
            rows.sort(key=lambda r: (r[0], r[1]))  # stable: of two rows of one identity in a frame, the one written live
            rows = [r for k, r in enumerate(rows) if k == 0 or r[:2] != rows[k - 1][:2]]
            table = np.array(rows, np.float64).reshape(-1, 7)
            path = self.folder / f"{camera}.txt"
            write_mot(path, MotRows.of(table[:, 0], table[:, 1], table[:, 2:6], table[:, 6], np.full(len(table), -1)))
            written.append(path)
        return written


class EventLog(Sink):
    """Event messages (docs/events.md) as JSON lines, flushed one by one so that a follower sees each
    as it happens. ``device`` names the device in each message (default: the host name)."""

    what = "events"

    def __init__(self, path: Path, device: str | None = None):
        from dgnet_edge.apps.camera.live.record import EventMessages, default_device

        self.path = path
        self.messages = EventMessages(device or default_device())
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, result: FrameResult) -> None:
        for event in result.events:
            self._file.write(json.dumps(self.messages.message(event), separators=(",", ":")) + "\n")
            self._file.flush()

    def close(self) -> list[Path]:
        self._file.close()
        return [self.path]


def open_event_sink(spec: str | Path, device: str) -> Sink:
    """The events sink ``--events SPEC`` names: an MQTT broker for an ``mqtt://`` or ``mqtts://`` URL
    (:mod:`.mqtt_events`), else a JSON-lines file. Both write the same messages."""
    from dgnet_edge.apps.camera.live import mqtt_events

    if mqtt_events.is_url(spec):
        return mqtt_events.MqttEvents(mqtt_events.MqttTarget.parse(str(spec)), device)
    return EventLog(Path(spec), device)
