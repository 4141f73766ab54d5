"""The generator parts as exportable graphs (the embedder graph is :class:`ReidEmbedder`).

- structure: (N, H, W, 3) RGB 0..255 -> structure code (N, C, H/4, W/4);
- appearance: (N, H, W, 3) RGB 0..255 -> DG-Net E_a's appearance code (N, code_dim), for exports whose
  embedder is another network (a distilled E_a) than the E_a the decoder was trained with;
- decoder: structure code + appearance code (N, code_dim) -> image (N, 3, H, W), ImageNet-
  normalised as the networks produce it (the runtime turns it into pixels). Keeping the output in
  the network's own range keeps ONNX Runtime / PyTorch differences at float32 rounding.
"""

from __future__ import annotations

import torch
from torch import nn

from dgnet_edge.models import Decoder, ReidNet, StructureEncoder
from dgnet_edge.models.preprocess import Normalise


class StructureGraph(nn.Module):
    def __init__(self, structure: StructureEncoder, mean: tuple[float, float, float], std: tuple[float, float, float]):
        super().__init__()
        self.normalise = Normalise(mean, std)
        self.structure = structure

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.structure(self.normalise(images)).float()


class AppearanceGraph(nn.Module):
    def __init__(self, net: ReidNet, mean: tuple[float, float, float], std: tuple[float, float, float]):
        super().__init__()
        self.normalise = Normalise(mean, std)
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.appearance(self.net.forward_features(self.normalise(images))).float()


class DecoderGraph(nn.Module):
    def __init__(self, decoder: Decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, structure_code: torch.Tensor, appearance_code: torch.Tensor) -> torch.Tensor:
        dtype = next(self.decoder.parameters()).dtype
        return self.decoder(structure_code.to(dtype), appearance_code.to(dtype)).float()
