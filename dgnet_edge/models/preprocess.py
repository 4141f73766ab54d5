"""Image normalisation inside the graphs: camera pixels in, camera pixels out.

Every exported graph takes RGB images at the network size in NHWC layout, uint8 or float in
0..255, and normalises them itself (per-channel mean/std of 0..1 pixels), so all backends share one
preprocessing and a device only resizes crops.
"""

from __future__ import annotations

import torch
from torch import nn


class Normalise(nn.Module):
    """(N, H, W, 3) 0..255 -> (N, 3, H, W) normalised float."""

    def __init__(self, mean: tuple[float, float, float], std: tuple[float, float, float]):
        super().__init__()
        self.register_buffer("scale", (1.0 / (255.0 * torch.tensor(std))).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", (-torch.tensor(mean) / torch.tensor(std)).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(self.scale.dtype)
        return x * self.scale + self.shift
