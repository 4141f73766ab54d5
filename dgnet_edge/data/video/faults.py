"""Public detections made from the ground truth, with the faults a real person detector has.

A ground-truth box is missed with probability ``miss + occlusion_miss · (1 - visibility)²`` (a
mostly hidden person is usually missed; a fully hidden one always), more often when it is small;
a kept box is jittered in position and size in proportion to its size; false positives (parts of
the scene, person-sized) appear at ``false_per_frame`` per frame on average. Scores are higher for
well-visible people than for false positives, with overlap, as a detector's are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from dgnet_edge.boxes import clip_boxes, tlwh_to_xyxy, xyxy_to_tlwh
from dgnet_edge.data.video.mot import MotRows


@dataclass(frozen=True)
class FaultRates:
    """The detector's fault model (probabilities, and jitter as fractions of the box size)."""

    miss: float = 0.05
    occlusion_miss: float = 0.9
    small_miss: float = 0.15  # extra miss probability for boxes under ``small_height`` pixels
    small_height: float = 60.0
    jitter_position: float = 0.04
    jitter_size: float = 0.05
    false_per_frame: float = 0.3

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class FaultCounts:
    """What the fault model did to one camera's ground truth."""

    gt_boxes: int
    missed: int
    false_positives: int
    frames: int

    def to_dict(self) -> dict[str, float]:
        return {
            "gt_boxes": self.gt_boxes,
            "missed": self.missed,
            "miss_rate": round(self.missed / max(1, self.gt_boxes), 4),
            "false_positives": self.false_positives,
            "false_per_frame": round(self.false_positives / max(1, self.frames), 4),
        }


def make_detections(
    gt: MotRows, frames: int, width: int, height: int, rng: np.random.Generator, rates: FaultRates = FaultRates()
) -> tuple[MotRows, FaultCounts]:
    """Detections (ids -1) of one camera from its ground truth ``gt`` over ``frames`` frames."""
    n = len(gt)
    vis = gt.visibility.astype(np.float64)
    p_miss = rates.miss + rates.occlusion_miss * (1.0 - vis) ** 2 + rates.small_miss * (gt.boxes[:, 3] < rates.small_height)
    p_miss = np.where(vis <= 0.0, 1.0, np.clip(p_miss, 0.0, 1.0))
    kept = rng.random(n) >= p_miss
    boxes = gt.boxes[kept].astype(np.float64)
    w, h = boxes[:, 2].copy(), boxes[:, 3].copy()
    grow = np.exp(rng.normal(0.0, rates.jitter_size, (len(boxes), 2)))
    cx = boxes[:, 0] + w / 2 + rng.normal(0.0, rates.jitter_position, len(boxes)) * w
    cy = boxes[:, 1] + h / 2 + rng.normal(0.0, rates.jitter_position, len(boxes)) * h
    w, h = w * grow[:, 0], h * grow[:, 1]
    true_boxes = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
    true_scores = np.clip(0.5 + 0.45 * vis[kept] + rng.normal(0.0, 0.08, len(boxes)), 0.05, 0.99)

    n_false = int(rng.poisson(rates.false_per_frame * frames))
    false_frames = rng.integers(1, frames + 1, n_false)
    fh = height * rng.uniform(0.15, 0.5, n_false)
    fw = fh * rng.uniform(0.3, 0.5, n_false)
    fx = rng.uniform(0, 1, n_false) * (width - fw)
    fy = height * rng.uniform(0.3, 0.95, n_false) - fh
    false_boxes = np.stack([fx, np.maximum(0.0, fy), fw, fh], axis=1)
    false_scores = np.clip(rng.normal(0.45, 0.12, n_false), 0.05, 0.95)

    boxes = xyxy_to_tlwh(clip_boxes(tlwh_to_xyxy(np.concatenate([true_boxes, false_boxes])), width, height))
    frame = np.concatenate([gt.frame[kept], false_frames])
    scores = np.concatenate([true_scores, false_scores])
    good = (boxes[:, 2] >= 2) & (boxes[:, 3] >= 2)
    dets = MotRows.of(frame[good], np.full(int(good.sum()), -1), boxes[good], scores[good], np.full(int(good.sum()), -1.0))
    return dets, FaultCounts(n, int(n - kept.sum()), n_false, frames)
