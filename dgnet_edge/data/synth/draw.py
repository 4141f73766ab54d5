"""Anti-aliased drawing primitives with sub-pixel coordinates (OpenCV fixed-point ``shift``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Tuple

import cv2
import numpy as np

Point = Tuple[float, float]
Colour = Tuple[float, ...]

SHIFT = 4
_ONE = 1 << SHIFT


def _fixed(points: Sequence[Point] | np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32).reshape(-1, 2)


def _pt(p: Point) -> tuple[int, int]:
    return round(p[0] * _ONE), round(p[1] * _ONE)


def shade(colour: Colour, factor: float) -> Colour:
    return tuple(min(255.0, c * factor) for c in colour)


def polygon(img: np.ndarray, points: Sequence[Point] | np.ndarray, colour: Colour) -> None:
    cv2.fillPoly(img, [_fixed(points)], colour, cv2.LINE_AA, SHIFT)


def outline(img: np.ndarray, points: Sequence[Point] | np.ndarray, colour: Colour, closed: bool = True) -> None:
    cv2.polylines(img, [_fixed(points)], closed, colour, 1, cv2.LINE_AA, SHIFT)


def ellipse(
    img: np.ndarray,
    centre: Point,
    axes: tuple[float, float],
    colour: Colour,
    angle: float = 0.0,
    start: float = 0.0,
    end: float = 360.0,
) -> None:
    """A filled ellipse (or sector from ``start`` to ``end`` degrees, clockwise from +x)."""
    cv2.ellipse(img, _pt(centre), _pt(axes), angle, start, end, colour, -1, cv2.LINE_AA, SHIFT)


def circle(img: np.ndarray, centre: Point, radius: float, colour: Colour) -> None:
    cv2.circle(img, _pt(centre), max(1, round(radius * _ONE)), colour, -1, cv2.LINE_AA, SHIFT)


def line(img: np.ndarray, p0: Point, p1: Point, colour: Colour, thickness: int = 1) -> None:
    cv2.line(img, _pt(p0), _pt(p1), colour, max(1, thickness), cv2.LINE_AA, SHIFT)


def limb(img: np.ndarray, p0: Point, p1: Point, w0: float, w1: float, colour: Colour, round_ends: bool = True) -> None:
    """A tapered segment from ``p0`` (width ``w0``) to ``p1`` (width ``w1``), with rounded joints."""
    d = np.subtract(p1, p0, dtype=np.float64)
    n = np.hypot(*d)
    if n < 1e-6:
        circle(img, p0, max(w0, w1) / 2, colour)
        return
    normal = np.array([-d[1], d[0]]) / n
    a, b = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
    polygon(img, [a + normal * w0 / 2, b + normal * w1 / 2, b - normal * w1 / 2, a - normal * w0 / 2], colour)
    if round_ends:
        circle(img, p0, w0 / 2, colour)
        circle(img, p1, w1 / 2, colour)


def rounded_rect(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, radius: float, colour: Colour) -> None:
    r = max(0.0, min(radius, (x1 - x0) / 2, (y1 - y0) / 2))
    polygon(img, [(x0 + r, y0), (x1 - r, y0), (x1, y0 + r), (x1, y1 - r), (x1 - r, y1), (x0 + r, y1), (x0, y1 - r), (x0, y0 + r)], colour)
    for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
        circle(img, (cx, cy), r, colour)


def blend_mask(img: np.ndarray, mask: np.ndarray, colour: Colour, x0: int, y0: int) -> None:
    """Paint ``colour`` into ``img`` through an 8-bit coverage ``mask`` placed at (``x0``, ``y0``), clipped."""
    h, w = img.shape[:2]
    mh, mw = mask.shape
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(w, x0 + mw), min(h, y0 + mh)
    if ix0 >= ix1 or iy0 >= iy1:
        return
    m = mask[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0].astype(np.float32)[..., None] / 255.0
    roi = img[iy0:iy1, ix0:ix1]
    roi[:] = (roi * (1.0 - m) + np.asarray(colour, dtype=np.float32) * m + 0.5).astype(np.uint8)


def polygon_mask(points: Sequence[Point] | np.ndarray) -> tuple[np.ndarray, int, int]:
    """An 8-bit anti-aliased coverage mask of a polygon and the image position of its corner."""
    pts = np.asarray(points, dtype=np.float64)
    x0, y0 = int(np.floor(pts[:, 0].min())) - 1, int(np.floor(pts[:, 1].min())) - 1
    x1, y1 = int(np.ceil(pts[:, 0].max())) + 2, int(np.ceil(pts[:, 1].max())) + 2
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [_fixed(pts - (x0, y0))], 255, cv2.LINE_AA, SHIFT)
    return mask, x0, y0
