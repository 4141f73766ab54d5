"""Tracking accuracy on a video bench: the camera app without a gallery (its tracker with
appearance), the same app with appearance off (IoU + Kalman), and ByteTrack, each fed the bench's
public detections.

Every tracker writes one MOTChallenge results file per camera (``OUT/<tracker>/<camera>.txt``,
per-camera track ids), which :func:`dgnet_edge.eval.tracking.evaluate_tracks` scores against the
bench's ground truth. A track appears in the results from the frame it is confirmed on, with its
detection's box, as the camera app writes it online.

ByteTrack is ``supervision``'s ``sv.ByteTrack`` (MIT; releases before 0.30, the ``dev`` extra),
at its default settings with ``frame_rate`` set to the bench's.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dgnet_edge.apps.camera.live.app import CameraApp, CameraStats, Features, crop_features
from dgnet_edge.apps.camera.live.detections import Detections
from dgnet_edge.apps.camera.live.detectors import open_detector
from dgnet_edge.apps.camera.live.outputs import Sink
from dgnet_edge.apps.camera.live.record import FrameResult
from dgnet_edge.apps.camera.live.sources import open_source
from dgnet_edge.apps.camera.live.tracking.tracker import TrackerParams
from dgnet_edge.boxes import xyxy_to_tlwh
from dgnet_edge.data.video.mot import MotRows, read_mot, write_mot
from dgnet_edge.data.video.world import Site, load_site
from dgnet_edge.errors import BackendUnavailableError, DatasetError, UsageError
from dgnet_edge.eval.tracking import TrackingResult, evaluate_tracks

TRACKERS = ("appearance", "iou", "bytetrack")


@dataclass(frozen=True)
class BenchCamera:
    """One camera of a bench: its MOT folder, its frames (``img1/`` or a video file), rate and length."""

    name: str
    folder: Path
    video: Path | None
    frames: int
    fps: float


def bench_cameras(site: Site) -> list[BenchCamera]:
    return [BenchCamera(c.name, site.camera_dir(c.name), site.root / c.video if c.video else None, site.frames, site.fps)
            for c in site.cameras]


class FrameImages:
    """A camera's frames by 1-based index, decoded only when asked for (frames go in increasing order)."""

    def __init__(self, camera: BenchCamera):
        self.camera = camera
        self.images = camera.folder / "img1"
        self._capture = None
        self._position = 0
        if not self.images.is_dir():
            if camera.video is None or not camera.video.is_file():
                raise DatasetError(f"{camera.folder}: no img1/ folder and no video file; render the bench with frames")
            self._capture = cv2.VideoCapture(str(camera.video))
            if not self._capture.isOpened():
                raise DatasetError(f"{camera.video} cannot be opened as a video")

    def get(self, index: int) -> np.ndarray:
        if self._capture is None:
            path = self.images / f"{index:06d}.jpg"
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise DatasetError(f"{path} is missing or cannot be decoded")
            return image
        if index <= self._position:
            raise ValueError(f"frames of {self.camera.video} must be read in increasing order")
        while self._position < index - 1:
            self._capture.grab()
            self._position += 1
        ok, image = self._capture.read()
        self._position += 1
        if not ok:
            raise DatasetError(f"{self.camera.video} ends before frame {index}")
        return image

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()


class _Rows(Sink):
    """The camera app's rows as the tracker sees them: each confirmed track matched to a detection,
    under its per-camera track id, from the frame it is confirmed on."""

    def __init__(self) -> None:
        self.frames: list[int] = []
        self.ids: list[int] = []
        self.boxes: list[np.ndarray] = []
        self.scores: list[float] = []

    def write(self, result: FrameResult) -> None:
        for t in result.tracks:
            if result.frame is not None and t.is_confirmed() and t.det_index >= 0:
                self.frames.append(result.frame.index)
                self.ids.append(t.track_id)
                self.boxes.append(t.box)
                self.scores.append(t.score)


def track_camera(camera: BenchCamera, kind: str, params: TrackerParams | None = None,
                 features: Features | None = None) -> tuple[MotRows, CameraStats]:
    """Run one tracker over one camera's public detections; the results and the time it took.

    ``appearance`` and ``iou`` run the camera app itself without a gallery (every frame of the
    camera folder, its public detections), with and without ``features``.
    """
    if kind == "bytetrack":
        return _track_bytetrack(camera, read_mot(camera.folder / "det" / "det.txt"))
    if kind not in ("appearance", "iou"):
        raise UsageError(f"tracker {kind!r}: expected one of {', '.join(TRACKERS)}")
    params = dataclasses.replace(params or TrackerParams(), appearance=kind == "appearance")
    if params.appearance and features is None:
        raise UsageError("the appearance tracker needs features: open an embedder on an export (--export)")
    rows = _Rows()
    with open_source(str(camera.folder)) as source:
        detector = open_detector("public", str(camera.folder))
        try:
            app = CameraApp([source], detector, features if params.appearance else None, None, params, [rows])
            stats = app.run().cameras[source.name]
        finally:
            detector.close()
    return _rows(rows.frames, rows.ids, rows.boxes, rows.scores), stats


def _rows(frames: list[int], ids: list[int], boxes_xyxy: list[np.ndarray], scores: list[float]) -> MotRows:
    xywh = xyxy_to_tlwh(np.asarray(boxes_xyxy, np.float32))
    return MotRows.of(np.asarray(frames), np.asarray(ids), xywh, np.asarray(scores))


def _track_bytetrack(camera: BenchCamera, dets_rows: MotRows) -> tuple[MotRows, CameraStats]:
    try:
        import supervision as sv
    except ImportError:
        raise BackendUnavailableError("the ByteTrack comparison needs supervision: pip install 'supervision<0.30' "
                                      "(the dev extra of dgnet-edge)") from None
    if not hasattr(sv, "ByteTrack"):
        raise BackendUnavailableError(f"supervision {sv.__version__} has no ByteTrack (removed in 0.30): "
                                      "pip install 'supervision<0.30'")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated in 0.28, still the ByteTrack it ships
        tracker = sv.ByteTrack(frame_rate=round(camera.fps))
    timing = CameraStats()
    out_frames, out_ids, out_boxes, out_scores = [], [], [], []
    for index in range(1, camera.frames + 1):
        rows = dets_rows.at(index)
        dets = Detections.from_xywh(rows.boxes, rows.scores)
        t0 = time.perf_counter()
        result = tracker.update_with_detections(sv.Detections(xyxy=dets.boxes.astype(np.float64), confidence=dets.scores,
                                                              class_id=np.zeros(len(dets), int)))
        timing.tracking_s += time.perf_counter() - t0
        timing.frames += 1
        timing.detections += len(dets)
        out_frames += [index] * len(result)
        out_ids += result.tracker_id.tolist()
        out_boxes += list(result.xyxy)
        out_scores += result.confidence.tolist()
    return _rows(out_frames, out_ids, out_boxes, out_scores), timing


def mean_metric(result: TrackingResult, key: str) -> float:
    """A per-camera metric averaged over the cameras."""
    return float(np.mean([getattr(m, key) for m in result.per_camera.values()]))


def metrics_table(results: Sequence[tuple[str, TrackingResult]]) -> list[str]:
    """Markdown rows: per camera and mean IDF1, HOTA, MOTA and ID switches of each named result."""
    lines = ["| tracker | camera | IDF1 | HOTA | MOTA | ID sw. |", "|---|---|---:|---:|---:|---:|"]
    for name, result in results:
        for camera, m in result.per_camera.items():
            lines.append(f"| {name} | {camera} | {m.idf1:.1f} | {m.hota:.1f} | {m.mota:.1f} | {m.id_switches} |")
        idf1, hota, mota, sw = (mean_metric(result, k) for k in ("idf1", "hota", "mota", "id_switches"))
        lines.append(f"| {name} | **mean** | **{idf1:.1f}** | **{hota:.1f}** | **{mota:.1f}** | **{sw:.1f}** |")
    return lines


@dataclass
class BenchRun:
    """One tracker on every camera of a bench: where its results are, its time, its metrics."""

    kind: str
    folder: Path
    timing: dict[str, CameraStats]
    result: TrackingResult

    @property
    def mean(self) -> dict[str, float]:
        """Per-camera metrics averaged over the cameras (IDF1, HOTA, MOTA, ID switches)."""
        return {key: mean_metric(self.result, key) for key in ("idf1", "hota", "mota", "id_switches")}

    @property
    def total(self) -> CameraStats:
        total = CameraStats()
        for t in self.timing.values():
            total = total.add(t)
        return total

    def to_dict(self) -> dict:
        t = self.total
        return {
            "tracker": self.kind,
            "results": str(self.folder),
            "mean_per_camera": self.mean,
            **self.result.to_dict(),
            "speed": {"frames": t.frames, "tracker_fps": round(t.tracker_fps, 1), "with_reid_fps": round(t.total_fps, 1),
                      "embedded": t.embedded, "detections": t.detections, "embed_calls": t.embed_calls},
        }


def compare_trackers(bench_dir: str | Path, out_dir: str | Path, kinds: Sequence[str] = TRACKERS,
                     params: TrackerParams | None = None, export_dir: str | Path | None = None,
                     backend: str = "auto", precision: str = "auto") -> list[BenchRun]:
    """Track every camera of the bench with each tracker, write ``out_dir/<tracker>/<camera>.txt``
    and score them with :func:`~dgnet_edge.eval.tracking.evaluate_tracks`.

    The appearance tracker embeds crops with the export at ``export_dir``.
    """
    unknown = [k for k in kinds if k not in TRACKERS]
    if unknown:
        raise UsageError(f"tracker {unknown[0]!r}: expected one of {', '.join(TRACKERS)}")
    site = load_site(bench_dir)
    embedder = None
    if "appearance" in kinds:
        if export_dir is None:
            raise UsageError("the appearance tracker needs an export folder for its embedder (--export)")
        from dgnet_edge.runtime.embedder import Embedder

        embedder = Embedder.open(export_dir, backend=backend, precision=precision)
    runs = []
    try:
        for kind in kinds:
            features = crop_features(embedder.embed) if kind == "appearance" else None
            folder = Path(out_dir) / kind
            rows, timing = {}, {}
            for camera in bench_cameras(site):
                rows[camera.name], timing[camera.name] = track_camera(camera, kind, params, features)
                write_mot(folder / f"{camera.name}.txt", rows[camera.name])
            runs.append(BenchRun(kind, folder, timing, evaluate_tracks(rows, site)))
    finally:
        if embedder is not None:
            embedder.close()
    return runs


def format_comparison(runs: Sequence[BenchRun]) -> str:
    """A Markdown table: per camera and mean IDF1, HOTA, MOTA, ID switches; multi-camera IDF1; speed."""
    lines = metrics_table([(run.kind, run.result) for run in runs])
    lines += ["", "| tracker | multi-camera IDF1 (per-camera ids) | tracker frames/s | with re-id frames/s | detections embedded |",
              "|---|---:|---:|---:|---:|"]
    for run in runs:
        t = run.total
        embedded = f"{t.embedded} / {t.detections} ({100 * t.embedded / max(1, t.detections):.0f} %)"
        lines.append(f"| {run.kind} | {run.result.multi_camera_idf1:.1f} | {t.tracker_fps:.0f} | {t.total_fps:.0f} | {embedded} |")
    return "\n".join(lines) + "\n"
