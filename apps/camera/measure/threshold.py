"""The cosine score from which the camera app takes a track to be a known identity.

Calibrated on a dataset's query/gallery split, posed as the decision the app makes: each query is
a track asking the gallery "who is this?". Scores are cosines of L2-normalised features, as the
gallery computes them. For a query, ``own`` is its best score against gallery images of its own
identity from other cameras (the Market rule: same identity and camera is junk), ``other`` its best
score against everyone else (distractors included, junk left out). At threshold ``t``:

- re-identified (TPR): ``own >= t`` and ``own >= other`` — the person is in the gallery and is found;
- false match rate (FMR): ``other >= t`` — the same query, were the person not enrolled yet, would
  be given someone else's identity instead of a new one;
- wrong identity: ``other >= t`` and ``other > own`` — enrolled, but given someone else's identity.

The chosen threshold maximises TPR - FMR (Youden's J), in the middle of the range of scores
where it is highest. The app meets both cases about as often — each person is unknown at first
sight and known afterwards — and both errors cost about the same to the user: a false match joins
two people, a miss splits one into two identities (fixed with ``dgnet-edge gallery merge``). Pair-level rates (all same-identity cross-camera pairs against all
different-identity pairs) are recorded beside it as a measure of how separable the features are.

The result lives in the export folder as ``reid_threshold.json``, beside ``manifest.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dgnet_edge.atomic import write_atomic
from dgnet_edge.boxes import l2_normalise
from dgnet_edge.data.dataset import ReidDataset
from dgnet_edge.errors import ExportError, UsageError
from dgnet_edge.manifest import read_export_file, unreadable_export_file
from dgnet_edge.runtime.colour import read_site_colour

THRESHOLD_FILE = "reid_threshold.json"
FORMAT = "dgnet-edge-reid-threshold"
VERSION = 1


@dataclass(frozen=True)
class Calibration:
    threshold: float
    tpr: float  # queries re-identified at the threshold
    false_match_rate: float  # queries that, not enrolled, would take someone else's identity
    wrong_identity_rate: float  # enrolled queries given someone else's identity
    pair_tpr: float  # same-identity cross-camera pairs at or over the threshold
    pair_fpr: float  # different-identity pairs at or over the threshold
    queries: int
    gallery: int
    rule: str = "max TPR - FMR"


def calibrate_threshold(
    query_features: np.ndarray, query_pids: np.ndarray, query_camids: np.ndarray,
    gallery_features: np.ndarray, gallery_pids: np.ndarray, gallery_camids: np.ndarray,
) -> Calibration:
    """The threshold that best tells known from unknown people on this split (see the module docstring)."""
    q_pids, q_cams = np.asarray(query_pids), np.asarray(query_camids)
    g_pids, g_cams = np.asarray(gallery_pids), np.asarray(gallery_camids)
    scores = l2_normalise(query_features) @ l2_normalise(gallery_features).T
    same = q_pids[:, None] == g_pids[None]
    junk = (same & (q_cams[:, None] == g_cams[None])) | (g_pids[None] == -1)
    positive, negative = same & ~junk, ~same & ~junk
    usable = positive.any(axis=1) & negative.any(axis=1)
    if not usable.any():
        raise ValueError("no query has both a same-identity image from another camera and a different identity "
                         "in the gallery: the split cannot calibrate a threshold")
    scores, positive, negative = scores[usable], positive[usable], negative[usable]
    own = np.where(positive, scores, -np.inf).max(axis=1)
    other = np.where(negative, scores, -np.inf).max(axis=1)
    found = np.sort(np.where(own >= other, own, -np.inf))
    impostor = np.sort(other)
    candidates = np.unique(np.concatenate([own, other]))
    candidates = np.append(candidates, np.nextafter(candidates[-1], np.inf))  # also: nobody is known
    n = len(own)
    tpr = (n - np.searchsorted(found, candidates, side="left")) / n
    fmr = (n - np.searchsorted(impostor, candidates, side="left")) / n
    # Both rates are constant for t in (candidates[k-1], candidates[k]]: take the middle of the first
    # run of best values, the threshold furthest from the scores that decide it.
    j = tpr - fmr
    lo = int(np.argmax(j))
    hi = lo
    while hi + 1 < len(j) and j[hi + 1] == j[lo]:
        hi += 1
    t = float(candidates[hi] if lo == 0 else (candidates[lo - 1] + candidates[hi]) / 2)
    return Calibration(
        threshold=round(t, 6),
        tpr=float(tpr[lo]),
        false_match_rate=float(fmr[lo]),
        wrong_identity_rate=float(np.mean((other >= t) & (other > own))),
        pair_tpr=float((scores[positive] >= t).mean()),
        pair_fpr=float((scores[negative] >= t).mean()),
        queries=int(n),
        gallery=len(g_pids),
    )


def calibrate_export(export_dir: str | Path, ds: ReidDataset, backend: str = "auto", precision: str = "auto",
                     on_batch: Callable[[int], None] | None = None) -> tuple[Calibration, dict]:
    """Embed the dataset's query and gallery with the export's embedder and calibrate; also what was used."""
    from dgnet_edge.retrieval import extract_features
    from dgnet_edge.runtime.embedder import Embedder

    with Embedder.open(export_dir, backend=backend, precision=precision, site_colour=False) as embedder:
        size = (embedder.manifest.input.height, embedder.manifest.input.width)
        qf = extract_features(embedder.embed, ds.query, *size, batch_size=embedder.max_batch, on_batch=on_batch)
        gf = extract_features(embedder.embed, ds.gallery, *size, batch_size=embedder.max_batch, on_batch=on_batch)
        used = {"data": str(ds.root), "dataset": ds.name, "backend": embedder.backend, "model": embedder.runner.name}
    result = calibrate_threshold(qf, np.array([r.pid for r in ds.query]), np.array([r.camid for r in ds.query]),
                                 gf, np.array([r.pid for r in ds.gallery]), np.array([r.camid for r in ds.gallery]))
    return result, used


def write_threshold(export_dir: str | Path, calibration: Calibration, used: dict) -> Path:
    """Write ``reid_threshold.json`` into the export folder (atomically)."""
    path = Path(export_dir) / THRESHOLD_FILE
    body = {"format": FORMAT, "version": VERSION, **asdict(calibration), "calibrated_on": used}
    write_atomic(path, (json.dumps(body, indent=2) + "\n").encode())
    return path


def read_threshold(export_dir: str | Path) -> float | None:
    """The export's calibrated threshold, or None when it has none."""
    path = Path(export_dir) / THRESHOLD_FILE
    hint = "run `dgnet-edge gallery calibrate` again or pass --threshold"
    body = read_export_file(path, FORMAT, VERSION, "threshold", hint)
    if body is None:
        return None
    try:
        threshold = body["threshold"]
        # json reads NaN and Infinity; a NaN threshold would silently match nobody
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold {threshold!r} is not a cosine score in [-1, 1]")
        return float(threshold)
    except (ValueError, KeyError) as e:
        raise unreadable_export_file(path, "threshold", hint, e) from None


def resolve_threshold(export_dir: str | Path, override: float | None) -> float:
    """``--threshold`` when given, else the site colour's (its features carry colour), else the
    export's calibrated one."""
    if override is not None:
        if not -1.0 <= override <= 1.0:
            raise UsageError(f"--threshold is a cosine score in [-1, 1], got {override}")
        return override
    site = read_site_colour(export_dir)
    if site is not None:
        return site.threshold
    threshold = read_threshold(export_dir)
    if threshold is None:
        raise ExportError(f"export {export_dir} has no {THRESHOLD_FILE}: run `dgnet-edge gallery calibrate "
                          f"{export_dir} --data DIR` or pass --threshold")
    return threshold
