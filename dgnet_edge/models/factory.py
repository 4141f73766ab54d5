"""Building the networks from a config (the ``from_config`` adapters) or a named preset."""

from __future__ import annotations

from dgnet_edge.config import Config, NetConfig
from dgnet_edge.errors import ConfigError
from dgnet_edge.models.dgnet import DGNet
from dgnet_edge.models.reid import PARTS, ReidNet
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


def build_dgnet(cfg: Config, num_classes: int) -> DGNet:
    """DG-Net as ``cfg`` describes it: E_a from ``cfg.appearance``, E_s/G/D from ``cfg.dgnet``.

    Checks the sizes that only fail deep inside a forward pass otherwise: the appearance code needs
    a feature map whose height splits into 4 stripes, and each ASPP dilation must be smaller than
    the structure code (reflection padding).
    """
    gen, dis = cfg.dgnet.generator, cfg.dgnet.discriminator
    appearance = build_reid_net(cfg.appearance, num_classes, appearance_code=True)
    rows = cfg.data.height // (16 if cfg.appearance.last_stride == 1 else 32)
    if rows < PARTS or rows % PARTS:
        raise ConfigError(
            f"appearance: at {cfg.data.height}x{cfg.data.width} with last_stride {cfg.appearance.last_stride} the "
            f"feature map has {rows} rows, which do not split into {PARTS} stripes for the appearance code"
        )
    code_h, code_w = cfg.data.height >> gen.n_downsample, cfg.data.width >> gen.n_downsample
    if gen.pad_type == "reflect" and max(gen.dilations) >= min(code_h, code_w):
        raise ConfigError(
            f"dgnet.generator.dilations: {max(gen.dilations)} must be smaller than the structure code "
            f"({code_h}x{code_w}) at {cfg.data.height}x{cfg.data.width}"
        )
    return DGNet(
        appearance,
        gen_dim=gen.dim,
        n_downsample=gen.n_downsample,
        n_res=gen.n_res,
        mlp_dim=gen.mlp_dim,
        dilations=gen.dilations,
        dis_dim=dis.dim,
        dis_layers=dis.n_layer,
        dis_res=dis.n_res,
        dis_scales=dis.num_scales,
        activation=gen.activation,
        pad_type=gen.pad_type,
        gen_init=gen.init,
        dis_init=dis.init,
        structure_input=gen.structure_input,
    )
