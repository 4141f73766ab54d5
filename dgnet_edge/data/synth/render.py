"""One picture of the synthetic world: an identity seen by a camera at one moment.

Everything that changes from picture to picture (crop of the scene, pose and facing, position and
scale, people and objects around, light and image quality) comes from one random generator seeded
by ``seed``, so the same arguments always give the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from dgnet_edge.data.synth.degrade import OBJECTS, degrade, draw_object, draw_passer_by, encode_jpeg
from dgnet_edge.data.synth.draw import blend_mask, ellipse
from dgnet_edge.data.synth.figure import draw_person, sample_pose
from dgnet_edge.data.synth.identity import Identity, sample_identity
from dgnet_edge.data.synth.scene import Camera, background, illuminate

Seed = Union[int, Sequence[int]]


@dataclass(frozen=True)
class SynthImage:
    """Rendered pixels (RGB uint8, H x W x 3) and the JPEG quality the camera stores them at."""

    pixels: np.ndarray
    jpeg_quality: int

    def to_jpeg(self) -> bytes:
        return encode_jpeg(self.pixels, self.jpeg_quality)


def _shadow(img: np.ndarray, x: float, feet_y: float, width: float) -> None:
    """The person's soft shadow on the ground under the feet."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    ellipse(mask, (x, feet_y), (width, width * 0.18), (255, 255, 255))
    blend_mask(img, (mask * 0.45).astype(np.uint8), (0, 0, 0), 0, 0)


def _finish(img: np.ndarray, camera: Camera, rng: np.random.Generator, extra_blur: float = 0.0) -> SynthImage:
    img = degrade(illuminate(img, camera, rng), camera, rng, extra_blur)
    low, high = camera.jpeg_quality
    return SynthImage(img, int(rng.integers(low, high + 1)))


def _surroundings(img: np.ndarray, rng: np.random.Generator, camera: Camera, scale: float) -> None:
    """Smaller people further down the street, behind the main figure."""
    h, w = img.shape[:2]
    if rng.random() < 0.25:
        far = scale * rng.uniform(0.45, 0.75)
        draw_passer_by(img, rng, camera, far, rng.uniform(-0.1, 1.1) * w, rng.uniform(0.55, 0.8) * h)


def _foreground(img: np.ndarray, rng: np.random.Generator, camera: Camera, scale: float, x: float, feet_y: float) -> None:
    """Sometimes someone or something passes between the camera and the person."""
    h, w = img.shape[:2]
    roll = rng.random()
    if roll < 0.1:
        side = 1.0 if rng.random() < 0.5 else -1.0
        near = scale * rng.uniform(0.98, 1.15)
        draw_passer_by(img, rng, camera, near, x + side * rng.uniform(0.45, 0.75) * w, feet_y + rng.uniform(0.0, 0.06) * h)
    elif roll < 0.2:
        draw_object(img, rng, OBJECTS[rng.integers(len(OBJECTS))])


def render_image(identity: Identity, camera: Camera, seed: Seed, height: int = 256, width: int = 128) -> SynthImage:
    """``identity`` seen by ``camera`` at the moment ``seed`` (an int or a sequence of ints)."""
    rng = np.random.default_rng(seed)
    img = background(camera, rng, height, width)
    scale = camera.person_scale * height * rng.uniform(0.95, 1.05)
    x = width * (0.5 + float(np.clip(rng.normal(0, 0.05), -0.12, 0.12)))
    feet_y = height * rng.uniform(0.935, 0.99)
    _surroundings(img, rng, camera, scale)
    _shadow(img, x, feet_y, 0.2 * scale)
    draw_person(img, identity, sample_pose(rng, camera.facing_weights), x, feet_y, scale)
    _foreground(img, rng, camera, scale, x, feet_y)
    return _finish(img, camera, rng)


def render_distractor(camera: Camera, seed: Seed, height: int = 256, width: int = 128) -> SynthImage:
    """A false detection (Market id 0000): the scene alone, or a close-up of part of a body."""
    rng = np.random.default_rng(seed)
    img = background(camera, rng, height, width)
    scale = camera.person_scale * height
    _surroundings(img, rng, camera, scale)
    if rng.random() < 0.6:
        zoom = scale * rng.uniform(1.8, 2.8)
        feet_y = height * rng.uniform(0.9, 0.95) + rng.choice([0.0, 1.0]) * zoom * rng.uniform(0.45, 0.6)
        draw_person(img, sample_identity(rng), sample_pose(rng, camera.facing_weights), width * rng.uniform(0.3, 0.7), feet_y, zoom)
    else:
        _foreground(img, rng, camera, scale, width / 2, height)
    return _finish(img, camera, rng)


def render_junk(camera: Camera, seed: Seed, height: int = 256, width: int = 128) -> SynthImage:
    """A detection too bad to use (Market id -1): a person far off-centre or cut, and badly blurred."""
    rng = np.random.default_rng(seed)
    img = background(camera, rng, height, width)
    scale = camera.person_scale * height * rng.uniform(0.9, 1.6)
    side = 1.0 if rng.random() < 0.5 else -1.0
    x = width * (0.5 + side * rng.uniform(0.35, 0.6))
    feet_y = height * rng.uniform(0.9, 1.25)
    draw_person(img, sample_identity(rng), sample_pose(rng, camera.facing_weights), x, feet_y, scale)
    return _finish(img, camera, rng, extra_blur=rng.uniform(2.0, 4.5) * height / 256.0)
