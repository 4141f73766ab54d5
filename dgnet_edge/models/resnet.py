"""ResNet-18/34/50 trunks with torchvision-compatible state_dict keys.

The modules are named as in torchvision (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer4.0.downsample.0`` ...), so ImageNet weights saved from torchvision load as they are
(:func:`load_imagenet_weights`, from a local file: nothing is downloaded). The trunk stops after
``layer4``: pooling and heads belong to the re-id model. ``last_stride=1`` removes the final
down-sampling, as DG-Net's appearance encoder does (256x128 input -> 2048x16x8 map).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from dgnet_edge.errors import CheckpointError
from dgnet_edge.weights import load_weights_file

log = logging.getLogger(__name__)


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(in_ch, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 convolution."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv1x1(in_ch, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A ResNet trunk (stem + four stages), without pooling or classifier.

    Args:
        block: BasicBlock (ResNet-18/34) or Bottleneck (ResNet-50).
        layers: blocks per stage.
        last_stride: stride of the first block of ``layer4`` (1 keeps a 16x8 map at 256x128).
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int], last_stride: int = 2):
        super().__init__()
        self.in_ch = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._stage(block, 64, layers[0], 1)
        self.layer2 = self._stage(block, 128, layers[1], 2)
        self.layer3 = self._stage(block, 256, layers[2], 2)
        self.layer4 = self._stage(block, 512, layers[3], last_stride)
        self.num_features = 512 * block.expansion
        self._init_weights()

    def _stage(self, block: type[BasicBlock] | type[Bottleneck], width: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.in_ch != width * block.expansion:
            downsample = nn.Sequential(_conv1x1(self.in_ch, width * block.expansion, stride), nn.BatchNorm2d(width * block.expansion))
        stage = [block(self.in_ch, width, stride, downsample)]
        self.in_ch = width * block.expansion
        stage += [block(self.in_ch, width) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Zero-init the last BN of each residual branch: each block starts as the identity, which
        # makes training from scratch (no ImageNet weights) markedly more stable.
        for m in self.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


_ARCHS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


def resnet_names() -> list[str]:
    return list(_ARCHS)


def build_resnet(name: str, last_stride: int = 2, pretrained: str | Path | None = None) -> ResNet:
    """A ResNet trunk by name; ``pretrained`` is a local torchvision-layout ImageNet state dict."""
    if name not in _ARCHS:
        raise ValueError(f"unknown backbone {name!r}: expected one of {', '.join(_ARCHS)}")
    block, layers = _ARCHS[name]
    model = ResNet(block, layers, last_stride)
    if pretrained is not None:
        load_imagenet_weights(model, pretrained)
    return model


def load_imagenet_weights(model: ResNet, path: str | Path) -> None:
    """Load torchvision ImageNet weights from a local file; ``fc.*`` is dropped, the rest is strict."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"pretrained weights {path} not found (give a local torchvision ResNet state dict)")
    state = load_weights_file(path, "pretrained weights")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong_shape:
        raise CheckpointError(
            f"{path}: does not match this ResNet: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}), {len(wrong_shape)} of another shape "
            f"(e.g. {wrong_shape[:3]}). Is it a torchvision ResNet of the right depth?"
        )
    model.load_state_dict(state)
    log.info("loaded ImageNet weights from %s", path)
