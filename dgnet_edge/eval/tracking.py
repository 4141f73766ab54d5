"""Tracking metrics of a video bench with TrackEval: per camera HOTA, IDF1, MOTA, ID switches; multi-camera IDF1.

TrackEval's metric classes (HOTA, CLEAR, Identity) run on sequences loaded here from the bench's
``gt.txt`` and the tracker's MOTChallenge files, prepared the way TrackEval prepares MOTChallenge
data (``MotChallenge2DBox.get_preprocessed_seq_data``): IoU similarities, ids relabelled to
0..n-1, and ground truth that should not count removed together with the predictions matched to
it (Hungarian matching at IoU >= 0.5). Here that is ground truth less than ``min_visibility``
visible (default 0.25; visibility counts the image border and every nearer person and object):
a tracker is neither blamed for missing a person it cannot see nor for boxing one it can
barely see. The same rule applies to every camera and to the multi-camera figure.

Multi-camera IDF1 (DukeMTMC-MTMC, Ristani et al. 2016): all cameras are merged into one sequence,
camera ``k``'s frames shifted by ``k`` times the bench length, so that one global one-to-one
mapping between predicted and true identities holds over every camera and frame, and a person
given another identity in another camera costs IDF1. Per-camera IDF1 maps ids camera by camera
and does not see such a switch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dgnet_edge.data.video.mot import MotRows, read_mot
from dgnet_edge.data.video.world import Site, load_site
from dgnet_edge.errors import DatasetError

MIN_VISIBILITY = 0.25
MATCH_IOU = 0.5


@dataclass(frozen=True)
class TrackMetrics:
    """TrackEval's figures for one sequence (percentages, except the counts)."""

    hota: float
    deta: float
    assa: float
    idf1: float
    idp: float
    idr: float
    mota: float
    motp: float
    id_switches: int
    gt_boxes: int
    pred_boxes: int
    gt_ids: int
    pred_ids: int


@dataclass(frozen=True)
class TrackingResult:
    """Per-camera metrics, TrackEval's combination of the cameras, and the multi-camera identity figures.

    ``combined`` adds up the cameras as TrackEval combines sequences (identities mapped camera by
    camera); ``multi_camera_idf1`` (with its precision and recall) maps identities once over all
    cameras.
    """

    per_camera: dict[str, TrackMetrics]
    combined: TrackMetrics
    multi_camera_idf1: float
    multi_camera_idp: float
    multi_camera_idr: float
    min_visibility: float

    def to_dict(self) -> dict:
        return {
            "per_camera": {name: asdict(m) for name, m in self.per_camera.items()},
            "combined_per_camera_ids": asdict(self.combined),
            "multi_camera": {
                "idf1": self.multi_camera_idf1,
                "idp": self.multi_camera_idp,
                "idr": self.multi_camera_idr,
            },
            "min_visibility": self.min_visibility,
        }


def _metric_classes():
    # TrackEval 1.3 runs unchanged on numpy 2 (its np.float/np.int uses are gone), so no aliases
    # are patched in; its metric constructors print their config unless told not to.
    from trackeval.metrics import CLEAR, HOTA, Identity

    quiet = {"PRINT_CONFIG": False}
    return HOTA(), CLEAR({**quiet, "THRESHOLD": MATCH_IOU}), Identity({**quiet, "THRESHOLD": MATCH_IOU})


def _ious(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    from trackeval.datasets._base_dataset import _BaseDataset

    return _BaseDataset._calculate_box_ious(gt.astype(np.float64), pred.astype(np.float64), box_format="xywh")


def _relabel(ids_per_t: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    unique = np.unique(np.concatenate(ids_per_t)) if ids_per_t else np.zeros(0, np.int64)
    return [np.searchsorted(unique, ids).astype(int) for ids in ids_per_t], len(unique)


def sequence_data(gt: MotRows, pred: MotRows, frames: int, min_visibility: float = MIN_VISIBILITY, name: str = "") -> dict:
    """TrackEval's preprocessed sequence (the ``data`` its metrics' ``eval_sequence`` take) for ``frames`` frames."""
    from scipy.optimize import linear_sum_assignment

    eps = np.finfo("float").eps
    gt_ids, pred_ids, sims = [], [], []
    for t in range(1, frames + 1):
        g, p = gt.at(t), pred.at(t)
        sim = _ious(g.boxes, p.boxes)
        ignored = g.visibility < min_visibility
        drop = np.zeros(len(p), bool)
        if ignored.any() and len(p):
            scores = sim.copy()
            scores[scores < MATCH_IOU - eps] = 0
            rows, cols = linear_sum_assignment(-scores)
            matched = scores[rows, cols] > eps
            drop[cols[matched & ignored[rows]]] = True
        gt_ids.append(g.ids[~ignored])
        pred_ids.append(p.ids[~drop])
        sims.append(sim[~ignored][:, ~drop])
    gt_ids, num_gt_ids = _relabel(gt_ids)
    pred_ids, num_pred_ids = _relabel(pred_ids)
    return {
        "num_timesteps": frames,
        "num_gt_ids": num_gt_ids,
        "num_tracker_ids": num_pred_ids,
        "num_gt_dets": int(sum(len(i) for i in gt_ids)),
        "num_tracker_dets": int(sum(len(i) for i in pred_ids)),
        "gt_ids": gt_ids,
        "tracker_ids": pred_ids,
        "similarity_scores": sims,
        "seq": name,
    }


def _pct(value) -> float:
    """A TrackEval fraction as a percentage (HOTA's figures are arrays over IoU thresholds: their mean)."""
    return round(100.0 * float(np.mean(value)), 3)


def _metrics(hota: dict, clear: dict, identity: dict, data_counts: tuple[int, int, int, int]) -> TrackMetrics:
    pct = _pct
    gt_boxes, pred_boxes, gt_ids, pred_ids = data_counts
    return TrackMetrics(
        hota=pct(hota["HOTA"]),
        deta=pct(hota["DetA"]),
        assa=pct(hota["AssA"]),
        idf1=pct(identity["IDF1"]),
        idp=pct(identity["IDP"]),
        idr=pct(identity["IDR"]),
        mota=pct(clear["MOTA"]),
        motp=pct(clear["MOTP"]),
        id_switches=int(clear["IDSW"]),
        gt_boxes=gt_boxes,
        pred_boxes=pred_boxes,
        gt_ids=gt_ids,
        pred_ids=pred_ids,
    )


def _counts(data: dict) -> tuple[int, int, int, int]:
    return data["num_gt_dets"], data["num_tracker_dets"], data["num_gt_ids"], data["num_tracker_ids"]


def _check_prediction(path: str, rows: MotRows, frames: int) -> None:
    if len(rows) and rows.frame[-1] > frames:
        raise DatasetError(f"{path}: frame {int(rows.frame[-1])} is beyond the bench's {frames} frames")
    if len(rows) > 1:
        order = np.lexsort((rows.ids, rows.frame))  # by frame, then id: a repeated pair lands side by side
        frame, ids = rows.frame[order], rows.ids[order]
        repeated = np.flatnonzero((frame[1:] == frame[:-1]) & (ids[1:] == ids[:-1]))
        if len(repeated):
            k = repeated[0]
            raise DatasetError(f"{path}: id {int(ids[k])} appears more than once in frame {int(frame[k])}; ids must be unique per frame")


def _merged(rows: dict[str, MotRows], names: tuple[str, ...], frames: int) -> MotRows:
    parts = [rows[n] for n in names]
    return MotRows.of(
        np.concatenate([r.frame.astype(np.int64) + k * frames for k, r in enumerate(parts)]),
        np.concatenate([r.ids for r in parts]),
        np.concatenate([r.boxes for r in parts]),
        np.concatenate([r.scores for r in parts]),
        np.concatenate([r.visibility for r in parts]),
    )


def evaluate_tracks(pred: dict[str, MotRows], gt_dir: str | Path | Site, min_visibility: float = MIN_VISIBILITY) -> TrackingResult:
    """TrackEval's metrics of the tracks ``pred`` (camera name -> rows, ids as the tracker gave them) on the bench ``gt_dir``."""
    site = gt_dir if isinstance(gt_dir, Site) else load_site(gt_dir)
    names = site.camera_names
    missing = [n for n in names if n not in pred]
    if missing:
        raise DatasetError(f"no tracks for camera {missing[0]} of the bench {site.root} (it has {', '.join(names)})")
    for name in names:
        _check_prediction(f"tracks of {name}", pred[name], site.frames)
    gts = {name: site.gt(name) for name in names}
    hota, clear, identity = _metric_classes()
    per_camera, results = {}, {"hota": {}, "clear": {}, "identity": {}}
    for name in names:
        data = sequence_data(gts[name], pred[name], site.frames, min_visibility, name)
        res = (hota.eval_sequence(data), clear.eval_sequence(data), identity.eval_sequence(data))
        for key, r in zip(results, res):
            results[key][name] = r
        per_camera[name] = _metrics(*res, _counts(data))
    combined = tuple(metric.combine_sequences(results[key]) for metric, key in zip((hota, clear, identity), results))
    counts = tuple(sum(getattr(m, f) for m in per_camera.values()) for f in ("gt_boxes", "pred_boxes", "gt_ids", "pred_ids"))
    merged = sequence_data(_merged(gts, names, site.frames), _merged(pred, names, site.frames), site.frames * len(names), min_visibility, "all cameras")
    multi = identity.eval_sequence(merged)
    return TrackingResult(
        per_camera=per_camera,
        combined=_metrics(*combined, counts),
        multi_camera_idf1=round(100.0 * float(multi["IDF1"]), 3),
        multi_camera_idp=round(100.0 * float(multi["IDP"]), 3),
        multi_camera_idr=round(100.0 * float(multi["IDR"]), 3),
        min_visibility=min_visibility,
    )


def read_predictions(pred_dir: str | Path, site: Site) -> dict[str, MotRows]:
    """``PRED_DIR/camN.txt`` for every camera of ``site``; a missing file is a one-line DatasetError."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DatasetError(f"prediction folder {pred_dir} does not exist or is not a folder")
    rows = {}
    for name in site.camera_names:
        path = pred_dir / f"{name}.txt"
        if not path.is_file():
            raise DatasetError(f"{path}: missing; PRED_DIR needs one MOTChallenge file per camera ({', '.join(n + '.txt' for n in site.camera_names)})")
        rows[name] = read_mot(path)
        _check_prediction(str(path), rows[name], site.frames)
    return rows
