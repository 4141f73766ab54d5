"""The camera app's frame loop: detect, track, re-identify and name people on every camera.

One :class:`CameraApp` runs any number of sources that share one gallery. Each source reads in
its own thread (:mod:`~dgnet_edge.apps.camera.live.sources`); this loop visits the sources in turn and,
per frame::

    detections = detector.detect(frame)
    tracks = tracker[camera].update(detections, embed)     # embeds only what the tracker asks for
    events = resolver.update(camera, time, tracks, image)  # gallery identities, across cameras

Files are processed frame by frame in step across cameras (every frame of each); live sources
give their newest frame, and a camera that is reconnecting is skipped until it is back, so the
others keep running. MOT rows of a track are held back until the track has an identity, then
written under it, so ``--save-txt`` holds gallery identities that ``eval-tracks`` can score
across cameras.
"""

from __future__ import annotations

import dataclasses
import logging
import time as clock
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dgnet_edge.apps.camera.live.detections import Detections
from dgnet_edge.apps.camera.live.detectors import Detector
from dgnet_edge.apps.camera.live.outputs import EventLog, Label, MotSink, VideoSink, annotate
from dgnet_edge.apps.camera.live.sources import Frame, Source
from dgnet_edge.apps.camera.live.tracking.identities import IdentityResolver
from dgnet_edge.apps.camera.live.tracking.tracker import CONFIRMED, Track, Tracker, TrackerParams
from dgnet_edge.boxes import crops_to_embed

log = logging.getLogger(__name__)

TRACK_ID_OFFSET = 100_000  # MOT ids of per-camera tracks when there is no gallery: camera k -> k * offset + id


@dataclass
class CameraStats:
    frames: int = 0
    detections: int = 0
    embedded: int = 0
    seconds: float = 0.0  # time spent on this camera's frames in the loop (detect, track, re-id, gallery)


@dataclass
class RunStats:
    """What a run did; ``fps`` is frames of all cameras per second of the loop's wall time."""

    cameras: dict[str, CameraStats] = field(default_factory=dict)
    wall_s: float = 0.0
    events: dict[str, int] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return sum(c.frames for c in self.cameras.values())

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames, "wall_s": round(self.wall_s, 3), "fps": round(self.fps, 2), "events": self.events,
            "cameras": {name: vars(c) for name, c in self.cameras.items()},
        }


@dataclass
class Outputs:
    """Where a run writes; each is optional."""

    video: VideoSink | None = None
    mot: MotSink | None = None
    events: EventLog | None = None

    def close(self) -> dict[str, list[Path]]:
        """Write and close every output; the files written, by kind."""
        written: dict[str, list[Path]] = {}
        if self.video is not None:
            written["annotated video"] = self.video.close()
        if self.mot is not None:
            written["tracks"] = self.mot.close()
        if self.events is not None:
            self.events.close()
            written["events"] = [self.events.path]
        return written


class _Camera:
    """Per-camera state of the loop."""

    def __init__(self, index: int, source: Source, tracker: Tracker):
        self.index = index
        self.source = source
        self.tracker = tracker
        self.stats = CameraStats()
        self.pending_rows: dict[int, list[tuple[int, np.ndarray, float]]] = {}  # track -> rows before its identity
        self.tracks: list[Track] = []
        self.last_frame: Frame | None = None
        self.fps = 0.0
        self._last_frame_at: float | None = None

    def tick(self) -> None:
        """Update the frame rate shown on screen (a moving average of this camera's frame intervals)."""
        now = clock.perf_counter()
        if self._last_frame_at is not None and now > self._last_frame_at:
            rate = 1.0 / (now - self._last_frame_at)
            self.fps = rate if self.fps == 0 else 0.9 * self.fps + 0.1 * rate
        self._last_frame_at = now


class CameraApp:
    """Detection, tracking, re-id and gallery identities over ``sources``.

    Args:
        sources: opened sources, one per camera (their names must differ).
        detector: finds people in a frame.
        embed: RGB crops -> (N, D) L2-normalised features; None tracks by motion alone (no
            appearance, no gallery).
        resolver: gallery identities across cameras; needs ``embed``.
        tracker_params: tracker settings shared by every camera.
        outputs: annotated video, MOT text, events.
        read_timeout_s: how long to wait for a frame from one source before visiting the next.
        on_frame: called after each processed frame with the frame, its tracks and its labels
            (the display hooks in here).
        on_identities: called in the loop after each frame's identities are decided, with the
            frame, its tracks and the resolver's events (synthesis at enrolment hooks in here).
    """

    def __init__(
        self,
        sources: Sequence[Source],
        detector: Detector,
        embed: Callable[[list[np.ndarray]], np.ndarray] | None,
        resolver: IdentityResolver | None,
        tracker_params: TrackerParams | None = None,
        outputs: Outputs | None = None,
        read_timeout_s: float = 0.05,
        on_frame: Callable[[Frame, list[Track], list[Label]], bool] | None = None,
        on_identities: Callable[[Frame, list[Track], list[dict]], None] | None = None,
    ):
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"sources need distinct camera names, got {names}")
        if resolver is not None and embed is None:
            raise ValueError("a gallery needs an embedder")
        params = tracker_params or TrackerParams()
        if embed is None and params.appearance:
            params = dataclasses.replace(params, appearance=False)
        self.cameras = {s.name: _Camera(i + 1, s, Tracker(params, fps=s.fps or 15.0)) for i, s in enumerate(sources)}
        self.detector = detector
        self.embed = embed
        self.resolver = resolver
        self.outputs = outputs or Outputs()
        self.read_timeout_s = read_timeout_s
        self.on_frame = on_frame
        self.on_identities = on_identities
        self.stats = RunStats(cameras={name: cam.stats for name, cam in self.cameras.items()})
        self.written: dict[str, list[Path]] = {}
        self._stop = False
        self._started: float | None = None
        for name in self.cameras:
            if self.outputs.mot is not None:
                self.outputs.mot.add_camera(name)

    def stop(self) -> None:
        """Finish after the current frame (the display's quit key, a signal handler)."""
        self._stop = True

    def elapsed(self) -> float:
        """Seconds since :meth:`run` started."""
        return 0.0 if self._started is None else clock.perf_counter() - self._started

    def enrol(self, camera: str, track: Track) -> None:
        """Name the person on ``track`` (the display's enrol key): ``person-N`` by identity or gallery size."""
        cam = self.cameras[camera]
        if self.resolver is None or cam.last_frame is None:
            log.warning("enrol needs the gallery (run with --export)")
            return
        name = f"person-{track.identity if track.identity is not None else len(self.resolver.gallery) + 1}"
        try:
            events = self.resolver.enrol_track(camera, cam.last_frame.time, track, name, cam.last_frame.image)
        except ValueError as e:
            log.warning("enrol: %s", e)
            return
        log.info("enrolled track %d of %s as %s", track.track_id, camera, name)
        self._emit(events)

    # -- the loop ----------------------------------------------------------------------------------
    def run(self, max_frames: int | None = None, on_progress: Callable[[int], None] | None = None) -> RunStats:
        """Process frames until every source has ended, ``max_frames`` frames (all cameras) were
        processed, or :meth:`stop`; outputs are closed (written) whatever ends the run."""
        self._started = started = clock.perf_counter()
        active = list(self.cameras.values())
        try:
            while active and not self._stop:
                for cam in list(active):
                    try:
                        frame = cam.source.read(timeout=self.read_timeout_s if cam.source.live else None)
                    except TimeoutError:
                        continue  # a live camera with nothing new (or reconnecting): visit the others
                    if frame is None:
                        active.remove(cam)
                        continue
                    self.process(cam, frame)
                    if on_progress is not None:
                        on_progress(self.stats.frames)
                    if (max_frames is not None and self.stats.frames >= max_frames) or self._stop:
                        self._stop = True
                        break
        finally:
            self.stats.wall_s = clock.perf_counter() - started
            self._finish()
        return self.stats

    def process(self, cam: _Camera, frame: Frame) -> list[dict]:
        """One frame of one camera: detect, track, identify, write."""
        t0 = clock.perf_counter()
        dets = self.detector.detect(frame)
        embed = self._embedder_for(cam, frame, dets)
        tracks = cam.tracker.update(dets, embed)
        events: list[dict] = []
        if self.resolver is not None:
            events += self.resolver.update(frame.camera, frame.time, tracks, frame.image)
            for track in cam.tracker.removed:
                events += self.resolver.close_track(frame.camera, track)
            if self.on_identities is not None:
                self.on_identities(frame, tracks, events)
        for track in cam.tracker.removed:
            cam.pending_rows.pop(track.track_id, None)
        cam.tracks = tracks
        cam.last_frame = frame
        cam.stats.frames += 1
        cam.stats.detections += len(dets)
        self._write_rows(cam, frame, tracks)
        cam.stats.seconds += clock.perf_counter() - t0
        cam.tick()
        self._emit(events)
        if self.outputs.video is not None or self.on_frame is not None:
            labels = self.labels(cam, tracks)
            if self.outputs.video is not None:
                self.outputs.video.write(frame.camera, self.render(cam, frame, labels))
            if self.on_frame is not None and self.on_frame(frame, tracks, labels) is False:
                self.stop()
        return events

    def _embedder_for(self, cam: _Camera, frame: Frame, dets: Detections) -> Callable[[np.ndarray], np.ndarray]:
        def embed(indices: np.ndarray) -> np.ndarray:
            indices = np.asarray(indices, np.int64)
            if self.embed is None or len(indices) == 0:
                return np.zeros((len(indices), 0), np.float32)
            cam.stats.embedded += len(indices)
            return self.embed(crops_to_embed(frame.image, dets.boxes[indices]))

        return embed

    def _write_rows(self, cam: _Camera, frame: Frame, tracks: list[Track]) -> None:
        mot = self.outputs.mot
        if mot is None:
            return
        for track in tracks:
            if track.state != CONFIRMED or track.det_index < 0:
                continue
            row = (frame.index, track.box.copy(), float(track.score))
            if self.resolver is None:
                mot.write(frame.camera, frame.index, cam.index * TRACK_ID_OFFSET + track.track_id, track.box, track.score)
            elif track.identity is None:
                cam.pending_rows.setdefault(track.track_id, []).append(row)
            else:
                for index, box, score in cam.pending_rows.pop(track.track_id, []):
                    mot.write(frame.camera, index, track.identity, box, score)
                mot.write(frame.camera, frame.index, track.identity, track.box, track.score)

    def _emit(self, events: list[dict]) -> None:
        for event in events:
            kind = event.get("event", "?")
            self.stats.events[kind] = self.stats.events.get(kind, 0) + 1
            if self.outputs.events is not None:
                self.outputs.events.write(event)

    def _finish(self) -> None:
        try:
            if self.resolver is not None:
                self._emit(self.resolver.close())
        finally:
            self.written = self.outputs.close()

    # -- drawing -----------------------------------------------------------------------------------
    def labels(self, cam: _Camera, tracks: list[Track]) -> list[Label]:
        labels = []
        for track in tracks:
            if track.state != CONFIRMED or track.det_index < 0:
                continue
            if track.identity is not None and self.resolver is not None:
                text, key = self.resolver.gallery.label(track.identity), track.identity
            else:
                text, key = f"t{track.track_id}", -track.track_id
            labels.append(Label(track.box, text, key, track.track_id))
        return labels

    def render(self, cam: _Camera, frame: Frame, labels: list[Label]) -> np.ndarray:
        state = "" if cam.source.state == "connected" else f"  [{cam.source.state}]"
        header = f"{frame.camera}  frame {frame.index}  {cam.fps:.1f} FPS{state}"
        return annotate(frame.image, labels, header)
