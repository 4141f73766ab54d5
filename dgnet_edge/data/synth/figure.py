"""Drawing a pedestrian: body, garments and their patterns, hair and bag, in a walking pose.

The figure is laid out in body units: x across (in a side view, x points the way the person faces)
and h up from the soles, both as fractions of the person's height. What shows depends on the facing:
a logo only from the front, a backpack mostly from behind (straps from the front), long hair over
the back from behind, the far arm and leg behind the body in a side view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dgnet_edge.data.synth import draw
from dgnet_edge.data.synth.draw import Colour, Point
from dgnet_edge.data.synth.identity import BUILD_WIDTH, CLOTH, HAIR, SKIN, Identity

FACINGS = ("front", "back", "left", "right")

_EYE = (40.0, 30.0, 30.0)
_FAR = 0.78  # brightness of the limbs on the far side of the body

# Heights above the soles, as fractions of the person's height.
_HIP, _KNEE, _ANKLE = 0.50, 0.275, 0.045
_SHOULDER, _NECK, _HEAD = 0.80, 0.848, 0.935
_HEM, _WAIST = 0.49, 0.545
_THIGH, _SHIN = _HIP - _KNEE, _KNEE - _ANKLE
_UPPER_ARM, _FOREARM = 0.165, 0.15


@dataclass(frozen=True)
class Pose:
    """One moment of walking: the facing, the phase of the gait cycle and how wide the steps are."""

    facing: str
    phase: float
    stride: float
    arm_swing: float


def sample_pose(rng: np.random.Generator, facing_weights: tuple[float, ...] = (1, 1, 1, 1)) -> Pose:
    p = np.asarray(facing_weights, dtype=float)
    stride = float(rng.uniform(0.18, 0.42))
    return Pose(
        facing=FACINGS[rng.choice(4, p=p / p.sum())],
        phase=float(rng.uniform(0, 2 * math.pi)),
        stride=stride,
        arm_swing=stride * float(rng.uniform(0.5, 0.9)),
    )


@dataclass
class _Limb:
    """An arm or a leg: root joint, middle joint, end joint (body units), and which side it is on."""

    side: str  # the person's own "left" or "right"
    far: bool
    root: Point
    mid: Point
    end: Point
    lift: float = 0.0  # legs: how far the foot is off the ground


def _along(p: Point, length: float, angle: float) -> Point:
    """The point ``length`` away from ``p`` at ``angle`` from straight down (positive = towards +x)."""
    return p[0] + length * math.sin(angle), p[1] - length * math.cos(angle)


class _Painter:
    """Maps body units to pixels and holds what every part needs."""

    def __init__(self, img: np.ndarray, identity: Identity, pose: Pose, x: float, feet_y: float, length: float):
        self.img = img
        self.id = identity
        self.pose = pose
        self.x, self.feet_y, self.length = x, feet_y, length
        self.mirror = -1.0 if pose.facing == "left" else 1.0
        self.side_view = pose.facing in ("left", "right")
        self.b = BUILD_WIDTH[identity.build]
        self.skin = SKIN[identity.skin]
        self.hair = HAIR[identity.hair_colour]
        self.upper = CLOTH[identity.upper_colour]
        self.second = CLOTH[identity.upper_second]
        self.lower = CLOTH[identity.lower_colour]
        self.shoe = CLOTH[identity.shoe_colour]
        self.bag = CLOTH[identity.bag_colour]
        self.bob = 0.0

    # -- coordinates -------------------------------------------------------------------------
    def p(self, x: float, h: float) -> Point:
        return self.x + x * self.length * self.mirror, self.feet_y - (h - self.bob) * self.length

    def pts(self, points: list[Point]) -> list[Point]:
        return [self.p(x, h) for x, h in points]

    def u(self, v: float) -> float:
        return v * self.length

    def side_sign(self, side: str) -> float:
        """x sign of a body side in a front or back view."""
        right = -1.0 if self.pose.facing == "front" else 1.0
        return right if side == "right" else -right

    def near_side(self) -> str:
        return "right" if self.pose.facing == "right" else "left"

    # -- primitives in body units ---------------------------------------------------------------
    def limb(self, a: Point, b: Point, wa: float, wb: float, colour: Colour) -> None:
        draw.limb(self.img, self.p(*a), self.p(*b), self.u(wa), self.u(wb), colour)

    def poly(self, points: list[Point], colour: Colour, edge: float | None = None) -> None:
        pts = self.pts(points)
        draw.polygon(self.img, pts, colour)
        if edge is not None:
            draw.outline(self.img, pts, draw.shade(colour, edge))

    def ellipse(self, c: Point, ax: float, ay: float, colour: Colour, start: float = 0, end: float = 360) -> None:
        draw.ellipse(self.img, self.p(*c), (self.u(ax), self.u(ay)), colour, 0.0, start, end)

    def circle(self, c: Point, r: float, colour: Colour) -> None:
        draw.circle(self.img, self.p(*c), self.u(r), colour)

    def box(self, x0: float, h0: float, x1: float, h1: float, r: float, colour: Colour) -> None:
        (ax, ay), (bx, by) = self.p(x0, h1), self.p(x1, h0)
        draw.rounded_rect(self.img, min(ax, bx), ay, max(ax, bx), by, self.u(r), colour)


# -- skeleton ------------------------------------------------------------------------------------
def _legs(f: _Painter) -> list[_Limb]:
    pose, legs = f.pose, []
    for side, offset in (("right", 0.0), ("left", math.pi)):
        phase = pose.phase + offset
        if f.side_view:
            thigh = pose.stride * math.sin(phase)
            bend = 1.3 * pose.stride * max(0.0, math.cos(phase))
            hip = (0.0, _HIP)
            knee = _along(hip, _THIGH, thigh)
            ankle = _along(knee, _SHIN, thigh - bend)
            far = side != f.near_side()
            legs.append(_Limb(side, far, hip, knee, ankle, ankle[1] - _ANKLE))
        else:
            lift = pose.stride * max(0.0, math.sin(phase))
            x = f.side_sign(side) * 0.048 * f.b
            hip, knee, ankle = (x, _HIP), (x * 1.04, _KNEE + 0.06 * lift), (x * 1.1, _ANKLE + 0.16 * lift)
            legs.append(_Limb(side, False, hip, knee, ankle, 0.16 * lift))
    return legs


def _arms(f: _Painter) -> list[_Limb]:
    pose, arms = f.pose, []
    for side, offset in (("right", 0.0), ("left", math.pi)):
        phase = pose.phase + offset
        if f.side_view:
            swing = -pose.arm_swing * math.sin(phase)
            flex = 0.15 + 0.4 * max(0.0, math.sin(-phase))
            shoulder = (0.0, _SHOULDER)
            elbow = _along(shoulder, _UPPER_ARM, swing)
            wrist = _along(elbow, _FOREARM, swing + flex)
            arms.append(_Limb(side, side != f.near_side(), shoulder, elbow, wrist))
        else:
            s = f.side_sign(side)
            sx = s * (0.108 * f.b - 0.024)
            fore = _FOREARM * (1.0 - 0.35 * abs(math.sin(phase)) * pose.arm_swing)
            elbow = (sx + s * 0.028, _SHOULDER - _UPPER_ARM)
            wrist = (elbow[0] + s * 0.012, elbow[1] - fore)
            arms.append(_Limb(side, False, (sx, _SHOULDER), elbow, wrist))
    return arms


# -- parts ---------------------------------------------------------------------------------------
def _leg(f: _Painter, leg: _Limb) -> None:
    k = _FAR if leg.far else 1.0
    kind = f.id.lower_kind
    thigh_w, calf_w = 0.074 * f.b, 0.056 * f.b**0.8
    skin_or_cloth = draw.shade(f.lower if kind == "trousers" else f.skin, k)
    f.limb(leg.root, leg.mid, thigh_w, calf_w, skin_or_cloth)
    f.limb(leg.mid, leg.end, calf_w, 0.042, skin_or_cloth)
    shoe = draw.shade(f.shoe, k)
    ax, ah = leg.end
    if f.side_view:
        f.limb((ax - 0.02, ah - 0.03), (ax + 0.055, ah - 0.033), 0.04, 0.032, shoe)
    else:
        f.ellipse((ax, ah - 0.022), 0.03, 0.024, shoe)
    if kind == "shorts":
        rx, rh = leg.root
        mx, mh = leg.mid
        f.limb(leg.root, (rx + 0.5 * (mx - rx), rh + 0.5 * (mh - rh)), thigh_w * 1.18, thigh_w * 1.12, draw.shade(f.lower, k))


def _hips(f: _Painter) -> None:
    b = f.b
    if f.id.lower_kind == "skirt":
        sway = 0.012 * math.sin(f.pose.phase) * (1.0 if f.side_view else 0.3)
        if f.side_view:
            pts = [(-0.06 * b, _WAIST), (0.064 * b, _WAIST), (0.104 * b + sway, 0.3), (-0.1 * b + sway, 0.3)]
        else:
            pts = [(-0.09 * b, _WAIST), (0.09 * b, _WAIST), (0.16 * b + sway, 0.3), (-0.16 * b + sway, 0.3)]
        f.poly(pts, f.lower, edge=0.6)
        return
    if f.side_view:
        pts = [(-0.06 * b, _WAIST), (0.064 * b, _WAIST), (0.066 * b, 0.45), (-0.064 * b, 0.44)]
    else:
        pts = [(-0.092 * b, _WAIST), (0.092 * b, _WAIST), (0.096 * b, 0.455), (-0.096 * b, 0.455)]
    f.poly(pts, f.lower)


def _torso_outline(f: _Painter) -> list[Point]:
    b = f.b
    if f.side_view:
        return [
            (-0.02, _NECK), (0.025, _NECK), (0.066 * b, 0.8), (0.07 * b, 0.7), (0.06 * b, 0.6),
            (0.062 * b, _HEM), (-0.062 * b, _HEM), (-0.056 * b, 0.6), (-0.062 * b, 0.72), (-0.054 * b, 0.81),
        ]
    sw, ww, hw = 0.108 * b, 0.086 * b, 0.094 * b
    return [
        (-0.035, _NECK), (0.035, _NECK), (sw, 0.822), (sw + 0.004, 0.77), (ww, 0.62), (hw, _HEM),
        (-hw, _HEM), (-ww, 0.62), (-sw - 0.004, 0.77), (-sw, 0.822),
    ]


def _stripe_coverage(t: np.ndarray, period: float, duty: float) -> np.ndarray:
    """Anti-aliased coverage (0..1) of a square wave of ``period`` pixels at pixel positions ``t``."""
    u = (t / period - duty / 2 + 0.5) % 1.0 - 0.5
    return np.clip(period * (duty / 2 - np.abs(u)) + 0.5, 0.0, 1.0)


def _torso(f: _Painter) -> None:
    pts = f.pts(_torso_outline(f))
    draw.polygon(f.img, pts, f.upper)
    pattern = f.id.upper_pattern
    if pattern in ("stripes", "check", "two-tone"):
        mask, x0, y0 = draw.polygon_mask(pts)
        top = f.p(0.0, _NECK)[1]
        ys = (np.arange(mask.shape[0], dtype=np.float32) + y0 + 0.5 - top)[:, None]
        if pattern == "stripes":
            cover = _stripe_coverage(ys, f.u(0.05), 0.5)
        elif pattern == "check":
            xs = (np.arange(mask.shape[1], dtype=np.float32) + x0 + 0.5 - f.x)[None, :]
            period = f.u(0.062)
            cover = np.maximum(_stripe_coverage(ys, period, 0.34), _stripe_coverage(xs, period, 0.34))
        else:
            cover = np.clip(f.u(_NECK - 0.68) - ys + 0.5, 0.0, 1.0)
        draw.blend_mask(f.img, (mask * cover).astype(np.uint8), f.second, x0, y0)
    if pattern == "logo" and f.pose.facing != "back":
        if f.side_view:
            f.ellipse((0.044 * f.b, 0.7), 0.018, 0.042, f.second)
        else:
            f.circle((0.0, 0.7), 0.044, f.second)
            f.circle((0.0, 0.7), 0.02, f.upper)
    draw.outline(f.img, pts, draw.shade(f.upper, 0.6))
    if f.pose.facing == "front":
        f.ellipse((0.0, _NECK + 0.002), 0.03, 0.026, f.skin, 0, 180)


def _arm(f: _Painter, arm: _Limb) -> None:
    k = _FAR if arm.far else 1.0
    sleeve = draw.shade(f.second if f.id.upper_pattern == "two-tone" else f.upper, k)
    skin = draw.shade(f.skin, k)
    upper_w, fore_w = 0.052 * f.b**0.7, 0.044 * f.b**0.7
    ex, eh = arm.mid
    wx, wh = arm.end
    hand = (wx + 0.15 * (wx - ex), wh + 0.15 * (wh - eh))
    if f.id.sleeves == "long":
        f.limb(arm.root, arm.mid, upper_w, fore_w, sleeve)
        f.limb(arm.mid, arm.end, fore_w, 0.04, sleeve)
    else:
        f.limb(arm.root, arm.mid, upper_w * 0.85, fore_w, skin)
        f.limb(arm.mid, arm.end, fore_w, 0.036, skin)
        rx, rh = arm.root
        f.limb(arm.root, (rx + 0.5 * (ex - rx), rh + 0.5 * (eh - rh)), upper_w * 1.15, upper_w * 1.1, sleeve)
    f.circle(hand, 0.024, skin)
    if f.id.bag == "handbag" and arm.side == f.id.bag_side:
        _handbag(f, hand, k)


def _handbag(f: _Painter, hand: Point, k: float) -> None:
    colour = draw.shade(f.bag, k)
    hx, hh = hand
    top, bottom = hh - 0.035, hh - 0.11
    f.limb((hx - 0.022, top), hand, 0.008, 0.008, draw.shade(colour, 0.7))
    f.limb((hx + 0.022, top), hand, 0.008, 0.008, draw.shade(colour, 0.7))
    f.poly([(hx - 0.034, top), (hx + 0.034, top), (hx + 0.043, bottom), (hx - 0.043, bottom)], colour, edge=0.6)
    f.circle(hand, 0.022, draw.shade(f.skin, k))


def _head(f: _Painter) -> None:
    facing = f.pose.facing
    hx = 0.006 if f.side_view else 0.0
    f.limb((0.0, 0.83), (hx, 0.885), 0.045, 0.042, draw.shade(f.skin, 0.9))
    f.ellipse((hx, _HEAD), 0.055 if f.side_view else 0.05, 0.064, f.skin)
    if facing == "front":
        for s in (-1, 1):
            f.circle((s * 0.018, 0.927), 0.0055, _EYE)
        f.limb((-0.01, 0.895), (0.01, 0.895), 0.004, 0.004, draw.shade(f.skin, 0.7))
    elif f.side_view:
        f.circle((0.058, 0.922), 0.012, f.skin)
        f.circle((0.04, 0.93), 0.0055, _EYE)


def _hair_behind(f: _Painter) -> None:
    """Long hair falling behind the shoulders (front view) or down the back (side view)."""
    if f.id.hair_style != "long":
        return
    if f.pose.facing == "front":
        f.box(-0.064, 0.78, 0.064, 0.97, 0.03, f.hair)
    elif f.side_view:
        f.limb((-0.03, 0.92), (-0.045, 0.77), 0.06, 0.045, f.hair)


def _hair(f: _Painter) -> None:
    style, facing, hair = f.id.hair_style, f.pose.facing, f.hair
    if style == "bald":
        return
    if facing == "front":
        f.ellipse((0.0, 0.95), 0.055, 0.056, hair, 180, 360)
        f.ellipse((0.0, 0.95), 0.055, 0.012, hair)
        if style == "long":
            for s in (-1, 1):
                f.limb((s * 0.048, 0.95), (s * 0.054, 0.84), 0.024, 0.02, hair)
        elif style == "bun":
            f.circle((0.0, 1.005), 0.027, hair)
    elif facing == "back":
        f.ellipse((0.0, 0.945), 0.054, 0.062, hair)
        if style == "long":
            f.box(-0.062, 0.73, 0.062, 0.94, 0.03, hair)
        elif style == "ponytail":
            f.limb((0.0, 0.92), (0.0, 0.79), 0.03, 0.018, draw.shade(hair, 0.85))
        elif style == "bun":
            f.circle((0.0, 0.96), 0.029, draw.shade(hair, 0.8))
    else:
        f.ellipse((-0.016, 0.952), 0.05, 0.052, hair)
        f.ellipse((0.008, 0.985), 0.046, 0.018, hair)
        if style == "ponytail":
            f.limb((-0.05, 0.95), (-0.08, 0.85), 0.028, 0.016, hair)
        elif style == "bun":
            f.circle((-0.055, 0.975), 0.026, hair)


def _backpack(f: _Painter) -> None:
    b, colour = f.b, f.bag
    if f.pose.facing == "back":
        f.box(-0.08 * b, 0.575, 0.08 * b, 0.8, 0.025, colour)
        f.box(-0.055 * b, 0.59, 0.055 * b, 0.66, 0.015, draw.shade(colour, 0.75))
        for s in (-1, 1):
            f.limb((s * 0.055 * b, 0.8), (s * 0.06 * b, 0.835), 0.02, 0.02, draw.shade(colour, 0.85))
    elif f.pose.facing == "front":
        for s in (-1, 1):
            f.limb((s * 0.058 * b, 0.838), (s * 0.07 * b, 0.61), 0.022, 0.022, draw.shade(colour, 0.9))
    else:
        back = -0.06 * b
        f.box(back - 0.078, 0.575, back + 0.01, 0.8, 0.022, colour)


def _backpack_strap(f: _Painter) -> None:
    """The front strap of a backpack, seen over the chest in a side view."""
    f.limb((0.012, 0.835), (0.05 * f.b, 0.62), 0.018, 0.018, draw.shade(f.bag, 0.9))


def _shoulder_bag(f: _Painter, in_front: bool) -> None:
    """A cross-body bag: strap over one shoulder, bag on the other hip (``bag_side``)."""
    b = f.b
    if f.side_view:
        near = f.id.bag_side == f.near_side()
        if in_front:
            f.limb((-0.04 * b, 0.83), (0.045 * b, 0.54), 0.014, 0.014, draw.shade(f.bag, 0.8))
            if near:
                f.box(-0.045, 0.455, 0.045, 0.545, 0.012, f.bag)
        elif not near:
            f.box(-0.085 * b, 0.46, 0.0, 0.55, 0.012, draw.shade(f.bag, _FAR))
        return
    if not in_front:
        return
    s = f.side_sign(f.id.bag_side)
    cx = s * (0.096 * b + 0.025)
    f.limb((-s * 0.07 * b, 0.835), (cx - s * 0.02, 0.545), 0.014, 0.014, draw.shade(f.bag, 0.8))
    f.box(cx - 0.043, 0.455, cx + 0.043, 0.545, 0.012, f.bag)


def draw_person(img: np.ndarray, identity: Identity, pose: Pose, x: float, feet_y: float, scale: float) -> None:
    """Draw ``identity`` in ``pose`` onto ``img`` (RGB uint8, in place).

    ``x`` is the image column of the body's centre line, ``feet_y`` the row of the soles and
    ``scale`` the height in pixels of a person of nominal height (the identity's ``height`` scales it).
    """
    f = _Painter(img, identity, pose, x, feet_y, scale * identity.height)
    legs, arms = _legs(f), _arms(f)
    f.bob = min(leg.lift for leg in legs) if f.side_view else 0.0
    bag = identity.bag
    if f.side_view:
        for arm in arms:
            if arm.far:
                _arm(f, arm)
        for leg in legs:
            if leg.far:
                _leg(f, leg)
        if bag == "backpack":
            _backpack(f)
        elif bag == "shoulder bag":
            _shoulder_bag(f, in_front=False)
        for leg in legs:
            if not leg.far:
                _leg(f, leg)
        _hips(f)
        _torso(f)
        _hair_behind(f)
        _head(f)
        _hair(f)
        if bag == "backpack":
            _backpack_strap(f)
        elif bag == "shoulder bag":
            _shoulder_bag(f, in_front=True)
        for arm in arms:
            if not arm.far:
                _arm(f, arm)
        return
    _hair_behind(f)
    for leg in legs:
        _leg(f, leg)
    _hips(f)
    _torso(f)
    if pose.facing == "front":
        if bag == "backpack":
            _backpack(f)
        elif bag == "shoulder bag":
            _shoulder_bag(f, in_front=True)
        for arm in arms:
            _arm(f, arm)
        _head(f)
        _hair(f)
        return
    for arm in arms:
        _arm(f, arm)
    _head(f)
    if bag == "backpack":
        _backpack(f)
    _hair(f)
    if bag == "shoulder bag":
        _shoulder_bag(f, in_front=True)
