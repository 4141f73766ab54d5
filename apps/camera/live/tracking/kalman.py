"""Constant-velocity Kalman filter on boxes, vectorised over tracks.

State per track: centre x, centre y, width, height and their velocities per frame
(``[cx, cy, w, h, vx, vy, vw, vh]``), measured as ``[cx, cy, w, h]``. As in BoT-SORT (Aharon et
al., 2022), every noise standard deviation is a fraction of the box's own width (for x and w) or
height (for y and h), so a small far-away person and a large near one are filtered alike; tracking
width instead of DeepSORT's aspect ratio keeps the box shape right when a person turns.

All functions take stacks: ``mean`` (T, 8) and ``covariance`` (T, 8, 8), so one call predicts every
track of a camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dgnet_edge.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh

# 0.95 quantile of the chi-square distribution with 3 degrees of freedom (cx, cy, h).
CHI2_95_3DOF = 7.8147
_GATED = [0, 1, 3]  # cx, cy, h

_F = np.eye(8)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)


def _scaled(wh: np.ndarray, weight: float) -> np.ndarray:
    """(T, 4) standard deviations ``weight * [w, h, w, h]`` from (T, 2) sizes."""
    return weight * np.concatenate([wh, wh], axis=1)


@dataclass(frozen=True)
class BoxKalman:
    """Noise model of the filter: BoT-SORT's position noise, and twice its velocity noise, as
    walking people stop, turn and change pace (on the video bench this kept more identities).

    Attributes:
        position_weight: standard deviation of position and size noise, and of the measurement,
            as a fraction of the box size.
        velocity_weight: standard deviation of the per-frame velocity noise, as a fraction of the
            box size.
    """

    position_weight: float = 1.0 / 20
    velocity_weight: float = 1.0 / 80

    def initiate(self, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """States of new tracks at their first boxes, with zero velocity and a wide velocity prior."""
        z = xyxy_to_cxcywh(boxes_xyxy)
        mean = np.concatenate([z, np.zeros_like(z)], axis=1)
        wh = np.maximum(z[:, 2:], 1.0)
        std = np.concatenate([_scaled(wh, 2 * self.position_weight), _scaled(wh, 10 * self.velocity_weight)], axis=1)
        covariance = np.zeros((len(z), 8, 8))
        idx = np.arange(8)
        covariance[:, idx, idx] = std**2
        return mean, covariance

    def predict(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead for every track."""
        wh = np.maximum(mean[:, 2:4], 1.0)
        std = np.concatenate([_scaled(wh, self.position_weight), _scaled(wh, self.velocity_weight)], axis=1)
        mean = mean @ _F.T
        covariance = _F @ covariance @ _F.T
        idx = np.arange(8)
        covariance[:, idx, idx] += std**2
        return mean, covariance

    def project(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Measurement-space mean (T, 4) and innovation covariance (T, 4, 4)."""
        wh = np.maximum(mean[:, 2:4], 1.0)
        r = _scaled(wh, self.position_weight) ** 2
        projected = covariance[:, :4, :4].copy()
        idx = np.arange(4)
        projected[:, idx, idx] += r
        return mean[:, :4], projected

    def update(self, mean: np.ndarray, covariance: np.ndarray, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct each track (row) with its measured box (the same row of ``boxes_xyxy``)."""
        z = xyxy_to_cxcywh(boxes_xyxy)
        z_pred, s = self.project(mean, covariance)
        pht = covariance[:, :, :4]  # P H^T, (T, 8, 4)
        gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)  # P H^T S^-1 (S symmetric)
        innovation = z - z_pred
        mean = mean + np.einsum("tij,tj->ti", gain, innovation)
        covariance = covariance - gain @ s @ gain.transpose(0, 2, 1)
        return mean, covariance

    def gating_distance(self, mean: np.ndarray, covariance: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        """(T, N) squared Mahalanobis distances between each track's predicted centre and height
        and each box's; compare with :data:`CHI2_95_3DOF` to gate.

        Width is left out: a walking person's box widens and narrows with every stride, far more
        than the filter's noise model says, so it would gate out the person's own next box.
        """
        z = xyxy_to_cxcywh(boxes_xyxy)[:, _GATED]
        if len(mean) == 0 or len(z) == 0:
            return np.zeros((len(mean), len(z)))
        z_pred, s = self.project(mean, covariance)
        z_pred, s = z_pred[:, _GATED], s[:, _GATED][:, :, _GATED]
        d = z[None, :, :] - z_pred[:, None, :]  # (T, N, 3)
        s_inv = np.linalg.inv(s)
        return np.einsum("tni,tij,tnj->tn", d, s_inv, d)


def boxes_of(mean: np.ndarray) -> np.ndarray:
    """(T, 4) float32 x1y1x2y2 boxes of the states."""
    return cxcywh_to_xyxy(mean[:, :4]).astype(np.float32)
