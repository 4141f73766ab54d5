"""Checks on a photo given to enrol a person (`dgnet-edge gallery enrol`), before it is embedded.

The embedder turns any image into a feature, so a blank frame or a thin strip would be enrolled as a
person and then match whoever comes closest. A photo must have the size and shape a person's crop
can have, and show something: an image of one uniform colour shows no one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dgnet_edge.errors import DgnetEdgeError

MIN_SIDE = 16  # pixels: smaller than the smallest person a detector finds
ASPECT = (0.25, 8.0)  # height / width of a person's crop: lying down to standing thin
MIN_STD = 2.0  # grey levels: a uniform image (JPEG noise included) varies less


class PhotoError(DgnetEdgeError):
    """A photo that cannot show a person: too small, of no person's shape, or blank."""


def check_person_photo(rgb: np.ndarray, path: str | Path) -> np.ndarray:
    """``rgb`` (H, W, 3) when it can be a photo of a person; a PhotoError saying why not otherwise."""
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise PhotoError(f"photo {path} is {w}x{h} pixels: a person's photo needs at least {MIN_SIDE} pixels "
                         "each way; give a larger crop")
    if not ASPECT[0] <= h / w <= ASPECT[1]:
        raise PhotoError(f"photo {path} is {w}x{h} pixels, no person's shape: height / width must be from "
                         f"{ASPECT[0]:g} to {ASPECT[1]:g}; crop the photo to the person")
    spread = float(rgb.std())
    if spread < MIN_STD:
        raise PhotoError(f"no person found in photo {path}: the image is uniform (its pixels vary by "
                         f"{spread:.1f} levels); give a photo of the person")
    return rgb
