"""Building blocks of DG-Net's generative half: conv block, residual block, norms, ASPP, MLP.

Everything here is written to export cleanly to ONNX with a dynamic batch axis:

- :class:`AdaIN` is instance normalisation *without* affine parameters followed by a per-sample
  affine ``gamma * x + beta``, with ``gamma`` and ``beta`` of shape (B, C) passed to ``forward``.
  Nothing is assigned to the module at run time and no reshape mixes the batch into the channel
  axis, so the graph holds for any batch size and a sample's output never depends on the other
  samples of its batch.
- :class:`LayerNorm` normalises each sample on its own over C x H x W (in every precision), then
  applies a per-channel affine.

State-dict keys: a :class:`ConvBlock` holds ``conv.{weight,bias}`` and, with ``norm="ln"``,
``norm.{weight,bias}`` (instance norm and AdaIN carry no parameters or buffers); a
:class:`ResBlock` holds ``conv1.*`` and ``conv2.*``; an :class:`MLP` holds ``fc.{i}.{weight,bias}``;
an :class:`ASPP` holds ``pointwise.*``, ``atrous.{k}.{0,1}.*`` and ``fuse.*``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("none", "in", "ln", "adain")
ACTIVATIONS = ("lrelu", "relu", "none")
PAD_TYPES = ("reflect", "zero")
INITS = ("gaussian", "kaiming", "xavier", "orthogonal", "default")


class InstanceNorm(nn.Module):
    """Instance normalisation without affine parameters or running statistics: each sample's and
    channel's mean and (biased) variance over H x W, ``eps`` inside the square root.

    Args:
        num_features: channels C (informative only: nothing is stored per channel).
        eps: added to the variance.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class AdaIN(nn.Module):
    """Adaptive instance normalisation: ``gamma * instance_norm(x) + beta``, per sample.

    The statistics are each sample's and channel's mean and (biased) variance over H x W, with
    ``eps`` inside the square root. ``gamma`` and ``beta`` (B, C) come from the appearance code
    (see :meth:`dgnet_edge.models.decoder.Decoder.adain_params`). No parameters, no buffers.

    Args:
        num_features: channels C.
        eps: added to the variance.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        x = F.instance_norm(x, eps=self.eps)
        return x * gamma.unsqueeze(-1).unsqueeze(-1) + beta.unsqueeze(-1).unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class LayerNorm(nn.Module):
    """Per-sample layer norm over C x H x W, then a per-channel affine (DG-Net's decoder norm).

    ``y = (x - mean) / (std + eps) * weight[c] + bias[c]`` with the mean and the unbiased standard
    deviation of each sample over all its channels and positions (note: ``eps`` is added to the
    standard deviation, not to the variance, as DG-Net defines it). ``weight`` starts uniform in
    [0, 1), ``bias`` at zero.

    Args:
        num_features: channels C.
        eps: added to the standard deviation.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.rand(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(1, x.dim()))
        mean = x.mean(dim=dims, keepdim=True)
        std = x.std(dim=dims, keepdim=True)
        x = (x - mean) / (std + self.eps)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.weight.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def make_activation(name: str) -> nn.Module:
    """``lrelu`` (LeakyReLU, slope 0.2), ``relu`` or ``none``."""
    if name == "lrelu":
        return nn.LeakyReLU(0.2)
    if name == "relu":
        return nn.ReLU()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}: expected one of {', '.join(ACTIVATIONS)}")


def _make_norm(name: str, channels: int) -> nn.Module:
    if name == "none":
        return nn.Identity()
    if name == "in":
        return InstanceNorm(channels)
    if name == "ln":
        return LayerNorm(channels)
    if name == "adain":
        return AdaIN(channels)
    raise ValueError(f"unknown norm {name!r}: expected one of {', '.join(NORMS)}")


class ConvBlock(nn.Module):
    """Pad -> Conv2d (with bias) -> norm -> activation.

    Args:
        in_channels, out_channels: channels.
        kernel_size, stride, padding, dilation: of the convolution; ``padding`` is applied by the
            padding layer (reflection or zeros), the convolution itself pads nothing.
        norm: ``none``, ``in`` (:class:`InstanceNorm`, no affine), ``ln`` (:class:`LayerNorm`) or
            ``adain`` (:class:`AdaIN`: ``forward`` then needs ``gamma`` and ``beta``).
        activation: ``lrelu`` (0.2), ``relu`` or ``none``.
        pad_type: ``reflect`` or ``zero``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        norm: str = "none",
        activation: str = "lrelu",
        pad_type: str = "reflect",
    ):
        super().__init__()
        if pad_type not in PAD_TYPES:
            raise ValueError(f"unknown pad_type {pad_type!r}: expected one of {', '.join(PAD_TYPES)}")
        if padding == 0:
            self.pad: nn.Module = nn.Identity()
        elif pad_type == "reflect":
            self.pad = nn.ReflectionPad2d(padding)
        else:
            self.pad = nn.ZeroPad2d(padding)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, dilation=dilation, bias=True)
        self.norm = _make_norm(norm, out_channels)
        self.act = make_activation(activation)
        self.uses_adain = norm == "adain"

    def forward(self, x: torch.Tensor, gamma: torch.Tensor | None = None, beta: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv(self.pad(x))
        if self.uses_adain:
            if gamma is None or beta is None:
                raise ValueError("an AdaIN conv block needs gamma and beta")
            x = self.norm(x, gamma, beta)
        else:
            x = self.norm(x)
        return self.act(x)


class ResBlock(nn.Module):
    """Two 3x3 conv blocks (activation after the first only) plus the identity.

    Args:
        channels: in = out channels.
        norm: norm of both conv blocks (``adain``: ``forward`` needs two (gamma, beta) pairs).
        activation: after the first conv block.
        pad_type: ``reflect`` or ``zero``.
    """

    def __init__(self, channels: int, norm: str = "in", activation: str = "lrelu", pad_type: str = "reflect"):
        super().__init__()
        self.conv1 = ConvBlock(channels, channels, 3, 1, 1, norm=norm, activation=activation, pad_type=pad_type)
        self.conv2 = ConvBlock(channels, channels, 3, 1, 1, norm=norm, activation="none", pad_type=pad_type)

    def forward(
        self,
        x: torch.Tensor,
        gamma1: torch.Tensor | None = None,
        beta1: torch.Tensor | None = None,
        gamma2: torch.Tensor | None = None,
        beta2: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return x + self.conv2(self.conv1(x, gamma1, beta1), gamma2, beta2)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling as DG-Net's structure encoder ends.

    Branches: a 1x1 conv block (norm, no activation), and per dilation a 1x1 conv block (norm,
    activation) followed by a dilated 3x3 conv block (norm, no activation); the concatenated
    branches are fused by a 1x1 conv block (norm, no activation).

    Args:
        in_channels: input channels.
        branch_channels: output channels of each branch.
        out_channels: output channels of the fusion.
        dilations: one atrous branch per dilation (padding = dilation). With reflection padding
            each dilation must be smaller than the feature map's height and width.
        norm, activation, pad_type: as for :class:`ConvBlock`.
    """

    def __init__(
        self,
        in_channels: int,
        branch_channels: int,
        out_channels: int,
        dilations: tuple[int, ...] = (3, 6, 9),
        norm: str = "in",
        activation: str = "lrelu",
        pad_type: str = "reflect",
    ):
        super().__init__()
        self.dilations = tuple(dilations)
        self.pointwise = ConvBlock(in_channels, branch_channels, 1, norm=norm, activation="none", pad_type=pad_type)
        self.atrous = nn.ModuleList(
            nn.Sequential(
                ConvBlock(in_channels, branch_channels, 1, norm=norm, activation=activation, pad_type=pad_type),
                ConvBlock(branch_channels, branch_channels, 3, 1, d, dilation=d, norm=norm, activation="none", pad_type=pad_type),
            )
            for d in self.dilations
        )
        fused = branch_channels * (1 + len(self.dilations))
        self.fuse = ConvBlock(fused, out_channels, 1, norm=norm, activation="none", pad_type=pad_type)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.pointwise(x)] + [branch(x) for branch in self.atrous]
        return self.fuse(torch.cat(branches, dim=1))


class MLP(nn.Module):
    """Linear layers with LeakyReLU (0.2) between them and none after the last.

    Args:
        in_features: input size (the input is flattened from dim 1).
        hidden_features: width of the hidden layers.
        out_features: output size.
        num_layers: number of Linear layers (>= 1).
    """

    def __init__(self, in_features: int, hidden_features: int, out_features: int, num_layers: int = 3):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"an MLP needs at least one layer, got num_layers={num_layers}")
        sizes = [in_features] + [hidden_features] * (num_layers - 1) + [out_features]
        self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for i, fc in enumerate(self.fc):
            x = fc(x)
            if i < len(self.fc) - 1:
                x = self.act(x)
        return x


def init_weights(module: nn.Module, kind: str) -> None:
    """Initialise every Conv2d and Linear weight under ``module`` the way DG-Net does; biases to 0.

    ``gaussian``: N(0, 0.02) (the discriminator); ``kaiming``: He normal, fan-in, gain for ReLU (the
    generator); ``xavier`` and ``orthogonal``: gain sqrt(2); ``default``: leave PyTorch's init (the
    biases are still zeroed).
    """
    if kind not in INITS:
        raise ValueError(f"unknown init {kind!r}: expected one of {', '.join(INITS)}")
    for m in module.modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear)):
            continue
        if kind == "gaussian":
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif kind == "kaiming":
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
        elif kind == "xavier":
            nn.init.xavier_normal_(m.weight, gain=math.sqrt(2))
        elif kind == "orthogonal":
            nn.init.orthogonal_(m.weight, gain=math.sqrt(2))
        if m.bias is not None:
            nn.init.zeros_(m.bias)
