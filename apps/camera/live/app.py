"""The camera app's frame loop: detect, track, re-identify and name people on every camera.

One :class:`CameraApp` runs any number of sources that share one gallery. Each source reads in
its own thread (:mod:`~dgnet_edge.apps.camera.live.sources`); this loop visits the sources in turn
and, per frame, fills one :class:`~dgnet_edge.apps.camera.live.record.FrameResult`::

    detections = detector.detect(frame)
    wanted = tracker[camera].predict(detections)             # the detections that need features
    tracks = tracker[camera].update(features(image, boxes[wanted]))  # one batch, or none
    identities, events = resolver.update(camera, time, tracks, image)  # gallery identities, across cameras
    for sink in sinks: sink.write(result)                     # video, MOT text, events, display, synthesis

Files are processed frame by frame in step across cameras (every frame of each); live sources
give their newest frame, and a camera that is reconnecting is skipped until it is back, so the
others keep running. Without a resolver (no gallery) the app tracks per camera, with appearance
when it has an embedder, by motion alone otherwise: the tracker-only benchmark rows run this way.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time as clock
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dgnet_edge.apps.camera.live.detectors import Detector
from dgnet_edge.apps.camera.live.outputs import Label, Sink
from dgnet_edge.apps.camera.live.record import FrameResult
from dgnet_edge.apps.camera.live.sources import Frame, Source
from dgnet_edge.apps.camera.live.tracking.identities import IdentityResolver
from dgnet_edge.apps.camera.live.tracking.tracker import Track, Tracker, TrackerParams
from dgnet_edge.boxes import crops_to_embed

log = logging.getLogger(__name__)

Features = typing.Callable[[np.ndarray, np.ndarray], np.ndarray]  # (BGR frame, (N, 4) xyxy boxes) -> (N, D)


def crop_features(embed: typing.Callable[[typing.List[np.ndarray]], np.ndarray]) -> Features:
    """:data:`Features` from an embedder of RGB crops (:meth:`~dgnet_edge.runtime.embedder.Embedder.embed`)."""

    def features(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return embed(crops_to_embed(image, boxes))

    return features


@dataclass
class CameraStats:
    frames: int = 0
    detections: int = 0
    embedded: int = 0
    embed_calls: int = 0
    seconds: float = 0.0  # time spent on this camera's frames in the loop (detect, track, re-id, gallery)
    tracking_s: float = 0.0  # in the tracker's two phases
    embedding_s: float = 0.0  # cropping and embedding the detections the tracker asked for

    def add(self, other: CameraStats) -> CameraStats:
        return CameraStats(*(getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self)))

    @property
    def tracker_fps(self) -> float:
        return self.frames / self.tracking_s if self.tracking_s > 0 else float("inf")

    @property
    def total_fps(self) -> float:
        """Frames per second of tracking and embedding."""
        total = self.tracking_s + self.embedding_s
        return self.frames / total if total > 0 else float("inf")


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


class _Camera:
    """Per-camera state of the loop."""

    def __init__(self, source: Source, tracker: Tracker):
        self.source = source
        self.tracker = tracker
        self.stats = CameraStats()
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
        features: (BGR frame, boxes) -> (N, D) features of the detections the tracker asks for
            (:func:`crop_features` of an embedder); None tracks by motion alone (no appearance, no
            gallery).
        resolver: gallery identities across cameras; needs ``embed``. None tracks per camera.
        tracker_params: tracker settings shared by every camera.
        sinks: where each frame's result goes (annotated video, MOT text, events, the display,
            synthesis at enrolment); closed when the run ends.
        read_timeout_s: how long to wait for a frame from one source before visiting the next.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        detector: Detector,
        features: Features | None,
        resolver: IdentityResolver | None,
        tracker_params: TrackerParams | None = None,
        sinks: Sequence[Sink] = (),
        read_timeout_s: float = 0.05,
    ):
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"sources need distinct camera names, got {names}")
        if resolver is not None and features is None:
            raise ValueError("a gallery needs an embedder")
        params = tracker_params or TrackerParams()
        if features is None and params.appearance:
            params = dataclasses.replace(params, appearance=False)
        self.cameras = {s.name: _Camera(s, Tracker(params, fps=s.fps or 15.0)) for s in sources}
        self.detector = detector
        self.features = features
        self.resolver = resolver
        self.sinks = list(sinks)
        self.read_timeout_s = read_timeout_s
        self.stats = RunStats(cameras={name: cam.stats for name, cam in self.cameras.items()})
        self.written: dict[str, list[Path]] = {}
        self._stop = False
        self._started: float | None = None
        for sink in self.sinks:
            sink.start(names)

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
        identity = self.resolver.identity_of(camera, track.track_id)
        name = f"person-{identity if identity is not None else len(self.resolver.gallery) + 1}"
        try:
            events = self.resolver.enrol_track(camera, cam.last_frame.time, track, name, cam.last_frame.image)
        except ValueError as e:
            log.warning("enrol: %s", e)
            return
        log.info("enrolled track %d of %s as %s", track.track_id, camera, name)
        self._write(FrameResult(camera, None, events=events))

    # -- the loop ----------------------------------------------------------------------------------
    def run(self, max_frames: int | None = None, on_progress: Callable[[int], None] | None = None) -> RunStats:
        """Process frames until every source has ended, ``max_frames`` frames (all cameras) were
        processed, or :meth:`stop`; the sinks are closed (written) whatever ends the run."""
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

    def process(self, cam: _Camera, frame: Frame) -> FrameResult:
        """One frame of one camera: detect, track, identify, write."""
        t0 = clock.perf_counter()
        result = FrameResult(frame.camera, frame, self.detector.detect(frame))
        dets = result.detections
        t1 = clock.perf_counter()
        wanted = cam.tracker.predict(dets)
        t2 = clock.perf_counter()
        features = None
        if len(wanted):
            features = self.features(frame.image, dets.boxes[wanted])
            cam.stats.embedded += len(wanted)
            cam.stats.embed_calls += 1
        t3 = clock.perf_counter()
        result.tracks = cam.tracker.update(features)
        cam.stats.tracking_s += (t2 - t1) + (clock.perf_counter() - t3)
        cam.stats.embedding_s += t3 - t2
        result.ended = cam.tracker.removed
        if self.resolver is not None:  # the tracks that ended are gone from result.tracks: they leave
            result.identities, result.events = self.resolver.update(frame.camera, frame.time, result.tracks, frame.image)
        cam.last_frame = frame
        cam.stats.frames += 1
        cam.stats.detections += len(dets)
        cam.stats.seconds += clock.perf_counter() - t0
        cam.tick()
        if any(sink.draws for sink in self.sinks):
            result.labels = self.labels(result)
            state = "" if cam.source.state == "connected" else f"  [{cam.source.state}]"
            result.header = f"{frame.camera}  frame {frame.index}  {cam.fps:.1f} FPS{state}"
        self._write(result)
        return result

    def _write(self, result: FrameResult) -> None:
        for event in result.events:
            self.stats.events[event.kind] = self.stats.events.get(event.kind, 0) + 1
        for sink in self.sinks:
            sink.write(result)

    def _finish(self) -> None:
        try:
            if self.resolver is not None:
                for camera, events in itertools.groupby(self.resolver.close(), key=lambda e: e.camera):
                    self._write(FrameResult(camera, None, events=list(events)))
        finally:
            self.written = {}
            for sink in self.sinks:
                paths = sink.close() or []
                if sink.what:
                    self.written[sink.what] = paths

    def labels(self, result: FrameResult) -> list[Label]:
        """What to draw: each confirmed track matched this frame, named by its identity when it has one."""
        labels = []
        identities = result.identities or {}
        for track in result.tracks:
            if not track.is_confirmed() or track.det_index < 0:
                continue
            identity = identities.get(track.track_id)
            if identity is not None and self.resolver is not None:
                text, key = self.resolver.gallery.label(identity), identity
            else:
                text, key = f"t{track.track_id}", -track.track_id
            labels.append(Label(track.box, text, key, track.track_id))
        return labels
