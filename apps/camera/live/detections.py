"""People found in one frame: the boxes and scores that detectors produce and the tracker consumes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dgnet_edge.boxes import tlwh_to_xyxy


@dataclass(frozen=True)
class Detections:
    """``boxes`` (N, 4) float32 x1, y1, x2, y2 in frame pixels; ``scores`` (N,) float32."""

    boxes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        if self.boxes.dtype != np.float32 or self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise ValueError(f"boxes must be float32 (N, 4), got {self.boxes.dtype} {self.boxes.shape}")
        if self.scores.dtype != np.float32 or self.scores.shape != (len(self.boxes),):
            raise ValueError(
                f"scores must be float32 ({len(self.boxes)},), got {self.scores.dtype} {self.scores.shape}"
            )

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    @classmethod
    def from_xyxy(cls, boxes, scores=None) -> Detections:
        """From any array-like of x1, y1, x2, y2 boxes; scores default to 1."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.ones(len(boxes), np.float32) if scores is None else np.asarray(scores, np.float32).reshape(-1)
        return cls(np.ascontiguousarray(boxes), np.ascontiguousarray(scores))

    @classmethod
    def from_xywh(cls, boxes, scores=None) -> Detections:
        """From x, y (top left), width, height boxes, as MOTChallenge files hold them."""
        return cls.from_xyxy(tlwh_to_xyxy(np.asarray(boxes, np.float32)), scores)

    def select(self, keep) -> Detections:
        """The detections picked by a boolean mask or an index array, in that order."""
        return Detections(np.ascontiguousarray(self.boxes[keep]), np.ascontiguousarray(self.scores[keep]))
