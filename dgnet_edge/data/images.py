"""Decoding image files into RGB arrays, with unreadable files reported rather than crashing."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dgnet_edge.errors import ImageReadError

log = logging.getLogger(__name__)


def read_image(path: str | Path) -> np.ndarray:
    """An image file as an RGB uint8 array (H, W, 3); ImageReadError if it cannot be read or decoded.

    Grey and palette images come back as three channels and an alpha channel is dropped.
    """
    if not Path(path).is_file():
        if Path(path).is_symlink():
            raise ImageReadError(f"{path}: broken symbolic link (its target {os.readlink(path)} is missing)")
        if Path(path).is_dir():
            raise ImageReadError(f"{path} is a folder, not an image file")
        raise ImageReadError(f"{path}: image file not found")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:  # permissions, a file removed meanwhile, an I/O error on the disk
        raise ImageReadError(f"{path}: cannot read the file ({e.strerror or e})") from e
    if data.size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes); re-copy it from the dataset archive")
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error:  # e.g. a corrupt header declaring an absurd image size
        image = None
    if image is None:
        raise ImageReadError(f"{path}: not a readable image (corrupt or unsupported format)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to (height, width) as the reference code's PIL bicubic resize does it.

    Enlarging (e.g. Market-1501's 128x64 crops to 256x128) uses bicubic interpolation; shrinking
    uses area averaging, which low-pass filters like PIL's resampling does (plain bicubic would alias).
    """
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    shrinking = height <= h and width <= w
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


@dataclass
class LoadedImages:
    """Images decoded into one array; ``kept`` indexes the inputs that decoded."""

    pixels: np.ndarray  # (N, H, W, 3) uint8, RGB
    kept: list[int]
    failures: list[str] = field(default_factory=list)


def load_images(
    paths: Sequence[str | Path],
    height: int,
    width: int,
    workers: int = 4,
    skip_unreadable: bool = False,
) -> LoadedImages:
    """Decode and resize many images (threads: OpenCV releases the GIL while decoding).

    With ``skip_unreadable`` (training), unreadable files are left out, counted and logged;
    otherwise (evaluation) the first one raises ImageReadError.
    """

    def one(path: str | Path) -> np.ndarray | str:
        try:
            return resize(read_image(path), height, width)
        except ImageReadError as e:
            if not skip_unreadable:
                raise
            return str(e)

    if workers > 0 and len(paths) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one, paths))
    else:
        results = [one(p) for p in paths]
    kept = [i for i, r in enumerate(results) if isinstance(r, np.ndarray)]
    failures = [r for r in results if isinstance(r, str)]
    if failures:
        log.warning("skipped %d unreadable image(s); first: %s", len(failures), failures[0])
    pixels = np.stack([results[i] for i in kept]) if kept else np.zeros((0, height, width, 3), np.uint8)
    return LoadedImages(pixels, kept, failures)
