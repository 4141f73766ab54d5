"""Re-id networks: a ResNet trunk, global pooling and one or two ID heads.

One class serves both networks of DG-Net's discriminative half:

- the appearance encoder E_a (official ``ft_netAB``): max pooling, two heads (primary, dropout
  0.5; fine-grained, dropout 0.75) and the appearance code, a 4x1 part max-pool of the last
  feature map flattened to C*4 values (8192 for ResNet-50), detached before the generator;
- the teacher (official ``ft_net``): average pooling, one head.

An ID head is Linear(C -> 512) -> BatchNorm1d -> Dropout -> Linear(512 -> classes). Its 512-d
BatchNorm output, L2-normalised, is the test-time feature; with two heads the two are
concatenated (see :mod:`dgnet_edge.models.embedder` for the full test feature with flip).

State-dict keys: ``backbone.*`` (torchvision ResNet keys), ``heads.{k}.embed``,
``heads.{k}.bn``, ``heads.{k}.classifier``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dgnet_edge.models.resnet import ResNet

PARTS = 4  # horizontal stripes of the appearance code


class IdHead(nn.Module):
    """Linear -> BatchNorm1d -> Dropout -> Linear classifier (the official ``ClassBlock``)."""

    def __init__(self, in_features: int, num_classes: int, bottleneck: int = 512, dropout: float = 0.5):
        super().__init__()
        self.embed = nn.Linear(in_features, bottleneck)
        self.bn = nn.BatchNorm1d(bottleneck)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(bottleneck, num_classes)
        nn.init.kaiming_normal_(self.embed.weight, a=0, mode="fan_out")
        nn.init.zeros_(self.embed.bias)
        nn.init.normal_(self.classifier.weight, std=0.001)
        nn.init.zeros_(self.classifier.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The BN output: the head's embedding."""
        return self.bn(self.embed(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.forward_features(x)))


class ReidOutput(NamedTuple):
    logits: list[torch.Tensor]
    code: torch.Tensor | None  # appearance code (B, C*PARTS), detached; None without part pooling


class ReidNet(nn.Module):
    """ResNet trunk + global pooling + ID heads (+ the appearance code when ``appearance_code``).

    Args:
        backbone: the ResNet trunk.
        num_classes: training identities.
        pool: ``max`` (E_a) or ``avg`` (teacher), for both the global and the part pooling.
        dropout: one rate per head; two heads = (primary, fine-grained).
        bottleneck: width of each head's embedding.
        appearance_code: compute the 4-stripe appearance code in :meth:`forward`.
    """

    def __init__(
        self,
        backbone: ResNet,
        num_classes: int,
        pool: str = "max",
        dropout: tuple[float, ...] = (0.5, 0.75),
        bottleneck: int = 512,
        appearance_code: bool = True,
    ):
        super().__init__()
        if pool not in ("max", "avg"):
            raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
        self.backbone = backbone
        self.pool = pool
        self.num_classes = num_classes
        self.bottleneck = bottleneck
        self.with_code = appearance_code
        self.heads = nn.ModuleList(IdHead(backbone.num_features, num_classes, bottleneck, p) for p in dropout)

    @property
    def feature_dim(self) -> int:
        """Size of the test-time feature: one embedding per head."""
        return self.bottleneck * len(self.heads)

    @property
    def code_dim(self) -> int:
        return self.backbone.num_features * PARTS

    def _pool(self, fmap: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.adaptive_max_pool2d(fmap, size) if self.pool == "max" else F.adaptive_avg_pool2d(fmap, size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's last feature map (B, C, H/16, W/16) with last stride 1."""
        return self.backbone(x)

    def appearance(self, fmap: torch.Tensor) -> torch.Tensor:
        """The appearance code: 4x1 part pooling flattened channel-major to (B, C*4), as the official view."""
        return self._pool(fmap, (PARTS, 1)).flatten(1)

    def forward_head(self, fmap: torch.Tensor, pre_logits: bool = False) -> list[torch.Tensor]:
        """Per head: logits, or with ``pre_logits`` the BN embedding."""
        pooled = self._pool(fmap, (1, 1)).flatten(1)
        if pre_logits:
            return [head.forward_features(pooled) for head in self.heads]
        return [head(pooled) for head in self.heads]

    def forward(self, x: torch.Tensor) -> ReidOutput:
        fmap = self.forward_features(x)
        code = self.appearance(fmap).detach() if self.with_code else None
        return ReidOutput(self.forward_head(fmap), code)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Each head's embedding L2-normalised, concatenated: (B, feature_dim). No flip."""
        parts = self.forward_head(self.forward_features(x), pre_logits=True)
        return torch.cat([F.normalize(p, dim=1) for p in parts], dim=1)

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.heads.parameters())

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())
