"""Building the re-id networks from a config section or a named preset."""

from __future__ import annotations

from dgnet_edge.config import NetConfig
from dgnet_edge.models.reid import ReidNet
from dgnet_edge.models.resnet import build_resnet

# Named presets: the paper's networks and the small CPU ones.
PRESETS: dict[str, NetConfig] = {
    "dgnet_appearance_r50": NetConfig(backbone="resnet50", last_stride=1, pool="max", dropout=(0.5, 0.75)),
    "dgnet_teacher_r50": NetConfig(backbone="resnet50", last_stride=1, pool="avg", dropout=(0.5,)),
    "dgnet_appearance_r18": NetConfig(backbone="resnet18", last_stride=1, pool="max", dropout=(0.5, 0.75)),
    "dgnet_teacher_r18": NetConfig(backbone="resnet18", last_stride=1, pool="avg", dropout=(0.5,)),
}


def build_reid_net(cfg: NetConfig, num_classes: int, appearance_code: bool = True) -> ReidNet:
    """A :class:`ReidNet` as ``cfg`` describes it (ImageNet weights from ``cfg.pretrained`` if set)."""
    backbone = build_resnet(cfg.backbone, cfg.last_stride, cfg.pretrained)
    return ReidNet(backbone, num_classes, cfg.pool, cfg.dropout, cfg.bottleneck, appearance_code)


def create_model(name: str, num_classes: int) -> ReidNet:
    """A preset by name; ValueError listing the presets otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(PRESETS)}")
    cfg = PRESETS[name]
    return build_reid_net(cfg, num_classes, appearance_code=len(cfg.dropout) == 2)
