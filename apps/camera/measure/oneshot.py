"""One-shot cross-camera re-id: what synthetic views add to a person enrolled from one photo.

On a Market-layout world, each test identity is enrolled from one image of one camera and queried
with all its images from the other cameras. The gallery holds one entry per identity, scored as the
camera app's gallery scores it (:func:`~dgnet_edge.apps.camera.storage.gallery_base.scoring_rows`: the
real template, and one prototype fusing the extra templates in). Three galleries:

- ``real``: the enrolment template alone;
- ``real + K synthetic``: plus K views rendered by DG-Net's decoder from the enrolment's appearance
  code in K structures chosen across cameras (:func:`spread_across_cameras`, the enrolment camera
  last), each keeping what it carries (:func:`carried_features`), as
  :class:`~dgnet_edge.apps.camera.storage.synthesis.Synthesiser` does at enrolment;
- ``real + K augmented``: plus K plain augmentations of the enrolment image (horizontal flip,
  crop, colour jitter), the control: any gain of synthesis over it is due to the rendered structure.

The structure bank is made from the training split (other people), ``per_camera`` images per camera.
Synthetic and augmented templates take ``weight`` of the prototype. Rank-1 and mAP come from
:func:`dgnet_edge.eval.evaluate` on the (queries x identities) distances (one gallery entry per
identity, so mAP is the mean reciprocal rank).

:func:`views_example` and :func:`views_picture` show what the protocol does for one identity: its
enrolment image, the banked images whose structures it is rendered in, the rendered views, and what
the other cameras really saw of that person.
"""

from __future__ import annotations

import time as clock
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dgnet_edge.apps.camera.defaults import BANK_PER_CAMERA, SYNTHETIC_VIEWS, SYNTHETIC_WEIGHT
from dgnet_edge.apps.camera.storage.gallery_base import scoring_rows
from dgnet_edge.apps.camera.storage.structure_bank import spread_across_cameras
from dgnet_edge.apps.camera.storage.synthesis import carried_features, open_generator
from dgnet_edge.boxes import l2_normalise
from dgnet_edge.data.dataset import ImageRecord
from dgnet_edge.data.images import read_image, resize
from dgnet_edge.data.market1501 import Market1501
from dgnet_edge.errors import DatasetError
from dgnet_edge.eval import evaluate
from dgnet_edge.runtime.embedder import Embedder


@dataclass(frozen=True)
class OneShotRow:
    templates: str
    rank1: float
    mAP: float


@dataclass(frozen=True)
class OneShotReport:
    rows: list[OneShotRow]
    identities: int
    queries: int
    k: int
    weight: float
    structures: int
    synthesis_s: float  # median per identity: decode K views + embed them
    backend: str

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows": [asdict(r) for r in self.rows]}


def augment(image: np.ndarray, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """K plain augmentations of an RGB image: every other one flipped, each a random crop of 80-100 %
    of each side resized back, and brightness, contrast and saturation jittered by up to 20 %."""
    h, w = image.shape[:2]
    views = []
    for i in range(k):
        view = image[:, ::-1] if i % 2 == 0 else image
        ch, cw = max(1, round(h * rng.uniform(0.8, 1.0))), max(1, round(w * rng.uniform(0.8, 1.0)))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        view = resize(np.ascontiguousarray(view[y:y + ch, x:x + cw]), h, w).astype(np.float32)
        view = view * rng.uniform(0.8, 1.2)
        mean = view.mean()
        view = (view - mean) * rng.uniform(0.8, 1.2) + mean
        grey = view.mean(axis=2, keepdims=True)
        view = (view - grey) * rng.uniform(0.8, 1.2) + grey
        views.append(np.clip(view, 0, 255).astype(np.uint8))
    return views


def _enrolments(records: list[ImageRecord], rng: np.random.Generator) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """One enrolment image per identity seen by two cameras or more (a random camera, its first image
    by name) and the queries: that identity's images from its other cameras."""
    by_pid: dict[int, dict[int, list[ImageRecord]]] = {}
    for r in records:
        if r.pid >= 1:
            by_pid.setdefault(r.pid, {}).setdefault(r.camid, []).append(r)
    enrolled, queries = [], []
    for pid in sorted(by_pid):
        cameras = sorted(by_pid[pid])
        if len(cameras) < 2:
            continue
        camera = cameras[int(rng.integers(len(cameras)))]
        enrolled.append(sorted(by_pid[pid][camera], key=lambda r: r.path.name)[0])
        queries += [r for c in cameras if c != camera for r in sorted(by_pid[pid][c], key=lambda r: r.path.name)]
    return enrolled, queries


def _bank(records: list[ImageRecord], per_camera: int) -> list[ImageRecord]:
    """The last ``per_camera`` training images of each camera, by name (the "most recent")."""
    by_camera: dict[int, list[ImageRecord]] = {}
    for r in sorted(records, key=lambda r: r.path.name):
        by_camera.setdefault(r.camid, []).append(r)
    return [r for camera in sorted(by_camera) for r in by_camera[camera][-per_camera:]]


def _protocol(world: str | Path, per_camera: int, rng: np.random.Generator) -> tuple[list[ImageRecord], list[ImageRecord], list[ImageRecord]]:
    """The enrolment images (their cameras drawn from ``rng``), the queries and the structure bank of
    the protocol on ``world``."""
    dataset = Market1501(world)
    dataset.check_before_run()
    enrolled, queries = _enrolments(dataset.query + dataset.gallery, rng)
    if not enrolled:
        raise DatasetError(f"{world}: no test identity is seen by two cameras; the one-shot protocol needs some")
    return enrolled, queries, _bank(dataset.train, per_camera)


def _structures_for(record: ImageRecord, bank: list[ImageRecord], k: int) -> list[int]:
    """Indices into ``bank`` of the K structures ``record`` is rendered in: spread over the cameras,
    its own last."""
    return spread_across_cameras([(i, f"c{r.camid}", float(i)) for i, r in enumerate(bank)], k,
                                 exclude_camera=f"c{record.camid}")


def _scores(queries: np.ndarray, real: list[np.ndarray], extra: list[np.ndarray] | None, weight: float) -> np.ndarray:
    """(Q, I): per identity, the gallery's score (:func:`scoring_rows`) of its real template and its
    ``extra`` templates taken as synthetic views."""
    columns = []
    for i, r in enumerate(real):
        kinds = ["real"] * len(r) + (["synthetic"] * len(extra[i]) if extra is not None else [])
        feats = np.concatenate([r, extra[i]]) if extra is not None else r
        columns.append((queries @ scoring_rows(kinds, feats, weight).T).max(axis=1))
    return np.stack(columns, axis=1)


def one_shot_cross_camera(
    world: str | Path,
    export_dir: str | Path,
    *,
    k: int = SYNTHETIC_VIEWS,
    weight: float = SYNTHETIC_WEIGHT,
    per_camera: int = BANK_PER_CAMERA,
    backend: str = "auto",
    precision: str = "auto",
    seed: int = 0,
    on_identity: Callable[[int, int], None] | None = None,
) -> OneShotReport:
    """The three rows of the one-shot protocol (module docstring) on ``world`` with ``export_dir``'s
    embedder and generator; ``on_identity(done, total)`` after each identity."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rng = np.random.default_rng(seed)  # the enrolment cameras, then the augmentations
    enrolled, queries, bank = _protocol(world, per_camera, rng)
    with Embedder.open(export_dir, backend, precision) as embedder, open_generator(export_dir, backend, precision) as generator:
        query_features = l2_normalise(embedder.embed([read_image(r.path) for r in queries]))
        bank_codes = generator.structure([read_image(r.path) for r in bank])
        real, synthetic, augmented, seconds = [], [], [], []
        for n, record in enumerate(enrolled):
            image = read_image(record.path)
            feature, appearance = generator.codes([image], embedder)
            real.append(l2_normalise(feature))
            started = clock.perf_counter()
            chosen = _structures_for(record, bank, k)
            views = generator.decode(bank_codes[chosen], np.repeat(appearance, len(chosen), axis=0))
            synthetic.append(l2_normalise(carried_features(embedder.embed(views), feature[0], embedder.manifest)))
            seconds.append(clock.perf_counter() - started)
            augmented.append(l2_normalise(embedder.embed(augment(image, k, rng))))
            if on_identity is not None:
                on_identity(n + 1, len(enrolled))
        used_backend = embedder.backend
    q_pids = np.array([r.pid for r in queries])
    q_cams = np.array([r.camid for r in queries])
    g_pids = np.array([r.pid for r in enrolled])
    g_cams = np.array([r.camid for r in enrolled])
    galleries = {"real": None, f"real + {k} synthetic": synthetic, f"real + {k} augmented": augmented}
    rows = []
    for name, extra in galleries.items():
        result = evaluate(1.0 - _scores(query_features, real, extra, weight), q_pids, g_pids, q_cams, g_cams, max_rank=1)
        rows.append(OneShotRow(name, float(result.cmc[0]), result.mAP))
    return OneShotReport(rows, len(enrolled), len(queries), k, weight, len(bank), float(np.median(seconds)), used_backend)


@dataclass(frozen=True)
class ViewsExample:
    """One enrolled identity of the protocol, as RGB images at the generator's size."""

    pid: int
    camera: int
    enrolment: np.ndarray
    structures: list[np.ndarray]  # the banked images whose structure codes the views use
    structure_cameras: list[int]
    views: list[np.ndarray]  # the synthetic views, one per structure
    others: list[np.ndarray]  # the identity's real images from its other cameras (at most K)


def views_example(world: str | Path, export_dir: str | Path, *, identity: int = 0, k: int = SYNTHETIC_VIEWS, per_camera: int = BANK_PER_CAMERA,
                  backend: str = "auto", precision: str = "auto", seed: int = 0) -> ViewsExample:
    """The ``identity``-th enrolled identity (by person id) of :func:`one_shot_cross_camera` with the
    same arguments: the same enrolment image, bank and choice of structures."""
    enrolled, queries, bank = _protocol(world, per_camera, np.random.default_rng(seed))
    if not 0 <= identity < len(enrolled):
        raise DatasetError(f"{world}: identity index {identity} is outside the {len(enrolled)} enrolled identities")
    record = enrolled[identity]
    chosen = _structures_for(record, bank, k)
    with Embedder.open(export_dir, backend, precision) as embedder, open_generator(export_dir, backend, precision) as generator:
        _, appearance = generator.codes([read_image(record.path)], embedder)
        codes = generator.structure([read_image(bank[i].path) for i in chosen])
        views = generator.decode(codes, np.repeat(appearance, len(chosen), axis=0))
    height, width = views.shape[1:3]

    def load(r: ImageRecord) -> np.ndarray:
        return resize(read_image(r.path), height, width)

    others = [load(r) for r in queries if r.pid == record.pid][:k]
    return ViewsExample(record.pid, record.camid, load(record), [load(bank[i]) for i in chosen],
                        [bank[i].camid for i in chosen], list(views), others)


def views_picture(example: ViewsExample, gap: int = 4) -> np.ndarray:
    """An RGB picture of ``example``, three rows: the enrolment image then the structure sources (with
    their cameras); the synthetic views under their sources; the person's images from the other
    cameras. Rows are labelled on the left."""
    import cv2

    h, w = example.enrolment.shape[:2]
    columns = 1 + max(len(example.structures), len(example.others))
    labels = ["enrolment, structures", f"synthetic views of {example.pid}", "other cameras (real)"]
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.42
    label_w = 8 + max(cv2.getTextSize(label, font, scale, 1)[0][0] for label in labels)
    blank = np.full((h, w, 3), 255, np.uint8)

    def row(label: str, images: list[np.ndarray], captions: list[str]) -> np.ndarray:
        tiles = [np.full((h, label_w, 3), 255, np.uint8)]
        cv2.putText(tiles[0], label, (4, h // 2), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
        for i in range(columns):
            tile = images[i].copy() if i < len(images) else blank.copy()
            if i < len(captions) and captions[i]:
                cv2.rectangle(tile, (0, 0), (w - 1, 13), (255, 255, 255), -1)
                cv2.putText(tile, captions[i], (2, 10), font, 0.33, (0, 0, 0), 1, cv2.LINE_AA)
            tiles += [np.full((h, gap, 3), 255, np.uint8), tile]
        return np.hstack(tiles)

    rows = [
        row(labels[0], [example.enrolment, *example.structures],
            [f"c{example.camera + 1}"] + [f"c{c + 1}" for c in example.structure_cameras]),
        row(labels[1], [blank, *example.views], []),
        row(labels[2], [blank, *example.others], []),
    ]
    spacer = np.full((gap, rows[0].shape[1], 3), 255, np.uint8)
    return np.vstack([rows[0], spacer, rows[1], spacer, rows[2]])


def format_report(report: OneShotReport) -> str:
    lines = [f"one-shot cross-camera re-id: {report.identities} identities enrolled from one image, "
             f"{report.queries} queries from their other cameras; {report.structures} banked structures, "
             f"weight {report.weight} ({report.backend})",
             f"{'gallery':<24}{'rank-1':>8}{'mAP':>8}"]
    lines += [f"{r.templates:<24}{100 * r.rank1:>7.1f}%{100 * r.mAP:>7.1f}%" for r in report.rows]
    lines.append(f"synthesis per enrolment (decode {report.k} views + embed them): {report.synthesis_s * 1000:.1f} ms median")
    return "\n".join(lines)
