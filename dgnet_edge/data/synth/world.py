"""Writing a synthetic world to disk in Market-1501 layout.

The world is planned in one process (which identities are train or test, which cameras see whom,
how many pictures each camera takes, which go to the query set) and rendered in a process pool.
Every picture draws from its own random generator, seeded by (seed, stream, id, camera, index), so
the files do not depend on the number of workers or on the order they are rendered in. The world is
rendered into a staging folder beside the target (:mod:`dgnet_edge.staging`; one left by a killed
run is removed by the next) and renamed to ``ROOT`` only when complete. The rendering processes
exit when the process that started them dies.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from dgnet_edge import __version__
from dgnet_edge.data.synth.identity import Identity, sample_identity
from dgnet_edge.data.synth.render import SynthImage, render_distractor, render_image, render_junk
from dgnet_edge.data.synth.scene import Camera, make_camera
from dgnet_edge.errors import DatasetError, UsageError
from dgnet_edge.paths import check_output_dir
from dgnet_edge.staging import make_staging_dir, move_into_place

# Seed streams (the camera stream, 2, lives in scene.py).
IDENTITY_STREAM, PLAN_STREAM, IMAGE_STREAM, DISTRACTOR_STREAM, JUNK_STREAM = 1, 3, 4, 5, 6

TRAIN, QUERY, GALLERY = "bounding_box_train", "query", "bounding_box_test"
MANIFEST = "world.json"
_BATCH = 48


@dataclass(frozen=True)
class WorldSpec:
    """The options of a synthetic world.

    Each identity is seen by a random subset of at least two cameras, and each of those cameras
    takes up to ``images_per_camera`` pictures of it (some take one or two fewer, never fewer than
    ``queries_per_camera + 1``). For a test identity, ``queries_per_camera`` pictures per camera go
    to the query set and the rest to the gallery. The gallery also gets distractors (id 0000: bare
    scene or part of a body) and junk (id -1: a badly cut, blurred person), as fractions of its
    real-identity pictures.
    """

    train_ids: int = 300
    test_ids: int = 300
    cameras: int = 6
    images_per_camera: int = 4
    queries_per_camera: int = 1
    height: int = 256
    width: int = 128
    seed: int = 0
    distractor_fraction: float = 0.1
    junk_fraction: float = 0.05

    def __post_init__(self) -> None:
        problems = []
        if self.train_ids < 1 or self.test_ids < 1:
            problems.append("train_ids and test_ids must be at least 1")
        if self.train_ids + self.test_ids > 9999:
            problems.append("train_ids + test_ids must be at most 9999 (4-digit Market ids)")
        if not 2 <= self.cameras <= 99:
            problems.append("cameras must be between 2 and 99 (every identity is seen by at least 2)")
        if self.queries_per_camera < 1:
            problems.append("queries_per_camera must be at least 1")
        if self.images_per_camera <= self.queries_per_camera:
            problems.append("images_per_camera must exceed queries_per_camera (each camera keeps gallery images)")
        if not (32 <= self.height <= 1024 and 16 <= self.width <= 1024):
            problems.append("height must be in 32..1024 and width in 16..1024")
        if self.seed < 0:
            problems.append("seed must be >= 0")
        if not (0.0 <= self.distractor_fraction <= 1.0 and 0.0 <= self.junk_fraction <= 1.0):
            problems.append("distractor_fraction and junk_fraction must lie in [0, 1]")
        if problems:
            raise UsageError("invalid synthetic world: " + "; ".join(problems))


@dataclass(frozen=True)
class Shot:
    """One file of the world: where it goes and what to render (``camera`` is 0-based)."""

    folder: str
    name: str
    kind: str  # "person", "distractor" or "junk"
    pid: int
    camera: int
    index: int


@dataclass(frozen=True)
class WorldSummary:
    root: Path
    spec: WorldSpec
    images: dict[str, int]
    identities: dict[str, int]
    distractors: int
    junk: int
    seconds: float
    workers: int

    def to_dict(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "spec": asdict(self.spec),
            "images": self.images,
            "identities": self.identities,
            "distractors": self.distractors,
            "junk": self.junk,
            "seconds": round(self.seconds, 2),
            "workers": self.workers,
        }


@lru_cache(maxsize=4096)
def world_identity(seed: int, pid: int) -> Identity:
    """The look of identity ``pid`` in every world made with ``seed``."""
    return sample_identity(np.random.default_rng([seed, IDENTITY_STREAM, pid]))


_camera = lru_cache(maxsize=128)(make_camera)


def _market_name(pid: int, camera: int, frame: int, box: int) -> str:
    person = "-1" if pid == -1 else f"{pid:04d}"
    return f"{person}_c{camera + 1}s1_{frame:06d}_{box:02d}.jpg"


def plan_world(spec: WorldSpec) -> list[Shot]:
    """Every file of the world, in a fixed order."""
    rng = np.random.default_rng([spec.seed, PLAN_STREAM])
    pids = np.arange(1, spec.train_ids + spec.test_ids + 1)
    test = set(rng.permutation(pids)[spec.train_ids :].tolist())
    shots: list[Shot] = []
    for pid in pids.tolist():
        n_cams = int(rng.integers(2, spec.cameras + 1))
        for cam in sorted(rng.choice(spec.cameras, n_cams, replace=False).tolist()):
            drop = int(rng.choice(3, p=[0.5, 0.3, 0.2]))
            count = max(spec.queries_per_camera + 1, spec.images_per_camera - drop)
            frames = int(rng.integers(0, 100_000)) + np.cumsum(rng.integers(8, 80, count))
            for index, frame in enumerate(frames.tolist()):
                if pid in test:
                    folder = QUERY if index < spec.queries_per_camera else GALLERY
                else:
                    folder = TRAIN
                name = _market_name(pid, cam, frame, int(rng.integers(1, 9)))
                shots.append(Shot(folder, name, "person", pid, cam, index))
    real_gallery = sum(s.folder == GALLERY for s in shots)
    for kind, pid, fraction in (("distractor", 0, spec.distractor_fraction), ("junk", -1, spec.junk_fraction)):
        count = round(fraction * real_gallery)
        per_camera = Counter(i % spec.cameras for i in range(count))
        for cam in range(spec.cameras):
            frames = np.sort(rng.choice(200_000, per_camera[cam], replace=False))
            for index, frame in enumerate(frames.tolist()):
                name = _market_name(pid, cam, frame, int(rng.integers(1, 9)))
                shots.append(Shot(GALLERY, name, kind, pid, cam, index))
    return shots


def render_shot(spec: WorldSpec, shot: Shot) -> SynthImage:
    camera: Camera = _camera(spec.seed, shot.camera)
    size = (spec.height, spec.width)
    if shot.kind == "person":
        seed = [spec.seed, IMAGE_STREAM, shot.pid, shot.camera, shot.index]
        return render_image(world_identity(spec.seed, shot.pid), camera, seed, *size)
    if shot.kind == "distractor":
        return render_distractor(camera, [spec.seed, DISTRACTOR_STREAM, shot.camera, shot.index], *size)
    return render_junk(camera, [spec.seed, JUNK_STREAM, shot.camera, shot.index], *size)


def _render_batch(spec: WorldSpec, staging: str, shots: Sequence[Shot]) -> int:
    for shot in shots:
        Path(staging, shot.folder, shot.name).write_bytes(render_shot(spec, shot).to_jpeg())
    return len(shots)


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: end this process when ``parent`` is gone (killed with -9, the
    pool's shutdown never comes), instead of rendering on for nobody."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _render_all(
    spec: WorldSpec, staging: Path, shots: list[Shot], workers: int, progress: Callable[[int, int], None] | None
) -> None:
    batches = [shots[i : i + _BATCH] for i in range(0, len(shots), _BATCH)]
    done = 0
    if workers <= 1:
        for batch in batches:
            done += _render_batch(spec, str(staging), batch)
            if progress:
                progress(done, len(shots))
        return
    # spawn: no fork of a process that may hold threads (progress display, BLAS), same on every OS.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))
    try:
        futures = [pool.submit(_render_batch, spec, str(staging), batch) for batch in batches]
        for future in as_completed(futures):
            done += future.result()
            if progress:
                progress(done, len(shots))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _check_target(root: Path, force: bool) -> None:
    if root.exists() and not root.is_dir():
        raise DatasetError(f"{root} exists and is not a folder; choose another output path")
    if _is_nonempty_dir(root) and not force:
        raise DatasetError(f"{root} exists and is not empty; pass --force (force=True) to replace it")


def write_world(
    root: str | Path,
    spec: WorldSpec = WorldSpec(),
    *,
    workers: int | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> WorldSummary:
    """Render the world ``spec`` into ``root`` (Market-1501 layout) and return what was written.

    ``workers`` processes render in parallel (default: all CPU cores); ``progress(done, total)`` is
    called as images are written. An existing non-empty ``root`` is replaced only with ``force``;
    on any failure or interruption nothing is left behind.
    """
    root = check_output_dir(Path(root).expanduser(), "world folder")
    _check_target(root, force)
    workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    shots = plan_world(spec)
    start = time.perf_counter()
    staging = make_staging_dir(root)
    try:
        for folder in (TRAIN, QUERY, GALLERY):
            (staging / folder).mkdir()
        _render_all(spec, staging, shots, workers, progress)
        per_folder = Counter(s.folder for s in shots)
        images = {folder: per_folder[folder] for folder in (TRAIN, QUERY, GALLERY)}
        identities = {
            "train": len({s.pid for s in shots if s.folder == TRAIN}),
            "test": len({s.pid for s in shots if s.folder == QUERY}),
        }
        manifest = {"generator": f"dgnet-edge {__version__} synthetic world", "spec": asdict(spec), "images": images}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _check_target(root, force)
        move_into_place(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    kinds = Counter(s.kind for s in shots)
    return WorldSummary(
        root=root,
        spec=spec,
        images=images,
        identities=identities,
        distractors=kinds["distractor"],
        junk=kinds["junk"],
        seconds=time.perf_counter() - start,
        workers=workers,
    )
