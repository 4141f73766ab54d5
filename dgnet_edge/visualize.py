"""Turning network images into pictures: de-normalisation and grids of images, saved as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from dgnet_edge.atomic import write_atomic


def to_uint8(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(N, 3, H, W) normalised float images -> (N, H, W, 3) RGB uint8."""
    x = images.transpose(0, 2, 3, 1) * np.asarray(std, np.float32) + np.asarray(mean, np.float32)
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def grid(rows: Sequence[Sequence[np.ndarray | None]], gap: int = 2, background: int = 255) -> np.ndarray:
    """Tile equally sized RGB images row by row; a None cell stays blank."""
    cells = [c for row in rows for c in row if c is not None]
    if not cells:
        raise ValueError("no images to tile")
    h, w = cells[0].shape[:2]
    ncols = max(len(row) for row in rows)
    out = np.full((len(rows) * (h + gap) - gap, ncols * (w + gap) - gap, 3), background, np.uint8)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            if cell is not None:
                out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = cell
    return out


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB image as PNG (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"could not encode {path.name} as PNG")
    write_atomic(path, data.tobytes())
    return path
