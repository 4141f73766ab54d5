"""The paper's figures from a DG-Net checkpoint: appearance x structure swap grids and
appearance-interpolation strips."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dgnet_edge.config import Config
from dgnet_edge.models import DGNet
from dgnet_edge.visualize import grid, to_uint8


def _normalise(images: np.ndarray, cfg: Config) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(cfg.data.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.data.std).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def swap_grid(model: DGNet, cfg: Config, images: np.ndarray) -> np.ndarray:
    """(N+1) x (N+1) picture: the top row shows the structure providers, the left column the
    appearance providers, and cell (i, j) = G(structure of image j, appearance of image i).

    ``images``: (N, H, W, 3) RGB uint8 at the network size.
    """
    x = _normalise(images, cfg)
    appearance, structure = model.encode(x)
    n = len(images)
    rows: list[Sequence[np.ndarray | None]] = [[None, *images]]
    for i in range(n):
        generated = model.generate(structure, appearance[i : i + 1].expand(n, -1))
        rows.append([images[i], *to_uint8(generated.numpy(), cfg.data.mean, cfg.data.std)])
    return grid(rows)


@torch.no_grad()
def interpolation_strip(model: DGNet, cfg: Config, first: np.ndarray, second: np.ndarray, steps: int = 8) -> np.ndarray:
    """One row: ``first``, then G(structure of ``first``, appearance blended from ``first`` to
    ``second`` in ``steps`` steps), then ``second``."""
    if steps < 2:
        raise ValueError("steps must be at least 2")
    x = _normalise(np.stack([first, second]), cfg)
    appearance, structure = model.encode(x)
    t = torch.linspace(0, 1, steps).view(-1, 1)
    blended = (1 - t) * appearance[0] + t * appearance[1]
    generated = model.generate(structure[:1].expand(steps, -1, -1, -1), blended)
    return grid([[first, *to_uint8(generated.numpy(), cfg.data.mean, cfg.data.std), second]])
