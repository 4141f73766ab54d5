"""What a street camera and a detector do to a picture: occlusion, low resolution, blur, noise, JPEG."""

from __future__ import annotations

import cv2
import numpy as np

from dgnet_edge.data.synth import draw
from dgnet_edge.data.synth.figure import draw_person, sample_pose
from dgnet_edge.data.synth.identity import sample_identity
from dgnet_edge.data.synth.scene import Camera

OBJECTS = ("post", "bin", "railing", "car")
_OBJECT_COLOURS = ((40, 40, 44), (90, 92, 96), (150, 152, 156), (200, 170, 40), (40, 80, 50), (170, 30, 30), (220, 220, 216))


def draw_passer_by(img: np.ndarray, rng: np.random.Generator, camera: Camera, scale: float, x: float, feet_y: float) -> None:
    """Another (random) pedestrian at ``x``; drawn after the main figure, it occludes part of it."""
    draw_person(img, sample_identity(rng), sample_pose(rng, camera.facing_weights), x, feet_y, scale)


def draw_object(img: np.ndarray, rng: np.random.Generator, kind: str) -> None:
    """A piece of street furniture or a car in the foreground, covering part of the image."""
    h, w = img.shape[:2]
    colour = tuple(float(c) for c in _OBJECT_COLOURS[rng.integers(len(_OBJECT_COLOURS))])
    dark = draw.shade(colour, 0.6)
    if kind == "post":
        x, pw = rng.uniform(0.05, 0.95) * w, rng.uniform(0.08, 0.16) * w
        top = rng.uniform(0.0, 0.7) * h
        draw.rounded_rect(img, x - pw / 2, top, x + pw / 2, h + 5, pw / 3, colour)
        draw.line(img, (x - pw / 4, top + 4), (x - pw / 4, h), draw.shade(colour, 1.3))
    elif kind == "bin":
        left = rng.random() < 0.5
        bw, bh = rng.uniform(0.3, 0.5) * w, rng.uniform(0.2, 0.35) * h
        x0 = -0.1 * w if left else w * 1.1 - bw
        draw.rounded_rect(img, x0, h - bh, x0 + bw, h + 5, 4, colour)
        draw.rounded_rect(img, x0 - 3, h - bh - 5, x0 + bw + 3, h - bh + 3, 2, dark)
    elif kind == "railing":
        y = rng.uniform(0.55, 0.8) * h
        for dy in (0.0, 0.09 * h):
            draw.line(img, (0, y + dy), (w, y + dy + rng.normal(0, 2)), colour, 3)
        for x in np.arange(rng.uniform(0, 0.5 * w), w, rng.uniform(0.45, 0.8) * w):
            draw.line(img, (x, y), (x, h), colour, 3)
    else:
        top = rng.uniform(0.68, 0.82) * h
        x0 = rng.uniform(-0.6, 0.2) * w
        body = [(x0, h), (x0, top + 0.05 * h), (x0 + 0.2 * w, top), (x0 + 1.6 * w, top), (x0 + 1.6 * w, h)]
        draw.polygon(img, body, colour)
        draw.line(img, (x0, top + 0.07 * h), (x0 + 1.6 * w, top + 0.07 * h), draw.shade(colour, 1.4), 2)
        draw.circle(img, (x0 + 0.1 * w, top + 0.1 * h), 0.05 * w, (236, 232, 200))


def degrade(img: np.ndarray, camera: Camera, rng: np.random.Generator, extra_blur: float = 0.0) -> np.ndarray:
    """Low resolution, lens/motion blur and sensor noise of ``camera`` (plus ``extra_blur`` sigma)."""
    h, w = img.shape[:2]
    factor = camera.resolution * rng.uniform(0.85, 1.15)
    if factor < 0.95:
        small = cv2.resize(img, (max(8, round(w * factor)), max(8, round(h * factor))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    sigma = camera.blur * (h / 256.0) * rng.uniform(0.7, 1.4) + extra_blur
    if rng.random() < 0.1:  # motion blur: someone walking fast across the view
        k = max(3, int(rng.uniform(0.03, 0.07) * w) | 1)
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1.0 / k
        img = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    noise = rng.standard_normal(img.shape, dtype=np.float32) * (camera.noise * rng.uniform(0.7, 1.3))
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()
