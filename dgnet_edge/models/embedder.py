"""The test-time feature as one module: preprocessing, flip and L2 built in.

:class:`ReidEmbedder` takes a batch of RGB images at the network size, uint8 (or float in
0..255), in NHWC layout — what a camera or an image decoder hands over — and returns the DG-Net
test feature: each head's BN embedding L2-normalised and concatenated; with ``flip`` the features
of the image and of its mirror are summed and each head's part is normalised again. Everything a
deployment needs is in the graph, so every backend (torch, ONNX Runtime, TensorRT) gets the same
preprocessing from one place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dgnet_edge.models.preprocess import Normalise
from dgnet_edge.models.reid import ReidNet


class ReidEmbedder(nn.Module):
    """(N, H, W, 3) RGB images -> (N, heads*bottleneck) features [, (N, code_dim) appearance code].

    Args:
        net: the re-id network (evaluated in eval mode by the caller).
        mean, std: per-channel normalisation of 0..1 pixels.
        flip: add the mirrored image's feature (the DG-Net protocol).
        with_code: also return the appearance code of the unflipped image.
    """

    def __init__(
        self,
        net: ReidNet,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        flip: bool = True,
        with_code: bool = False,
    ):
        super().__init__()
        self.net = net
        self.flip = flip
        self.with_code = with_code
        self.heads = len(net.heads)
        self.normalise = Normalise(mean, std)

    def forward(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = self.normalise(images)
        batch = x.shape[0]
        if self.flip:
            x = torch.cat([x, x.flip(3)], dim=0)
        fmap = self.net.forward_features(x)
        # Normalise in float32 whatever the trunk ran in (an fp16 sum of 512 squares can overflow).
        parts = self.net.forward_head(fmap, pre_logits=True)
        feature = torch.cat([F.normalize(p.float(), dim=1) for p in parts], dim=1)
        if self.flip:
            feature = feature[:batch] + feature[batch:]
            d = self.net.bottleneck
            feature = torch.cat([F.normalize(feature[:, k * d : (k + 1) * d], dim=1) for k in range(self.heads)], dim=1)
        if not self.with_code:
            return feature
        return feature, self.net.appearance(fmap[:batch]).float()


def numpy_embed(module: nn.Module, device: torch.device | str = "cpu"):
    """Wrap a torch embedder as a numpy callable (uint8 NHWC in, float32 features out)."""
    module.eval()

    def embed(images):
        with torch.inference_mode():
            out = module(torch.from_numpy(images).to(device))
        feature = out[0] if isinstance(out, tuple) else out
        return feature.float().cpu().numpy()

    return embed
