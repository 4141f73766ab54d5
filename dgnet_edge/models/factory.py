"""Building the networks from a config (the ``from_config`` adapters) or a named preset, and from a
checkpoint (its config and weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dgnet_edge.checkpoint import load_checkpoint, save_checkpoint
from dgnet_edge.config import Config, NetConfig, config_from_dict
from dgnet_edge.errors import CheckpointError, ConfigError
from dgnet_edge.models.dgnet import DGNet
from dgnet_edge.models.reid import PARTS, ReidNet
from dgnet_edge.models.resnet import build_resnet
from dgnet_edge.weights import check_finite_weights

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


# Which network of a checkpoint carries the re-id feature, per stage.
FEATURE_NETWORK = {"teacher": ("teacher", "teacher"), "baseline": ("appearance", "appearance"),
                   "dgnet": ("appearance", "appearance"), "distil": ("appearance", "appearance")}


def load_reid_net(path: str | Path):
    """The re-id network of a checkpoint (teacher, or E_a for baseline and DG-Net runs), in eval
    mode, with the run's config: ``(net, config, kind)``."""
    state = load_checkpoint(path, kinds=tuple(FEATURE_NETWORK))
    cfg = config_from_dict(state["config"], f"{path} (config)")
    model_key, section = FEATURE_NETWORK[state["kind"]]
    check_finite_weights(path, {model_key: state["models"].get(model_key, {})})
    net = build_reid_net(getattr(cfg, section), state["num_classes"], appearance_code=section == "appearance")
    try:
        net.load_state_dict(state["models"][model_key])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path}: weights do not fit the network its config describes ({e})") from None
    return net.eval(), cfg, state["kind"]


def load_dgnet(path: str | Path):
    """All four DG-Net parts of a ``dgnet`` checkpoint, in eval mode, with the run's config:
    ``(model, config)``."""
    return dgnet_from_state(load_checkpoint(path, kinds=("dgnet",)), path)


def dgnet_from_state(state: dict, path: str | Path):
    """:func:`load_dgnet` of a ``dgnet`` checkpoint already read from ``path``."""
    cfg = config_from_dict(state["config"], f"{path} (config)")
    check_finite_weights(path, state["models"])
    model = build_dgnet(cfg, state["num_classes"])
    try:
        for name, part_state in state["models"].items():
            getattr(model, name).load_state_dict(part_state)
    except (AttributeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: weights do not fit the networks its config describes ({e})") from None
    return model.eval(), cfg


def save_initial_checkpoint(path: str | Path, cfg: Any, kind: str, num_classes: int, seed: int = 0) -> Path:
    """A checkpoint of ``cfg``'s networks at their initial (random) weights, as a run of stage
    ``kind`` would hold them: what latency and memory benchmarks need, since neither depends on
    the weight values. It carries ``step`` 0 and no optimizer state, so it cannot be resumed."""
    if kind not in FEATURE_NETWORK:
        raise CheckpointError(f"unknown stage {kind!r}; expected one of: {', '.join(FEATURE_NETWORK)}")
    torch.manual_seed(seed)
    if kind == "dgnet":
        model = build_dgnet(cfg, num_classes)
        models = {name: getattr(model, name).state_dict() for name in ("appearance", "structure", "decoder", "discriminator")}
    else:
        model_key, section = FEATURE_NETWORK[kind]
        models = {model_key: build_reid_net(getattr(cfg, section), num_classes, appearance_code=section == "appearance").state_dict()}
    return save_checkpoint(path, {"kind": kind, "config": cfg.to_dict(), "num_classes": num_classes, "step": 0, "models": models})
