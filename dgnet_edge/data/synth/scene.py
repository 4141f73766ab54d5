"""The cameras of the synthetic world: each one a fixed street scene, lighting and image quality.

A camera's scene is drawn once (per process and image size) as a panorama of a street, building
fronts side by side, wider and taller than an image; every image of that camera crops it at a
random place (and maybe mirrored), as detections from one camera see different parts of the same
street. Illumination, white balance, contrast and saturation are fixed per camera with a small
variation per image, so the same clothes change colour from camera to camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from dgnet_edge.data.synth import draw
from dgnet_edge.data.synth.identity import CLOTH

CAMERA_STREAM = 2  # seed stream of camera parameters, see dgnet_edge.data.synth.world

WALLS = {
    "brick": (150, 72, 56),
    "dark brick": (108, 60, 52),
    "cream": (220, 208, 178),
    "concrete": (150, 150, 144),
    "sand": (200, 174, 130),
    "white": (226, 226, 220),
    "slate": (82, 84, 90),
    "pale blue": (168, 184, 200),
    "pale green": (168, 190, 158),
    "terracotta": (190, 112, 80),
}
GROUNDS = {
    "grey": (140, 140, 138),
    "light": (186, 181, 170),
    "asphalt": (76, 76, 80),
    "beige": (190, 170, 140),
    "pavers": (158, 102, 86),
}
SIGN_COLOURS = ("red", "blue", "green", "yellow", "orange", "teal", "purple", "navy", "white", "black")
FOLIAGE = ((52, 102, 44), (70, 122, 50), (38, 84, 40), (96, 130, 60))

# Which way people walk past a camera: mostly towards/away from it, across it, or any way.
_ORIENTATIONS = ((0.4, 0.4, 0.1, 0.1), (0.1, 0.1, 0.4, 0.4), (0.25, 0.25, 0.25, 0.25))


@dataclass(frozen=True)
class Camera:
    """One camera: its scene (drawn from ``scene_seed``), light, image quality and framing.

    ``blur`` is a Gaussian sigma in pixels at 256 rows (scaled with the image height); ``noise`` the
    sensor noise sigma on the 0-255 scale; ``resolution`` the fraction of the image size the camera
    really resolves; ``person_scale`` the height of a nominal person as a fraction of the image.
    ``facing_weights`` weigh front, back, left, right.
    """

    index: int
    scene_seed: int
    gain: float
    white_balance: tuple[float, float, float]
    contrast: float
    saturation: float
    blur: float
    noise: float
    resolution: float
    jpeg_quality: tuple[int, int]
    person_scale: float
    facing_weights: tuple[float, ...]


def make_camera(seed: int, index: int) -> Camera:
    """Camera ``index`` (0-based) of the world made with ``seed``."""
    rng = np.random.default_rng([seed, CAMERA_STREAM, index])
    # Orientations take turns over the cameras (from a per-world start), so every world mixes views.
    first = int(np.random.default_rng([seed, CAMERA_STREAM]).integers(len(_ORIENTATIONS)))
    wb = np.clip(np.exp(rng.normal(0.0, [0.06, 0.02, 0.06])), 0.88, 1.14)
    facing = np.asarray(_ORIENTATIONS[(first + index) % len(_ORIENTATIONS)]) * rng.uniform(0.6, 1.4, 4)
    low_q = int(rng.integers(55, 86))
    return Camera(
        index=index,
        scene_seed=int(rng.integers(2**31)),
        gain=float(rng.uniform(0.85, 1.12)),
        white_balance=(float(wb[0]), float(wb[1]), float(wb[2])),
        contrast=float(rng.uniform(0.85, 1.1)),
        saturation=float(rng.uniform(0.8, 1.1)),
        blur=float(rng.uniform(0.3, 0.9)),
        noise=float(rng.uniform(1.5, 6.0)),
        resolution=float(rng.uniform(0.5, 0.95)),
        jpeg_quality=(low_q, low_q + 12),
        person_scale=float(rng.uniform(0.83, 0.9)),
        facing_weights=tuple(float(v) for v in facing / facing.sum()),
    )


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int], amount: float = 12.0) -> draw.Colour:
    return tuple(float(np.clip(c + rng.normal(0, amount), 0, 255)) for c in colour)


def _facade(img: np.ndarray, rng: np.random.Generator, horizon: int, w: int, h: int) -> None:
    """One building front: wall, windows, doors, maybe a shop sign, down to the horizon row."""
    pw = img.shape[1]
    colour = _jitter(rng, list(WALLS.values())[rng.integers(len(WALLS))])
    img[:horizon] = colour
    kind = rng.choice(["brick", "plaster", "panels", "glass"], p=[0.3, 0.3, 0.2, 0.2])
    if kind == "brick":
        row = max(3.0, rng.uniform(0.02, 0.03) * h)
        mortar = draw.shade(colour, 0.78)
        for i, y in enumerate(np.arange(row, horizon, row)):
            draw.line(img, (0, y), (pw, y), mortar)
            for x in np.arange((i % 2) * row * 1.2, pw, row * 2.4):
                draw.line(img, (x, y - row), (x, y), mortar)
    elif kind == "panels":
        for x in np.arange(rng.uniform(0, w), pw, rng.uniform(0.3, 0.6) * w):
            draw.line(img, (x, 0), (x, horizon), draw.shade(colour, 0.7), 2)
        draw.line(img, (0, horizon * rng.uniform(0.3, 0.6)), (pw, horizon * 0.45), draw.shade(colour, 0.75), 2)
    elif kind == "glass":
        img[:horizon] = _jitter(rng, (70, 86, 104), 20)
        for x in np.arange(rng.uniform(0, w), pw, rng.uniform(0.25, 0.5) * w):
            draw.line(img, (x, 0), (x, horizon), (48, 50, 56), 3)
        for _ in range(6):
            x = rng.uniform(0, pw)
            draw.polygon(img, [(x, 0), (x + 0.2 * w, 0), (x - 0.2 * w, horizon), (x - 0.4 * w, horizon)], _jitter(rng, (120, 140, 160), 15))
    if kind != "glass":
        _windows(img, rng, horizon, w, h)
    for _ in range(rng.integers(0, 3)):
        x = rng.uniform(0, pw)
        dw, dh = rng.uniform(0.25, 0.4) * w, rng.uniform(0.28, 0.4) * h
        draw.polygon(img, [(x, horizon - dh), (x + dw, horizon - dh), (x + dw, horizon), (x, horizon)], _jitter(rng, (70, 56, 46), 25))
    if rng.random() < 0.6:
        y = horizon - rng.uniform(0.3, 0.5) * h
        x0 = rng.uniform(-w, pw)
        x1 = x0 + rng.uniform(0.8, 2.5) * w
        band = _jitter(rng, CLOTH[str(rng.choice(SIGN_COLOURS))], 8)
        draw.polygon(img, [(x0, y), (x1, y), (x1, y + 0.07 * h), (x0, y + 0.07 * h)], band)
        for x in np.arange(x0 + 0.1 * w, x1 - 0.2 * w, rng.uniform(0.15, 0.25) * w):
            draw.polygon(img, [(x, y + 0.02 * h), (x + 0.1 * w, y + 0.02 * h), (x + 0.1 * w, y + 0.05 * h), (x, y + 0.05 * h)], draw.shade(band, 1.8))


def _windows(img: np.ndarray, rng: np.random.Generator, horizon: int, w: int, h: int) -> None:
    pw = img.shape[1]
    ww, wh = rng.uniform(0.18, 0.34) * w, rng.uniform(0.12, 0.22) * h
    step_x, step_y = ww * rng.uniform(1.4, 2.3), wh * rng.uniform(1.5, 2.2)
    frame = _jitter(rng, [(236, 236, 230), (50, 50, 54), (110, 80, 56)][rng.integers(3)], 8)
    glass = [(40, 50, 70), (34, 34, 40), (118, 136, 158)][rng.integers(3)]
    for y in np.arange(rng.uniform(0.05, 0.2) * h, horizon - 0.35 * h - wh, step_y):
        for x in np.arange(rng.uniform(0, step_x), pw, step_x):
            draw.polygon(img, [(x - 2, y - 2), (x + ww + 2, y - 2), (x + ww + 2, y + wh + 2), (x - 2, y + wh + 2)], frame)
            pane = (230, 208, 150) if rng.random() < 0.12 else glass
            draw.polygon(img, [(x, y), (x + ww, y), (x + ww, y + wh), (x, y + wh)], _jitter(rng, pane, 10))
            draw.line(img, (x + ww / 2, y), (x + ww / 2, y + wh), frame)


def _pavement(img: np.ndarray, rng: np.random.Generator, horizon: int, w: int, h: int) -> None:
    """The pavement in front of one building, from the horizon row down."""
    ph, pw = img.shape[:2]
    colour = _jitter(rng, list(GROUNDS.values())[rng.integers(len(GROUNDS))])
    img[horizon:] = colour
    joint = draw.shade(colour, 0.82)
    depth = ph - horizon
    if rng.random() < 0.7:  # paving: rows closer together far away, joints converging on a vanishing point
        n = int(rng.integers(6, 12))
        for k in range(1, n):
            y = horizon + depth * (k / n) ** 1.6
            draw.line(img, (0, y), (pw, y), joint)
        vx, spacing = rng.uniform(0, pw), rng.uniform(0.25, 0.5) * w
        for x in np.arange(vx % spacing - 8 * pw, 9 * pw, spacing):
            draw.line(img, (vx + (x - vx) * 0.08, horizon), (x, ph), joint)
    if rng.random() < 0.35:
        draw.polygon(img, [(0, horizon), (pw, horizon), (pw, horizon + 0.04 * h), (0, horizon + 0.04 * h)], _jitter(rng, FOLIAGE[1], 15))


def _road(img: np.ndarray, rng: np.random.Generator, horizon: int, w: int, h: int) -> None:
    """Sometimes a kerb and the road below it, along the whole street."""
    ph, pw = img.shape[:2]
    if rng.random() < 0.5:
        return
    y = horizon + (ph - horizon) * rng.uniform(0.45, 0.8)
    draw.polygon(img, [(0, y), (pw, y), (pw, y + 0.018 * h), (0, y + 0.018 * h)], _jitter(rng, (196, 194, 188), 8))
    img[int(y + 0.018 * h) + 1 :] = _jitter(rng, GROUNDS["asphalt"], 6)
    if rng.random() < 0.6:
        line_y = (y + ph) / 2
        paint = (230, 230, 220) if rng.random() < 0.6 else (225, 190, 60)
        for x in np.arange(0, pw, 0.9 * w):
            draw.polygon(img, [(x, line_y), (x + 0.45 * w, line_y), (x + 0.45 * w, line_y + 3), (x, line_y + 3)], paint)


def _street_furniture(img: np.ndarray, rng: np.random.Generator, horizon: int, w: int, h: int) -> None:
    pw = img.shape[1]
    for _ in range(rng.integers(0, 4)):
        x, base = rng.uniform(0, pw), horizon + rng.uniform(0.02, 0.12) * h
        top = horizon - rng.uniform(0.25, 0.45) * h
        draw.limb(img, (x, base), (x, top), rng.uniform(0.04, 0.07) * w, rng.uniform(0.03, 0.05) * w, _jitter(rng, (92, 70, 50), 15))
        for _ in range(rng.integers(6, 11)):
            c = (x + rng.normal(0, 0.22 * w), top + rng.normal(0, 0.1 * h))
            draw.circle(img, c, rng.uniform(0.12, 0.24) * w, _jitter(rng, FOLIAGE[rng.integers(len(FOLIAGE))], 10))
    for _ in range(rng.integers(0, 3)):
        x = rng.uniform(0, pw)
        draw.limb(img, (x, horizon + 0.06 * h), (x, 0), 0.03 * w, 0.025 * w, _jitter(rng, (70, 72, 76), 10), round_ends=False)
    for _ in range(rng.integers(0, 4)):
        x, y = rng.uniform(0, pw), horizon + rng.uniform(0.0, 0.05) * h
        bw, bh = rng.uniform(0.1, 0.25) * w, rng.uniform(0.06, 0.14) * h
        draw.rounded_rect(img, x, y - bh, x + bw, y, 2, _jitter(rng, CLOTH[str(rng.choice(SIGN_COLOURS))], 20))


@lru_cache(maxsize=16)
def _panorama(scene_seed: int, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(scene_seed)
    ph, pw = round(height * 1.15), width * 12
    img = np.zeros((ph, pw, 3), np.uint8)
    horizon = int(ph * rng.uniform(0.4, 0.62))
    left = 0
    while left < pw:  # a street: building fronts and their pavements side by side
        right = min(pw, left + int(rng.uniform(2.0, 5.0) * width))
        segment = np.zeros((ph, right - left, 3), np.uint8)
        _facade(segment, rng, horizon, width, height)
        _pavement(segment, rng, horizon, width, height)
        img[:, left:right] = segment
        left = right
    _road(img, rng, horizon, width, height)
    _street_furniture(img, rng, horizon, width, height)
    light = cv2.resize(rng.uniform(0.85, 1.12, (4, 16)).astype(np.float32), (pw, ph), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.5:  # a cast shadow across part of the street
        shadow = np.zeros((ph, pw), np.uint8)
        x0, x1 = rng.uniform(0, pw, 2)
        draw.polygon(shadow, [(x0, 0), (x0 + pw * 0.3, 0), (x1 + pw * 0.3, ph), (x1, ph)], (255, 255, 255))
        light *= 1.0 - 0.35 * shadow.astype(np.float32) / 255.0
    texture = rng.normal(0.0, 4.0, (ph, pw, 1)).astype(np.float32)
    lit = img.astype(np.float32) * light[..., None]
    # Streets are duller than clothes, and the camera focuses on the people: mute the scene's
    # colours and contrast and soften it a little.
    grey = lit.mean(axis=2, keepdims=True)
    lit = grey.mean() + (grey - grey.mean()) * 0.6 + (lit - grey) * 0.35
    lit = cv2.GaussianBlur(lit, (0, 0), 0.8 * height / 256)
    out = np.clip(lit + texture, 0, 255).astype(np.uint8)
    out.flags.writeable = False
    return out


def background(camera: Camera, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A fresh (writable) crop of the camera's scene at a random place."""
    pano = _panorama(camera.scene_seed, height, width)
    y = int(rng.integers(0, pano.shape[0] - height + 1))
    x = int(rng.integers(0, pano.shape[1] - width + 1))
    crop = pano[y : y + height, x : x + width]
    return (crop[:, ::-1] if rng.random() < 0.5 else crop).copy()


def illuminate(img: np.ndarray, camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """The camera's exposure, white balance, contrast and saturation, varied a little per image."""
    x = img.astype(np.float32) * (1.0 / 255.0)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * (camera.saturation * rng.uniform(0.92, 1.08))
    x = (x - 0.5) * camera.contrast + 0.5
    gain = camera.gain * rng.uniform(0.92, 1.08) * np.asarray(camera.white_balance) * rng.uniform(0.97, 1.03, 3)
    ramp = 1.0 + rng.uniform(-0.15, 0.15) * np.linspace(-0.5, 0.5, img.shape[1], dtype=np.float32)
    x *= gain.astype(np.float32) * ramp[None, :, None]
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
