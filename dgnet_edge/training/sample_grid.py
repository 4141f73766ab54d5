"""Sample grids during DG-Net training: a fixed set of image pairs, with their swaps and reconstructions."""

from __future__ import annotations

from pathlib import Path

import torch

from dgnet_edge.config import Config
from dgnet_edge.data.train_set import TrainImages
from dgnet_edge.models import DGNet
from dgnet_edge.visualize import grid, save_png, to_uint8

DISPLAY = 8


@torch.no_grad()
def save_sample_grid(model: DGNet, train_set: TrainImages, cfg: Config, path: Path, device: torch.device) -> Path:
    """Columns: x_a, x_b, x_ab (a's structure, b's appearance), x_ba, recon(a), recon(b); one row per
    pair of the first training images of 2*DISPLAY distinct identities (the same pairs every time)."""
    first = {}
    for i, label in enumerate(train_set.labels.tolist()):
        first.setdefault(label, i)
        if len(first) == 2 * DISPLAY:
            break
    idx = torch.tensor(list(first.values()))
    half = len(idx) // 2
    mean = torch.tensor(cfg.data.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.data.std, device=device).view(1, 3, 1, 1)
    x = (train_set.pixels[idx].to(device).permute(0, 3, 1, 2).float() / 255 - mean) / std
    x_a, x_b = x[:half], x[half : 2 * half]
    was_training = model.training
    model.eval()
    swap = model.swap(x_a, x_b)
    columns = [x_a, x_b, swap.x_ab, swap.x_ba, model.reconstruct(x_a), model.reconstruct(x_b)]
    model.train(was_training)
    pictures = [to_uint8(c.float().cpu().numpy(), cfg.data.mean, cfg.data.std) for c in columns]
    return save_png(path, grid([[col[r] for col in pictures] for r in range(half)]))
