"""What the camera app writes: annotated frames, annotated video per camera, MOT text per camera
(the input of ``dgnet-edge eval-tracks``) and a JSONL event stream.

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
from typing import IO, Any

import numpy as np

from dgnet_edge.data.video.mot import MotRows, write_mot
from dgnet_edge.staging import process_alive

log = logging.getLogger(__name__)
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


class VideoSink:
    """An annotated video per camera, ``DIR/<camera>.mp4``, renamed into place on :meth:`close`."""

    def __init__(self, folder: Path, fps: float):
        self.folder = folder
        self.fps = fps
        self._writers: dict[str, Any] = {}
        self._tmp: dict[str, Path] = {}
        self._size: dict[str, tuple[int, int]] = {}  # (width, height) of each camera's video
        self._resized: set[str] = set()  # cameras warned about frames of another size
        remove_stale_videos(folder)

    def write(self, camera: str, image: np.ndarray) -> None:
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


class MotSink:
    """Tracks per camera in MOTChallenge text, ``DIR/<camera>.txt``, written on :meth:`close`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._rows: dict[str, list[tuple[int, int, float, float, float, float, float]]] = {}

    def add_camera(self, camera: str) -> None:
        self._rows.setdefault(camera, [])

    def write(self, camera: str, frame: int, identity: int, box: np.ndarray, score: float = 1.0) -> None:
        x1, y1, x2, y2 = (float(v) for v in box)
        self._rows.setdefault(camera, []).append((frame, identity, x1, y1, x2 - x1, y2 - y1, score))

    def close(self) -> list[Path]:
        written = []
        for camera, rows in self._rows.items():
            rows.sort(key=lambda r: (r[0], r[1]))
            table = np.array(rows, np.float64).reshape(-1, 7)
            mot = MotRows(
                frame=table[:, 0].astype(np.int32), ids=table[:, 1].astype(np.int64),
                boxes=table[:, 2:6].astype(np.float32), scores=table[:, 6].astype(np.float32),
                visibility=np.full(len(table), -1, np.float32),
            )
            path = self.folder / f"{camera}.txt"
            write_mot(path, mot)
            written.append(path)
        return written


class EventLog:
    """Events as JSON lines, flushed one by one so that a follower sees each as it happens."""

    def __init__(self, path: Path):
        self.path = path
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, event: dict[str, Any]) -> None:
        self._file.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
