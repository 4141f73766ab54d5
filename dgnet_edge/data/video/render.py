"""Frames of one camera of the site: scene, people walking in depth order, street objects, camera response.

Each frame draws the camera's fixed crop of its scene, then everyone in view and the street
objects from far to near (so nearer things hide farther ones), with each person's shadow and
walking pose. A person's ground-truth box is the extent of the pixels their figure changed; its
visibility is the fraction of that box not covered by the image border, nearer people's boxes or
nearer objects, as MOTChallenge defines it for boxes.

The camera's light (``scene.illuminate``) is the crop world's, with the per-image variation drawn
once per camera: a fixed camera does not flicker. For the same reason its resolution and blur are
fixed per camera (the crop world's ``degrade`` draws them per picture) and only the sensor noise
changes from frame to frame. Blur is scaled to the size of a person here, not to the image height.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from dgnet_edge.data.synth import draw
from dgnet_edge.data.synth.figure import Pose, draw_person
from dgnet_edge.data.synth.scene import background, illuminate
from dgnet_edge.data.video.site import NOMINAL_HEIGHT_M, Occluder, Person, SitePlan, View, Visit

LIGHT_STREAM, NOISE_STREAM = 105, 106
_NOISE_BANK = 8  # sensor noise frames per camera, drawn once and picked at random per frame
_STEP_M = 0.72  # metres per step: a gait cycle (two steps) is 1.44 m


@dataclass(frozen=True)
class Figure:
    """One person in one frame: where, how big, in which pose."""

    gid: int
    person: Person
    x: float
    feet_y: float
    scale: float
    depth: float
    pose: Pose


@dataclass(frozen=True)
class FrameTruth:
    """Ground truth of one frame: global ids, boxes x, y, w, h (clipped to the image) and visibility."""

    ids: np.ndarray
    boxes: np.ndarray
    visibility: np.ndarray


def _facing(dx: float, dd: float, previous: str) -> str:
    if abs(dx) < 1e-6 and abs(dd) < 1e-6:
        return previous
    if abs(dx) > 0.7 * abs(dd):
        return "right" if dx > 0 else "left"
    return "front" if dd < 0 else "back"


def _pose_at(visit: Visit, person: Person, t: float) -> tuple[float, float, Pose]:
    """Ground position and walking pose of ``person`` at time ``t`` inside ``visit``."""
    times, xs, ds = np.asarray(visit.times), np.asarray(visit.xs), np.asarray(visit.depths)
    seg = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2))
    span = times[seg + 1] - times[seg]
    a = 0.0 if span <= 0 else (t - times[seg]) / span
    x, d = xs[seg] + a * (xs[seg + 1] - xs[seg]), ds[seg] + a * (ds[seg + 1] - ds[seg])
    steps = np.hypot(np.diff(xs), np.diff(ds))
    walked = float(steps[:seg].sum() + a * steps[seg])
    facing = "front"
    for k in range(seg + 1):
        facing = _facing(xs[k + 1] - xs[k], ds[k + 1] - ds[k], facing)
    moving = steps[seg] > 1e-6
    phase = math.pi * walked / _STEP_M + 0.37 * person.gid
    stride = person.stride if moving else 0.02
    return float(x), float(d), Pose(facing, phase, stride, stride * 0.7)


def figures_at(plan: SitePlan, camera: int, t: float) -> list[Figure]:
    """Everyone in view of ``camera`` at time ``t`` (seconds), in image coordinates."""
    view = plan.views[camera]
    found = []
    for person in plan.people:
        for visit in person.visits:
            if visit.camera == camera and visit.start <= t <= visit.end:
                x, d, pose = _pose_at(visit, person, t)
                col, row = view.project(x, d)
                found.append(Figure(person.gid, person, col, row, view.focal * NOMINAL_HEIGHT_M / d, d, pose))
    return found


def occluder_rect(view: View, item: Occluder) -> tuple[float, float, float, float]:
    """Image box x0, y0, x1, y1 of a street object."""
    col, row = view.project(item.x, item.depth)
    half, tall = view.focal * item.width / item.depth / 2, view.focal * item.height / item.depth
    return col - half, row - tall, col + half, row


def _draw_occluder(img: np.ndarray, view: View, item: Occluder) -> None:
    x0, y0, x1, y1 = occluder_rect(view, item)
    colour = tuple(float(c) for c in item.colour)
    w = x1 - x0
    if item.kind == "pillar":
        draw.rounded_rect(img, x0, y0, x1, y1, w * 0.15, colour)
        draw.line(img, (x0 + 0.25 * w, y0), (x0 + 0.25 * w, y1), draw.shade(colour, 1.3), max(1, round(w * 0.08)))
    elif item.kind == "planter":
        rim = y0 + 0.35 * (y1 - y0)
        draw.rounded_rect(img, x0, rim, x1, y1, 2, colour)
        draw.rounded_rect(img, x0 - 1, rim - 3, x1 + 1, rim + 3, 2, draw.shade(colour, 0.7))
        leaves = np.random.default_rng(round(item.x * 1000) % 2**31)
        for _ in range(14):  # a shrub filling the top of the box
            c = (x0 + w * leaves.uniform(0.1, 0.9), leaves.uniform(y0 + 0.1 * (rim - y0), rim))
            draw.circle(img, c, (rim - y0) * leaves.uniform(0.25, 0.45), (44 + 30 * leaves.random(), 96 + 30 * leaves.random(), 44))
    else:
        draw.rounded_rect(img, x0, y0, x1, y1, 3, draw.shade(colour, 0.6))
        draw.rounded_rect(img, x0 + 0.1 * w, y0 + 0.06 * (y1 - y0), x1 - 0.1 * w, y0 + 0.6 * (y1 - y0), 2, (226, 222, 210))
        draw.rounded_rect(img, x0 + 0.18 * w, y0 + 0.12 * (y1 - y0), x1 - 0.18 * w, y0 + 0.4 * (y1 - y0), 2, colour)


def _shadow(img: np.ndarray, x: float, feet_y: float, width: float) -> None:
    """A soft shadow on the ground under the feet (drawn in a patch around it: frames are large)."""
    x0, y0 = math.floor(x - width) - 1, math.floor(feet_y - 0.18 * width) - 1
    mask = np.zeros((math.ceil(0.36 * width) + 3, math.ceil(2 * width) + 3), np.uint8)
    draw.ellipse(mask, (x - x0, feet_y - y0), (width, width * 0.18), (255, 255, 255))
    draw.blend_mask(img, (mask * 0.45).astype(np.uint8), (0, 0, 0), x0, y0)


def _draw_figure(img: np.ndarray, fig: Figure) -> tuple[int, int, int, int] | None:
    """Draw ``fig`` and return the full (unclipped) box x0, y0, x1, y1 of the pixels it changed."""
    h, w = img.shape[:2]
    length = fig.scale * fig.person.identity.height
    rx0, rx1 = math.floor(fig.x - 0.5 * length), math.ceil(fig.x + 0.5 * length)
    ry0, ry1 = math.floor(fig.feet_y - 1.1 * length), math.ceil(fig.feet_y + 0.06 * length) + 2
    ix0, iy0, ix1, iy1 = max(0, rx0), max(0, ry0), min(w, rx1), min(h, ry1)
    if ix0 >= ix1 or iy0 >= iy1:
        return None
    canvas = np.zeros((ry1 - ry0, rx1 - rx0, 3), np.uint8)
    inside = (slice(iy0 - ry0, iy1 - ry0), slice(ix0 - rx0, ix1 - rx0))
    canvas[inside] = img[iy0:iy1, ix0:ix1]
    before = canvas.copy()
    draw_person(canvas, fig.person.identity, fig.pose, fig.x - rx0, fig.feet_y - ry0, fig.scale)
    img[iy0:iy1, ix0:ix1] = canvas[inside]
    changed = cv2.absdiff(canvas, before).max(axis=2) >= 12
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    if len(rows) == 0:
        return None
    return rx0 + int(cols[0]), ry0 + int(rows[0]), rx0 + int(cols[-1]) + 1, ry0 + int(rows[-1]) + 1


def _visibility(box: tuple[int, int, int, int], covers: list[tuple[float, float, float, float]], w: int, h: int) -> float:
    """Fraction of ``box`` inside the image and not under any of ``covers``."""
    x0, y0, x1, y1 = box
    free = np.zeros((y1 - y0, x1 - x0), bool)
    free[max(0, -y0) : h - y0, max(0, -x0) : w - x0] = True
    for cx0, cy0, cx1, cy1 in covers:
        a, b = int(round(cx0)) - x0, int(round(cx1)) - x0
        c, d = int(round(cy0)) - y0, int(round(cy1)) - y0
        if b > 0 and d > 0 and a < free.shape[1] and c < free.shape[0]:
            free[max(0, c) : d, max(0, a) : b] = False
    return float(free.mean())


class CameraRenderer:
    """Renders frames of one camera of ``plan``; frame ``n`` (1-based) always gives the same pixels."""

    def __init__(self, plan: SitePlan, camera: int):
        self.plan, self.camera = plan, camera
        self.view = plan.views[camera]
        spec = plan.spec
        cam = self.view.camera
        self.scene = background(cam, np.random.default_rng(self.view.scene_seed), spec.height, spec.width)
        self.light_seed = [spec.seed, LIGHT_STREAM, camera]
        noise_rng = np.random.default_rng([spec.seed, NOISE_STREAM, camera])
        self.noise = [
            np.round(noise_rng.standard_normal((spec.height, spec.width, 3), dtype=np.float32) * cam.noise).astype(np.int16)
            for _ in range(_NOISE_BANK)
        ]
        self.noise_rng_seed = [spec.seed, NOISE_STREAM, camera, 1]
        typical_person = 150.0 * spec.height / 480
        self.blur = cam.blur * typical_person / (cam.person_scale * 256)
        self.resolution = min(1.0, 0.5 + 0.5 * cam.resolution)
        self.jpeg_quality = int(round(np.mean(cam.jpeg_quality)))

    def render(self, frame: int) -> tuple[np.ndarray, FrameTruth]:
        """Frame ``frame`` (1-based) as BGR uint8 pixels, and its ground truth."""
        spec, view = self.plan.spec, self.view
        t = (frame - 1) / spec.fps
        img = self.scene.copy()
        figures = figures_at(self.plan, self.camera, t)
        items: list[tuple[float, int, object]] = [(f.depth, 0, f) for f in figures]
        items += [(o.depth, 1, o) for o in view.occluders]
        items.sort(key=lambda item: (-item[0], item[1], getattr(item[2], "gid", 0)))
        for fig in figures:  # shadows lie on the ground, under everyone
            _shadow(img, fig.x, fig.feet_y, 0.2 * fig.scale)
        drawn: list[tuple[Figure, tuple[int, int, int, int], list]] = []
        covers: list[tuple[float, float, float, float]] = []  # boxes drawn so far, far to near
        for _, kind, thing in items:
            if kind == 1:
                _draw_occluder(img, view, thing)
                rect = occluder_rect(view, thing)
            else:
                box = _draw_figure(img, thing)
                if box is None:
                    continue
                rect = box
                drawn.append((thing, box, len(covers)))
            covers.append(rect)
        ids, boxes, vis = [], [], []
        for fig, box, order in drawn:
            v = _visibility(box, covers[order + 1 :], spec.width, spec.height)
            x0, y0 = max(0, box[0]), max(0, box[1])
            x1, y1 = min(spec.width, box[2]), min(spec.height, box[3])
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            ids.append(fig.gid)
            boxes.append((x0, y0, x1 - x0, y1 - y0))
            vis.append(v)
        truth = FrameTruth(
            np.asarray(ids, np.int64), np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(vis, np.float32)
        )
        return self._camera_response(img, frame), truth

    def _camera_response(self, img: np.ndarray, frame: int) -> np.ndarray:
        img = illuminate(img, self.view.camera, np.random.default_rng(self.light_seed))
        h, w = img.shape[:2]
        if self.resolution < 0.97:
            small = cv2.resize(img, (round(w * self.resolution), round(h * self.resolution)), interpolation=cv2.INTER_AREA)
            img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.blur > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), self.blur)
        pick = np.random.default_rng([*self.noise_rng_seed, frame]).integers(_NOISE_BANK)
        noisy = np.clip(img.astype(np.int16) + self.noise[pick], 0, 255).astype(np.uint8)
        return cv2.cvtColor(noisy, cv2.COLOR_RGB2BGR)

    def encode(self, bgr: np.ndarray) -> bytes:
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return data.tobytes()
