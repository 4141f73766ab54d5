"""The accuracy-vs-latency picture: mAP against batch-1 median latency, one labelled point per row.

Drawn with OpenCV (a dependency already): at twice the final size and shrunk with area averaging,
so lines and Hershey text come out anti-aliased. Colour says the backend, the marker the
precision; the dashed line joins the Pareto-optimal rows (no other row is both faster and more
accurate). The latency axis turns logarithmic when the rows span more than a factor of 6.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

WIDTH, HEIGHT = 1200, 720  # pixels of the PNG
_S = 2  # supersampling factor
_FONT = cv2.FONT_HERSHEY_DUPLEX
_TEXT = (40, 40, 40)
_GRID = (232, 232, 232)
_AXIS = (90, 90, 90)
# BGR colours per backend (a colour-blind-safe set: orange, blue, bluish green, purple).
BACKEND_COLOURS = {"torch": (0, 120, 230), "onnxruntime": (178, 114, 0), "tensorrt": (115, 158, 0)}
_OTHER = (167, 121, 204)
MARKERS = {"fp32": "circle", "fp16": "square", "int8-cpu": "triangle", "int8-qdq": "diamond", "int8": "triangle"}


@dataclass(frozen=True)
class Point:
    label: str
    backend: str
    precision: str
    latency_ms: float
    map_pct: float


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """Points no other point beats on both axes (lower latency and higher mAP), by latency."""
    front = []
    for p in sorted(points, key=lambda q: (q.latency_ms, -q.map_pct)):
        if not front or p.map_pct > front[-1].map_pct:
            front.append(p)
    return front


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 x 10^k steps) covering [low, high]."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 ticks between low and high (positive)."""
    ticks = []
    for exponent in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1):
        for m in (1, 2, 5):
            v = m * 10.0**exponent
            if low <= v <= high:
                ticks.append(v)
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}".rstrip("0").rstrip(".")


class _Canvas:
    """Drawing helpers in final-image pixel units on a supersampled canvas."""

    def __init__(self, width: int, height: int):
        self.img = np.full((height * _S, width * _S, 3), 255, np.uint8)

    @staticmethod
    def _p(x: float, y: float) -> tuple[int, int]:
        return int(round(x * _S)), int(round(y * _S))

    def line(self, a: tuple[float, float], b: tuple[float, float], colour, width: float = 1.0) -> None:
        cv2.line(self.img, self._p(*a), self._p(*b), colour, max(1, int(round(width * _S))), cv2.LINE_AA)

    def dashed(self, points: list[tuple[float, float]], colour, width: float = 1.5, dash: float = 7.0) -> None:
        for a, b in zip(points, points[1:]):
            length = math.dist(a, b)
            steps = max(1, int(length // dash))
            for i in range(0, steps, 2):
                t0, t1 = i / steps, min(1.0, (i + 1) / steps)
                self.line((a[0] + (b[0] - a[0]) * t0, a[1] + (b[1] - a[1]) * t0),
                          (a[0] + (b[0] - a[0]) * t1, a[1] + (b[1] - a[1]) * t1), colour, width)

    def rect(self, a: tuple[float, float], b: tuple[float, float], colour, width: float = 1.0, fill: bool = False) -> None:
        cv2.rectangle(self.img, self._p(*a), self._p(*b), colour, -1 if fill else max(1, int(round(width * _S))), cv2.LINE_AA)

    @staticmethod
    def text_size(text: str, scale: float, thickness: float = 1.0) -> tuple[float, float]:
        (w, h), _ = cv2.getTextSize(text, _FONT, scale * _S, max(1, int(round(thickness * _S))))
        return w / _S, h / _S

    def text(self, text: str, org: tuple[float, float], scale: float, colour=_TEXT, thickness: float = 1.0) -> None:
        """``org`` is the bottom-left corner of the text (OpenCV's baseline origin)."""
        cv2.putText(self.img, text, self._p(*org), _FONT, scale * _S, colour, max(1, int(round(thickness * _S))), cv2.LINE_AA)

    def vertical_text(self, text: str, centre: tuple[float, float], scale: float, colour=_TEXT) -> None:
        w, h = self.text_size(text, scale)
        pad = 4
        patch = np.full((int((h + 2 * pad) * _S), int((w + 2 * pad) * _S), 3), 255, np.uint8)
        cv2.putText(patch, text, (pad * _S, int((h + pad) * _S)), _FONT, scale * _S, colour, _S, cv2.LINE_AA)
        patch = cv2.rotate(patch, cv2.ROTATE_90_COUNTERCLOCKWISE)
        x0 = int(centre[0] * _S - patch.shape[1] / 2)
        y0 = int(centre[1] * _S - patch.shape[0] / 2)
        region = self.img[y0 : y0 + patch.shape[0], x0 : x0 + patch.shape[1]]
        np.minimum(region, patch[: region.shape[0], : region.shape[1]], out=region)

    def marker(self, kind: str, centre: tuple[float, float], radius: float, colour) -> None:
        x, y = centre
        r = radius
        if kind == "circle":
            cv2.circle(self.img, self._p(x, y), int(r * _S), colour, -1, cv2.LINE_AA)
            cv2.circle(self.img, self._p(x, y), int(r * _S), (255, 255, 255), _S, cv2.LINE_AA)
            return
        if kind == "square":
            shape = [(x - r * 0.9, y - r * 0.9), (x + r * 0.9, y - r * 0.9), (x + r * 0.9, y + r * 0.9), (x - r * 0.9, y + r * 0.9)]
        elif kind == "diamond":
            shape = [(x, y - r * 1.2), (x + r * 1.2, y), (x, y + r * 1.2), (x - r * 1.2, y)]
        else:  # triangle
            shape = [(x, y - r * 1.2), (x + r * 1.1, y + r * 0.8), (x - r * 1.1, y + r * 0.8)]
        pts = np.array([self._p(*p) for p in shape], np.int32)
        cv2.fillPoly(self.img, [pts], colour, cv2.LINE_AA)
        cv2.polylines(self.img, [pts], True, (255, 255, 255), _S, cv2.LINE_AA)

    def finish(self, width: int, height: int) -> np.ndarray:
        return cv2.resize(self.img, (width, height), interpolation=cv2.INTER_AREA)


def _overlaps(box: tuple[float, float, float, float], boxes: list[tuple[float, float, float, float]]) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in boxes)


def render(points: Sequence[Point], title: str, subtitle: str = "", width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """The picture as a BGR uint8 array of (height, width, 3)."""
    c = _Canvas(width, height)
    left, right, top, bottom = 96, 300, 78, 78  # plot margins; the legend sits in the right one
    x0, x1, y0, y1 = left, width - right, top, height - bottom
    c.text(title, (left, 34), 0.78, thickness=1.3)
    if subtitle:
        c.text(subtitle, (left, 58), 0.5, (110, 110, 110))

    if not points:
        c.rect((x0, y0), (x1, y1), _AXIS)
        message = "no row has both an accuracy and a batch-1 latency"
        w, _ = c.text_size(message, 0.6)
        c.text(message, ((x0 + x1 - w) / 2, (y0 + y1) / 2), 0.6, (120, 120, 120))
        return c.finish(width, height)

    lat = [p.latency_ms for p in points]
    acc = [p.map_pct for p in points]
    log_x = max(lat) / max(min(lat), 1e-9) > 6
    if log_x:
        lo, hi = min(lat) / 1.35, max(lat) * 1.35
        lo_t, hi_t = math.log10(lo), math.log10(hi)
        x_ticks = log_ticks(lo, hi) or [min(lat), max(lat)]

        def px(v: float) -> float:
            return x0 + (math.log10(v) - lo_t) / (hi_t - lo_t) * (x1 - x0)
    else:
        span = max(max(lat) - min(lat), 0.1 * max(lat), 1e-3)
        x_ticks = nice_ticks(max(0.0, min(lat) - 0.2 * span), max(lat) + 0.2 * span)
        lo, hi = x_ticks[0], x_ticks[-1]

        def px(v: float) -> float:
            return x0 + (v - lo) / (hi - lo) * (x1 - x0)

    span = max(max(acc) - min(acc), 1.0)
    y_ticks = nice_ticks(max(0.0, min(acc) - 0.25 * span), min(100.0, max(acc) + 0.25 * span))
    if len(y_ticks) < 2:
        y_ticks = [y_ticks[0], y_ticks[0] + 1]
    y_lo, y_hi = y_ticks[0], y_ticks[-1]

    def py(v: float) -> float:
        return y1 - (v - y_lo) / (y_hi - y_lo) * (y1 - y0)

    # grid, ticks and labels
    for t in x_ticks:
        x = px(t)
        if x0 - 0.5 <= x <= x1 + 0.5:
            c.line((x, y0), (x, y1), _GRID)
            c.line((x, y1), (x, y1 + 5), _AXIS)
            label = _fmt(t)
            w, h = c.text_size(label, 0.45)
            c.text(label, (x - w / 2, y1 + 10 + h), 0.45)
    for t in y_ticks:
        y = py(t)
        c.line((x0, y), (x1, y), _GRID)
        c.line((x0 - 5, y), (x0, y), _AXIS)
        label = _fmt(t)
        w, h = c.text_size(label, 0.45)
        c.text(label, (x0 - 10 - w, y + h / 2), 0.45)
    c.rect((x0, y0), (x1, y1), _AXIS)
    x_label = "batch-1 latency, p50 per call, pre-processing included (ms" + (", log scale)" if log_x else ")")
    w, _ = c.text_size(x_label, 0.52)
    c.text(x_label, ((x0 + x1 - w) / 2, height - 24), 0.52)
    c.vertical_text("mAP (%)", (30, (y0 + y1) / 2), 0.55)

    # Pareto front, then points, then labels placed where they collide with nothing drawn so far
    front = pareto_front(points)
    if len(front) > 1:
        c.dashed([(px(p.latency_ms), py(p.map_pct)) for p in front], (150, 150, 150), 1.4)
    placed: list[tuple[float, float, float, float]] = []
    for p in points:
        x, y = px(p.latency_ms), py(p.map_pct)
        placed.append((x - 9, y - 9, x + 9, y + 9))
        c.marker(MARKERS.get(p.precision, "circle"), (x, y), 7, BACKEND_COLOURS.get(p.backend, _OTHER))
    for p in points:
        x, y = px(p.latency_ms), py(p.map_pct)
        w, h = c.text_size(p.label, 0.46)
        candidates = [(x + 12, y - 8), (x + 12, y + h + 6), (x - 12 - w, y - 8), (x - 12 - w, y + h + 6),
                      (x - w / 2, y - 14), (x - w / 2, y + h + 14), (x + 12, y - 24), (x - 12 - w, y - 24),
                      (x + 12, y + h + 22), (x - 12 - w, y + h + 22)]
        best = None
        for tx, ty in candidates:
            box = (tx - 2, ty - h - 3, tx + w + 2, ty + 4)
            inside = box[0] >= x0 + 2 and box[2] <= x1 - 2 and box[1] >= y0 + 2 and box[3] <= y1 - 2
            if inside and not _overlaps(box, placed):
                best = (tx, ty, box)
                break
        if best is None:  # everything collides: take the first candidate that stays inside
            for tx, ty in candidates:
                box = (tx - 2, ty - h - 3, tx + w + 2, ty + 4)
                if box[0] >= x0 and box[2] <= x1 and box[1] >= y0 and box[3] <= y1:
                    best = (tx, ty, box)
                    break
            best = best or (candidates[0][0], candidates[0][1], (0, 0, 0, 0))
        tx, ty, box = best
        placed.append(box)
        c.text(p.label, (tx, ty), 0.46)

    # legend: one entry per row
    lx, ly = x1 + 24, y0 + 4
    c.text("rows (mAP, ms)", (lx, ly + 12), 0.5, thickness=1.2)
    ly += 36
    for p in sorted(points, key=lambda q: q.latency_ms):
        c.marker(MARKERS.get(p.precision, "circle"), (lx + 8, ly - 5), 6, BACKEND_COLOURS.get(p.backend, _OTHER))
        c.text(p.label, (lx + 24, ly), 0.45)
        c.text(f"{p.map_pct:.1f} %, {p.latency_ms:.1f} ms", (lx + 24, ly + 18), 0.4, (110, 110, 110))
        ly += 42
        if ly > height - 60:
            break
    if len(front) > 1 and ly < height - 40:
        c.dashed([(lx, ly - 5), (lx + 18, ly - 5)], (150, 150, 150), 1.4, dash=4)
        c.text("Pareto front", (lx + 24, ly), 0.45)
    return c.finish(width, height)


def render_png(points: Sequence[Point], title: str, subtitle: str = "", width: int = WIDTH, height: int = HEIGHT) -> bytes:
    ok, data = cv2.imencode(".png", render(points, title, subtitle, width, height))
    if not ok:
        raise RuntimeError("OpenCV could not encode the picture as PNG")
    return data.tobytes()
