"""Who a synthetic pedestrian is: the attributes that stay the same in every camera and moment.

Colours come from small shared palettes weighted towards the dark and neutral clothes seen in the
street, and the upper and lower garments draw from overlapping palettes, so many identities share
their colours (or wear the same two colours swapped): what tells two people apart is which garment
has which colour, the patterns, hair, bag and body shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

RGB = Tuple[int, int, int]

CLOTH: dict[str, RGB] = {
    "black": (28, 28, 32),
    "charcoal": (62, 62, 68),
    "grey": (128, 128, 132),
    "light grey": (190, 190, 192),
    "white": (236, 236, 230),
    "navy": (30, 40, 92),
    "blue": (44, 92, 180),
    "denim": (72, 100, 140),
    "sky": (132, 176, 220),
    "red": (180, 32, 36),
    "burgundy": (112, 26, 42),
    "pink": (228, 142, 172),
    "orange": (228, 122, 34),
    "yellow": (230, 200, 56),
    "green": (42, 122, 62),
    "olive": (104, 110, 52),
    "teal": (32, 130, 132),
    "beige": (202, 182, 142),
    "brown": (112, 76, 46),
    "purple": (102, 62, 142),
}

SKIN: dict[str, RGB] = {
    "porcelain": (246, 218, 196),
    "light": (232, 192, 162),
    "medium": (206, 160, 122),
    "tan": (172, 122, 86),
    "brown": (132, 90, 60),
    "dark": (94, 64, 46),
}

HAIR: dict[str, RGB] = {
    "black": (24, 22, 22),
    "dark brown": (60, 40, 28),
    "brown": (112, 76, 46),
    "blonde": (212, 180, 118),
    "grey": (164, 162, 160),
    "auburn": (142, 62, 32),
}

# Sampling weights: street clothes are mostly dark and neutral.
UPPER_WEIGHTS = {
    "black": 3, "charcoal": 2, "grey": 2, "light grey": 2, "white": 3, "navy": 2, "blue": 2, "denim": 1,
    "sky": 1, "red": 2, "burgundy": 1, "pink": 1, "orange": 1, "yellow": 1, "green": 1, "olive": 1,
    "teal": 1, "beige": 2, "brown": 1, "purple": 1,
}
LOWER_WEIGHTS = {
    "black": 4, "charcoal": 2, "grey": 2, "light grey": 1, "white": 1, "navy": 2, "blue": 2, "denim": 4,
    "beige": 3, "brown": 2, "olive": 1, "red": 1, "burgundy": 1,
}
SHOE_WEIGHTS = {"black": 6, "white": 4, "grey": 2, "brown": 3, "navy": 1, "red": 1, "beige": 1}
BAG_WEIGHTS = {
    "black": 6, "charcoal": 2, "grey": 2, "navy": 2, "brown": 3, "beige": 2, "red": 1, "blue": 1,
    "green": 1, "olive": 1, "pink": 1, "yellow": 1, "orange": 1,
}
HAIR_WEIGHTS = {"black": 6, "dark brown": 4, "brown": 3, "blonde": 2, "grey": 1, "auburn": 1}

BUILDS = ("slim", "average", "heavy")
BUILD_WIDTH = {"slim": 1.06, "average": 1.2, "heavy": 1.4}  # body width multiplier
HAIR_STYLES = ("short", "long", "ponytail", "bun", "bald")
PATTERNS = ("plain", "stripes", "check", "logo", "two-tone")
SLEEVES = ("long", "short")
LOWER_KINDS = ("trousers", "shorts", "skirt")
BAGS = ("none", "backpack", "handbag", "shoulder bag")
SIDES = ("left", "right")


@dataclass(frozen=True)
class Identity:
    """The fixed look of one person. Colours are names in :data:`CLOTH`, :data:`SKIN`, :data:`HAIR`.

    ``height`` scales the figure (about 0.9-1.06); ``upper_second`` is the colour of the stripes,
    check, logo or second tone of the upper garment; ``bag_side`` is the body side (the person's own
    left or right) of the hand holding a handbag or of the hip a shoulder bag hangs on.
    """

    height: float
    build: str
    skin: str
    hair_colour: str
    hair_style: str
    upper_colour: str
    upper_pattern: str
    upper_second: str
    sleeves: str
    lower_colour: str
    lower_kind: str
    shoe_colour: str
    bag: str
    bag_colour: str
    bag_side: str


def _pick(rng: np.random.Generator, weights: dict[str, float], exclude: tuple[str, ...] = ()) -> str:
    names = [n for n in weights if n not in exclude]
    p = np.array([weights[n] for n in names], dtype=float)
    return names[rng.choice(len(names), p=p / p.sum())]


def _distinct_from(colour: str, min_distance: float = 90.0) -> tuple[str, ...]:
    """Cloth colours too close to ``colour`` to make a visible pattern on it."""
    ref = np.array(CLOTH[colour], dtype=float)
    return tuple(n for n, c in CLOTH.items() if np.linalg.norm(np.array(c, dtype=float) - ref) < min_distance)


def sample_identity(rng: np.random.Generator) -> Identity:
    """A random person; the same generator state always gives the same person."""
    upper = _pick(rng, UPPER_WEIGHTS)
    lower_kind = str(rng.choice(LOWER_KINDS, p=[0.62, 0.18, 0.20]))
    hair_style = str(rng.choice(HAIR_STYLES, p=[0.38, 0.24, 0.14, 0.10, 0.14]))
    return Identity(
        height=float(rng.uniform(0.9, 1.06)),
        build=str(rng.choice(BUILDS, p=[0.35, 0.4, 0.25])),
        skin=str(rng.choice(list(SKIN))),
        hair_colour=_pick(rng, HAIR_WEIGHTS),
        hair_style=hair_style,
        upper_colour=upper,
        upper_pattern=str(rng.choice(PATTERNS, p=[0.32, 0.18, 0.14, 0.18, 0.18])),
        upper_second=_pick(rng, UPPER_WEIGHTS, exclude=_distinct_from(upper)),
        sleeves=str(rng.choice(SLEEVES, p=[0.6, 0.4])),
        lower_colour=_pick(rng, LOWER_WEIGHTS),
        lower_kind=lower_kind,
        shoe_colour=_pick(rng, SHOE_WEIGHTS),
        bag=str(rng.choice(BAGS, p=[0.34, 0.26, 0.18, 0.22])),
        bag_colour=_pick(rng, BAG_WEIGHTS),
        bag_side=str(rng.choice(SIDES)),
    )
