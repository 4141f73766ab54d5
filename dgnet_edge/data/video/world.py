"""Writing a video bench to disk in MOTChallenge layout, and reading its site description back.

    DIR/site.json               cameras, frames, identities' global ids, detection fault rates
    DIR/world.json              the plan in detail: views, people (garments, paths), fault counts
    DIR/camN/seqinfo.ini        MOTChallenge [Sequence] (and the camera's [Detections] fault counts)
    DIR/camN/img1/000001.jpg    frames (unless not asked for)
    DIR/camN.mp4                the frames as video (if asked for)
    DIR/camN/gt/gt.txt          frame,id,x,y,w,h,1,1,visibility (id: global identity)
    DIR/camN/det/det.txt        frame,-1,x,y,w,h,score,-1,-1,-1

Cameras render in a process pool, one camera per task; every frame and every camera's detections
draw from generators seeded by (seed, stream, camera, frame), so the bytes do not depend on the
number of workers. The bench is written into a staging folder beside ``DIR`` (see
:mod:`dgnet_edge.staging`; a killed run's is removed by the next) and renamed only when complete,
and ``site.json`` is its last file: :func:`load_site` refuses a folder without a valid one.
"""

from __future__ import annotations

import configparser
import io
import json
import math
import multiprocessing
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Empty
from typing import NoReturn

import numpy as np

from dgnet_edge import __version__
from dgnet_edge.data.video.faults import FaultCounts, FaultRates, make_detections
from dgnet_edge.data.video.mot import FRAME_MAX, MotRows, read_mot, write_mot
from dgnet_edge.data.video.site import SitePlan, VideoSpec, cached_plan
from dgnet_edge.errors import DatasetError, OutputPathError
from dgnet_edge.paths import check_output_dir
from dgnet_edge.staging import make_staging_dir, move_into_place

FORMAT, VERSION = "dgnet-edge-video", 1
SITE, WORLD = "site.json", "world.json"
DETECTION_STREAM = 107
REENTRY_GAP_S = 10.0  # an identity absent from a camera this long and back counts as a re-entry
_PROGRESS_EVERY = 15  # frames between progress messages from a worker


@dataclass(frozen=True)
class SiteCamera:
    name: str
    dir: str
    video: str | None


@dataclass(frozen=True)
class Site:
    """A complete video bench on disk (see :func:`load_site`)."""

    root: Path
    seed: int
    fps: float
    width: int
    height: int
    frames: int
    cameras: tuple[SiteCamera, ...]
    identities: tuple[int, ...]
    detections: dict = field(default_factory=dict)

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    def camera_dir(self, name: str) -> Path:
        return self.root / self.camera(name).dir

    def gt(self, name: str) -> MotRows:
        return read_mot(self.camera_dir(name) / "gt" / "gt.txt")

    def det(self, name: str) -> MotRows:
        return read_mot(self.camera_dir(name) / "det" / "det.txt")

    def camera(self, name: str) -> SiteCamera:
        for c in self.cameras:
            if c.name == name:
                return c
        raise DatasetError(f"{self.root / SITE}: no camera {name!r} (cameras: {', '.join(self.camera_names)})")


@dataclass(frozen=True)
class BenchSummary:
    """What :func:`write_bench` wrote."""

    root: Path
    spec: VideoSpec
    identities: int
    cameras_per_identity: dict[int, int]
    reentries: int
    box_heights: tuple[float, float, float]  # 5th, 50th, 95th percentile of visible boxes, pixels
    detections: dict
    bytes_on_disk: int
    seconds: float
    workers: int

    def to_dict(self) -> dict:
        return {
            "root": str(self.root),
            "spec": asdict(self.spec),
            "identities": self.identities,
            "cameras_per_identity": {str(k): v for k, v in self.cameras_per_identity.items()},
            "reentries": self.reentries,
            "box_height_p5_p50_p95": list(self.box_heights),
            "detections": self.detections,
            "bytes_on_disk": self.bytes_on_disk,
            "seconds": round(self.seconds, 2),
            "workers": self.workers,
        }


def _seqinfo(spec: VideoSpec, name: str, counts: FaultCounts) -> str:
    ini = configparser.ConfigParser()
    ini.optionxform = str  # MOTChallenge keys are camelCase
    ini["Sequence"] = {
        "name": name,
        "imDir": "img1",
        "frameRate": f"{spec.fps:g}",
        "seqLength": str(spec.frames),
        "imWidth": str(spec.width),
        "imHeight": str(spec.height),
        "imExt": ".jpg",
    }
    ini["Detections"] = {k: str(v) for k, v in counts.to_dict().items()}
    text = io.StringIO()
    ini.write(text)
    return text.getvalue()


def render_camera(
    spec: VideoSpec,
    camera: int,
    out: str,
    frames: bool,
    video: bool,
    rates: FaultRates,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Render camera ``camera`` of the bench ``spec`` into folder ``out`` (its camN folder and camN.mp4)."""
    import cv2

    from dgnet_edge.data.video.render import CameraRenderer

    plan = cached_plan(spec)
    renderer = CameraRenderer(plan, camera)
    name = plan.views[camera].name
    cam_dir = Path(out) / name
    (cam_dir / "gt").mkdir(parents=True)
    (cam_dir / "det").mkdir()
    if frames:
        (cam_dir / "img1").mkdir()
    writer = None
    if video:
        path = str(Path(out) / f"{name}.mp4")
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), spec.fps, (spec.width, spec.height))
        if not writer.isOpened():
            raise OutputPathError(f"{path}: OpenCV cannot write mp4v video here; use --no-video")
    rows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    try:
        for f in range(1, spec.frames + 1):
            img, truth = renderer.render(f)
            if frames:
                (cam_dir / "img1" / f"{f:06d}.jpg").write_bytes(renderer.encode(img))
            if writer is not None:
                writer.write(img)
            rows.append((f, truth.ids, truth.boxes, truth.visibility))
            if progress and (f % _PROGRESS_EVERY == 0 or f == spec.frames):
                progress(f % _PROGRESS_EVERY or _PROGRESS_EVERY)
    finally:
        if writer is not None:
            writer.release()
    gt = MotRows.of(
        np.concatenate([np.full(len(ids), f) for f, ids, _, _ in rows]),
        np.concatenate([ids for _, ids, _, _ in rows]),
        np.concatenate([b for _, _, b, _ in rows]),
        None,
        np.concatenate([v for _, _, _, v in rows]),
    )
    det_rng = np.random.default_rng([spec.seed, DETECTION_STREAM, camera])
    dets, counts = make_detections(gt, spec.frames, spec.width, spec.height, det_rng, rates)
    write_mot(cam_dir / "gt" / "gt.txt", gt, "gt")
    write_mot(cam_dir / "det" / "det.txt", dets, "det")
    (cam_dir / "seqinfo.ini").write_text(_seqinfo(spec, name, counts))
    return {"camera": name, "faults": counts.to_dict()}


_worker_queue = None  # in a render worker: where it reports frames done


def _init_worker(queue, parent: int) -> None:
    """Render worker initializer: report progress to ``queue``, and end when ``parent`` is gone
    (killed with -9, the pool's shutdown never comes) instead of rendering on for nobody."""
    global _worker_queue
    _worker_queue = queue

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _render_in_worker(spec: VideoSpec, camera: int, out: str, frames: bool, video: bool, rates: FaultRates) -> dict:
    return render_camera(spec, camera, out, frames, video, rates, _worker_queue.put)


def _render_cameras(
    spec: VideoSpec, staging: Path, frames: bool, video: bool, rates: FaultRates, workers: int, progress: Callable[[int, int], None] | None
) -> list[dict]:
    total, done = spec.frames * spec.cameras, 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total)

    if workers <= 1:
        return [render_camera(spec, c, str(staging), frames, video, rates, advance) for c in range(spec.cameras)]
    # spawn: no fork of a process that may hold threads (progress display, BLAS), same on every OS.
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(queue, os.getpid()))
    try:
        futures = [pool.submit(_render_in_worker, spec, c, str(staging), frames, video, rates) for c in range(spec.cameras)]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(queue, advance)
        results = [f.result() for f in futures]
        _drain(queue, advance)
        return results
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        queue.close()


def _drain(queue, advance: Callable[[int], None]) -> None:
    while True:
        try:
            advance(queue.get_nowait())
        except Empty:
            return


def _world_json(plan: SitePlan, rates: FaultRates, cameras: list[dict]) -> dict:
    views = []
    for v in plan.views:
        views.append(
            {
                "name": v.name,
                "camera": asdict(v.camera),
                "geometry": {
                    "focal_px": round(v.focal, 2),
                    "horizon_row": round(v.horizon, 2),
                    "camera_height_m": round(v.camera_height, 3),
                    "near_m": round(v.near, 3),
                    "far_m": round(v.far, 3),
                },
                "travel_to_next_s": round(v.travel_right, 2),
                "occluders": [asdict(o) for o in v.occluders],
            }
        )
    people = []
    for p in plan.people:
        people.append(
            {
                "id": p.gid,
                "identity": asdict(p.identity),
                "look_alike_of": p.look_alike_of,
                "speed_m_s": round(p.speed, 3),
                "visits": [
                    {
                        "camera": plan.views[v.camera].name,
                        "enter": v.enter,
                        "leave": v.leave,
                        "keyframes_t_x_depth": [[round(t, 3), round(x, 3), round(d, 3)] for t, x, d in zip(v.times, v.xs, v.depths)],
                    }
                    for v in p.visits
                ],
            }
        )
    return {
        "generator": f"dgnet-edge {__version__} video bench",
        "spec": asdict(plan.spec),
        "detections": {"rates": rates.to_dict(), "cameras": {c["camera"]: c["faults"] for c in cameras}},
        "views": views,
        "people": people,
    }


def _reentries(gts: dict[str, MotRows], fps: float) -> int:
    count = 0
    for gt in gts.values():
        for gid in np.unique(gt.ids).tolist():
            frames = np.unique(gt.frame[gt.ids == gid])
            count += int(np.sum(np.diff(frames) > REENTRY_GAP_S * fps))
    return count


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def check_target(root: Path, force: bool) -> None:
    """Refuse a bench folder that is a file, or not empty without ``force``; check its parent is writable."""
    if root.exists() and not root.is_dir():
        raise OutputPathError(f"video bench folder {root} is a file, not a folder: choose another path")
    if root.is_dir() and any(root.iterdir()) and not force:
        raise OutputPathError(f"video bench folder {root} exists and is not empty: pass --force to replace it")
    check_output_dir(root, "video bench folder")


def write_bench(
    root: str | Path,
    spec: VideoSpec = VideoSpec(),
    *,
    frames: bool = True,
    video: bool = False,
    rates: FaultRates = FaultRates(),
    workers: int | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> BenchSummary:
    """Render the bench ``spec`` into ``root`` and return what was written.

    ``frames`` writes JPEG frames, ``video`` an mp4 per camera (at least one of them);
    ``progress(done, total)`` counts frames. An existing non-empty ``root`` is replaced only with
    ``force``; on any failure or interruption nothing is left behind.
    """
    root = Path(root).expanduser()
    if not (frames or video):
        raise OutputPathError(f"video bench {root}: neither frames nor video asked for; keep --frames or add --video")
    check_target(root, force)
    workers = max(1, min(spec.cameras, workers if workers is not None else (os.cpu_count() or 1)))
    start = time.perf_counter()
    plan = cached_plan(spec)
    staging = make_staging_dir(root)
    try:
        cameras = _render_cameras(spec, staging, frames, video, rates, workers, progress)
        gts = {v.name: read_mot(staging / v.name / "gt" / "gt.txt") for v in plan.views}
        seen = {gid: {name for name, gt in gts.items() if np.any(gt.ids == gid)} for gid in (p.gid for p in plan.people)}
        identities = sorted(gid for gid, cams in seen.items() if cams)
        per_count: dict[int, int] = {}
        for gid in identities:
            per_count[len(seen[gid])] = per_count.get(len(seen[gid]), 0) + 1
        faults = [c["faults"] for c in cameras]
        gt_total = sum(f["gt_boxes"] for f in faults)
        measured = {
            "miss_rate": round(sum(f["missed"] for f in faults) / max(1, gt_total), 4),
            "false_per_frame": round(sum(f["false_positives"] for f in faults) / (spec.frames * spec.cameras), 4),
        }
        detections = {**rates.to_dict(), "measured": measured}
        (staging / WORLD).write_text(json.dumps(_world_json(plan, rates, cameras), indent=1) + "\n")
        site = {
            "format": FORMAT,
            "version": VERSION,
            "seed": spec.seed,
            "fps": spec.fps,
            "width": spec.width,
            "height": spec.height,
            "frames": spec.frames,
            "cameras": [{"name": v.name, "dir": v.name, "video": f"{v.name}.mp4" if video else None} for v in plan.views],
            "identities": identities,
            "detections": detections,
        }
        (staging / SITE).write_text(json.dumps(site, indent=1) + "\n")
        heights = np.concatenate([gt.boxes[gt.visibility >= 0.5, 3] for gt in gts.values()])
        box_heights = tuple(float(np.percentile(heights, q)) for q in (5, 50, 95)) if len(heights) else (0.0, 0.0, 0.0)
        size = _size(staging)
        check_target(root, force)
        move_into_place(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BenchSummary(
        root=root,
        spec=spec,
        identities=len(identities),
        cameras_per_identity=dict(sorted(per_count.items())),
        reentries=_reentries(gts, spec.fps),
        box_heights=box_heights,
        detections=detections,
        bytes_on_disk=size,
        seconds=time.perf_counter() - start,
        workers=workers,
    )


def _require(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise DatasetError(f"{path}: {what}; it is not a complete video bench (write one with `dgnet-edge data video`)")


def _check_site(path: Path, data: dict, site: Site) -> None:
    """Values of ``site.json`` that parse but cannot describe a bench: blamed on ``site.json``, not on
    the tracks later compared with it."""

    def bad(what: str) -> NoReturn:
        raise DatasetError(f"{path}: {what}; write the bench again")

    names = site.camera_names
    if not names:
        bad("no cameras")
    if len(set(names)) != len(names):
        bad(f"camera names repeat ({', '.join(names)})")
    for name in names:
        if name in ("", ".", "..") or Path(name).name != name:
            bad(f"camera name {name!r} is not a plain file name")
    # All cameras' frames end to end must fit the int32 frame numbers of MotRows (multi-camera IDF1).
    most = FRAME_MAX // len(names)
    frames = data["frames"]
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= most:
        bad(f"frames must be a whole number in 1..{most}, got {frames!r}")
    if not (math.isfinite(site.fps) and site.fps > 0):
        bad(f"fps must be a positive number, got {data['fps']!r}")
    if site.width < 1 or site.height < 1:
        bad(f"width and height must be >= 1, got {site.width}x{site.height}")


def load_site(root: str | Path) -> Site:
    """The bench at ``root``; a folder without a complete, valid ``site.json`` raises DatasetError."""
    root = Path(root)
    path = root / SITE
    _require(root.is_dir(), root, "no such folder")
    _require(path.is_file(), path, "missing")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: unreadable or incomplete JSON ({e}); write the bench again") from None
    _require(isinstance(data, dict) and data.get("format") == FORMAT, path, f"format is not {FORMAT!r}")
    _require(data.get("version") == VERSION, path, f"version {data.get('version')!r}, expected {VERSION}")
    try:
        cameras = tuple(SiteCamera(str(c["name"]), str(c["dir"]), c.get("video")) for c in data["cameras"])
        site = Site(
            root=root,
            seed=int(data["seed"]),
            fps=float(data["fps"]),
            width=int(data["width"]),
            height=int(data["height"]),
            frames=int(data["frames"]),
            cameras=cameras,
            identities=tuple(int(i) for i in data["identities"]),
            detections=dict(data.get("detections", {})),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise DatasetError(f"{path}: missing or malformed field ({e}); write the bench again") from None
    _check_site(path, data, site)
    for c in cameras:
        for rel in ("seqinfo.ini", "gt/gt.txt", "det/det.txt"):
            _require((root / c.dir / rel).is_file(), root / c.dir / rel, "missing")
        if c.video is not None:
            _require((root / c.video).is_file(), root / c.video, "missing")
    return site
