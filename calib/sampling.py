"""Calibration sets: which images calibrate, and batches of them exactly as the runtime sees them.

Images come from a dataset's training split (any registered reader; the checkpoint's dataset is
tried first) or, when no reader accepts the folder, from a plain folder of images (searched
recursively; each sub-folder counts as one camera). The sample is stratified by camera: every
camera gets an equal share (a camera with too few images gives its remainder to the others), and
within a camera the images are taken round-robin over identities in a seeded order, so a sample
of 512 spans as many people and viewpoints as the data has.

Batches are preprocessed as at run time — decoded to RGB, resized to the network size with
:func:`dgnet_edge.data.images.resize`, NHWC, in the model's input dtype — since the exported
graphs normalise the pixels themselves.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dgnet_edge.data.dataset import IMAGE_SUFFIXES, ImageRecord, is_broken_link
from dgnet_edge.data.images import load_images
from dgnet_edge.data.registry import build_dataset, dataset_names
from dgnet_edge.errors import DatasetError

log = logging.getLogger(__name__)

DEFAULT_COUNT = 512


@dataclass(frozen=True)
class CalibrationSet:
    """The sampled images and where they came from (``provenance`` goes into calibration.json)."""

    paths: tuple[Path, ...]
    cameras: tuple[int, ...]
    provenance: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    def per_camera(self) -> dict[int, int]:
        counts: dict[int, int] = defaultdict(int)
        for cam in self.cameras:
            counts[cam] += 1
        return dict(sorted(counts.items()))


def camera_quotas(available: dict[int, int], count: int) -> dict[int, int]:
    """Split ``count`` over cameras as evenly as their image counts allow (ties: lower camera first)."""
    quotas = dict.fromkeys(available, 0)
    left = min(count, sum(available.values()))
    open_cams = sorted(c for c, n in available.items() if n > 0)
    while left > 0 and open_cams:
        share, extra = divmod(left, len(open_cams))
        for i, cam in enumerate(open_cams):
            want = share + (1 if i < extra else 0)
            take = min(want, available[cam] - quotas[cam])
            quotas[cam] += take
            left -= take
        open_cams = [c for c in open_cams if quotas[c] < available[c]]
    return quotas


def _round_robin_by_identity(records: list[ImageRecord], rng: np.random.Generator) -> list[ImageRecord]:
    """The camera's images in an order that visits every identity before any repeats."""
    by_pid: dict[int, list[ImageRecord]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.pid, str(r.path))):
        by_pid[r.pid].append(r)
    pids = sorted(by_pid)
    queues = []
    for k in rng.permutation(len(pids)):
        items = by_pid[pids[k]]
        queues.append([items[i] for i in rng.permutation(len(items))])
    ordered = []
    depth = max((len(q) for q in queues), default=0)
    for level in range(depth):
        ordered.extend(q[level] for q in queues if level < len(q))
    return ordered


def stratified_sample(records: Sequence[ImageRecord], count: int, seed: int = 0) -> list[ImageRecord]:
    """Up to ``count`` records, shared evenly over cameras and, within a camera, over identities."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    by_cam: dict[int, list[ImageRecord]] = defaultdict(list)
    for r in records:
        by_cam[r.camid].append(r)
    quotas = camera_quotas({c: len(v) for c, v in by_cam.items()}, count)
    rng = np.random.default_rng(seed)
    chosen: list[ImageRecord] = []
    for cam in sorted(by_cam):
        chosen.extend(_round_robin_by_identity(by_cam[cam], rng)[: quotas[cam]])
    return chosen


def folder_records(root: Path) -> list[ImageRecord]:
    """Every image under ``root`` (recursively, hidden files skipped; broken links kept, to count as
    unreadable); camera = index of its sub-folder."""
    paths = sorted(
        p for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and (p.is_file() or is_broken_link(p)) and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    folders = sorted({p.parent for p in paths})
    index = {f: i for i, f in enumerate(folders)}
    return [ImageRecord(p, i, index[p.parent]) for i, p in enumerate(paths)]


def _dataset_records(root: Path, preferred: str | None) -> tuple[str, list[ImageRecord]] | None:
    names = dataset_names()
    order = ([preferred] if preferred in names else []) + [n for n in names if n != preferred]
    for name in order:
        try:
            return name, list(build_dataset(name, root).train)
        except DatasetError:
            continue
    return None


def calibration_set(root: str | Path, count: int = DEFAULT_COUNT, seed: int = 0, dataset: str | None = None) -> CalibrationSet:
    """Sample the calibration images of ``root`` (a dataset folder or a plain folder of images).

    Args:
        root: dataset root (its training split is used) or any folder holding images.
        count: images wanted; fewer if the folder has fewer.
        seed: sampling seed (same seed, same images).
        dataset: reader to try first (e.g. the checkpoint's dataset); every registered reader is tried.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"calibration data {root} is not a folder: give a dataset root or a folder of images")
    found = _dataset_records(root, dataset)
    if found is not None:
        name, records = found
        provenance: dict[str, Any] = {"kind": "dataset", "root": str(root.resolve()), "dataset": name, "split": "train"}
    else:
        records = folder_records(root)
        provenance = {"kind": "folder", "root": str(root.resolve())}
    if not records:
        raise DatasetError(f"{root}: no images found (looked for {', '.join(IMAGE_SUFFIXES)} files, and for any dataset layout)")
    chosen = stratified_sample(records, count, seed)
    if len(chosen) < count:
        log.warning("%s has %d usable images; calibrating on all of them (asked for %d)", root, len(chosen), count)
    result = CalibrationSet(tuple(r.path for r in chosen), tuple(r.camid for r in chosen))
    provenance.update(seed=seed, available=len(records), cameras={str(k): v for k, v in result.per_camera().items()})
    return CalibrationSet(result.paths, result.cameras, provenance)


def image_batches(
    paths: Sequence[str | Path],
    height: int,
    width: int,
    dtype: str = "float32",
    batch_size: int = 8,
    input_name: str = "images",
    workers: int = 2,
) -> Iterator[dict[str, np.ndarray]]:
    """Feeds ``{input_name: (N, H, W, 3) array}`` of the images, preprocessed as at run time.

    Unreadable images are skipped (and logged); calibration needs representative data, not all of
    it. When none of the images decodes, the last step raises DatasetError saying how many were
    found and how many could not be read.
    """
    unreadable: list[str] = []
    decoded = 0
    for start in range(0, len(paths), batch_size):
        loaded = load_images(list(paths[start : start + batch_size]), height, width, workers, skip_unreadable=True)
        unreadable += loaded.failures
        decoded += len(loaded.pixels)
        if len(loaded.pixels):
            yield {input_name: loaded.pixels.astype(dtype, copy=False)}
    if not decoded:
        first = f"; first: {unreadable[0]}" if unreadable else ""
        raise DatasetError(f"{len(paths)} image(s) found, {len(unreadable)} could not be read{first}: "
                           "calibration needs readable images: replace or remove the unreadable files")
