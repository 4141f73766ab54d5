"""DG-Net's structure encoder E_s: a gray image -> the structure code.

E_s sees only the luminance-like mean of the three ImageNet-normalised channels, so the structure
code carries pose, shape and background layout but little colour: colour comes from the appearance
code. The conversion is part of the module (:meth:`StructureEncoder.to_gray`): :meth:`forward`
takes the same normalised RGB batch as the appearance encoder, and :meth:`forward_gray` takes the
one-channel image directly.

``input="edges"`` (the official code's ``single: edge`` option, made differentiable and exportable)
feeds the stem a soft edge map of the gray image instead: the gradient magnitude ``m`` of a 5x5
smoothed Sobel filter (Sobel after a 3x3 binomial blur, which keeps sensor and JPEG noise out, as
Canny's smoothing does), squashed to ``tanh(m / 2)``. Where people's garments differ mostly in luminance, as in the synthetic
world, a gray structure code hands the decoder the structure provider's garment brightness, and a
swap keeps it; edges keep the outlines, pose and background layout and leave brightness and colour
to the appearance code. The operator has no weights (the state dict is the same for both inputs)
and exports as two convolutions and element-wise ops.

Architecture (defaults = the paper's Market config, ``dim=16``, ``n_downsample=2``, ``n_res=4``),
every conv with reflection padding and a bias, InstanceNorm without affine:

    stem.0   conv3x3 s2   1 -> 16   IN, LeakyReLU 0.2
    stem.1   conv3x3     16 -> 32   IN, LeakyReLU
    stem.2   conv3x3     32 -> 32   IN, LeakyReLU
    stem.3   conv3x3 s2  32 -> 64   IN, LeakyReLU
    blocks.0-3  residual blocks (64): conv3x3 IN LeakyReLU, conv3x3 IN, + identity
    aspp     1x1 64 -> 32 (IN); per dilation 3, 6, 9: 1x1 64 -> 32 (IN, LeakyReLU) then dilated
             3x3 32 -> 32 (IN); concat -> 1x1 128 -> 128 (IN)   [no activation at the end]

A 256x128 image gives a 128x64x32 structure code. Each further ``n_downsample`` step adds a
conv3x3 (w -> w) and a conv3x3 s2 (w -> 2w) to the stem. With reflection padding the largest
dilation must be smaller than the code's height and width (9 < 32 at 256x128; at 64x32 input the
code is 16x8, so use smaller ``dilations`` there).

State-dict keys: ``stem.{i}.conv.{weight,bias}``, ``blocks.{j}.conv{1,2}.conv.{weight,bias}``,
``aspp.pointwise.conv.*``, ``aspp.atrous.{k}.{0,1}.conv.*``, ``aspp.fuse.conv.*``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dgnet_edge.models.layers import ASPP, ConvBlock, ResBlock, init_weights

INPUTS = ("gray", "edges")


def smoothed_sobel() -> torch.Tensor:
    """(2, 1, 5, 5): the x and y Sobel kernels convolved with a 3x3 binomial blur (sum 1)."""
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    blur = torch.tensor([1.0, 2.0, 1.0])
    blur = torch.outer(blur, blur) / 16
    kernel = torch.zeros(5, 5)
    for i in range(3):
        for j in range(3):
            kernel[i : i + 3, j : j + 3] += sobel[i, j] * blur
    return torch.stack([kernel, kernel.t()]).unsqueeze(1)


class StructureEncoder(nn.Module):
    """E_s: (B, 3, H, W) ImageNet-normalised RGB -> (B, 8*dim, H/4, W/4) structure code.

    Args:
        dim: width of the first conv (the code has ``dim * 2**n_downsample * 2`` channels).
        n_downsample: stride-2 convs in the stem.
        n_res: residual blocks after the stem.
        dilations: dilations of the ASPP's atrous branches.
        activation: ``lrelu`` (0.2) or ``relu``.
        pad_type: ``reflect`` or ``zero``.
        init: weight init (see :func:`dgnet_edge.models.layers.init_weights`).
        input: what the stem sees: ``gray`` (the paper) or ``edges`` (a soft edge map of the gray
            image; module docstring).
    """

    def __init__(
        self,
        dim: int = 16,
        n_downsample: int = 2,
        n_res: int = 4,
        dilations: tuple[int, ...] = (3, 6, 9),
        activation: str = "lrelu",
        pad_type: str = "reflect",
        init: str = "kaiming",
        input: str = "gray",
    ):
        super().__init__()
        if n_downsample < 1:
            raise ValueError(f"n_downsample must be >= 1, got {n_downsample}")
        if input not in INPUTS:
            raise ValueError(f"input must be one of {', '.join(INPUTS)}, got {input!r}")
        self.input = input
        self.register_buffer("gradient", smoothed_sobel(), persistent=False)
        kw = dict(norm="in", activation=activation, pad_type=pad_type)
        stem = [ConvBlock(1, dim, 3, 2, 1, **kw), ConvBlock(dim, 2 * dim, 3, 1, 1, **kw)]
        width = 2 * dim
        for _ in range(n_downsample - 1):
            stem += [ConvBlock(width, width, 3, 1, 1, **kw), ConvBlock(width, 2 * width, 3, 2, 1, **kw)]
            width *= 2
        self.stem = nn.Sequential(*stem)
        self.blocks = nn.Sequential(*(ResBlock(width, "in", activation, pad_type) for _ in range(n_res)))
        self.aspp = ASPP(width, width // 2, 2 * width, dilations, "in", activation, pad_type)
        self.out_channels = 2 * width
        self.reduction = 2**n_downsample
        init_weights(self, init)

    @staticmethod
    def to_gray(images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1, H, W): the mean of the three (normalised) channels."""
        return images.mean(dim=1, keepdim=True)

    def edges(self, gray: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) gray -> (B, 1, H, W) soft edges in [0, 1): tanh(m / 2) of the smoothed Sobel
        gradient magnitude m (reflected border, as every pad of E_s, so the frame is no edge)."""
        grad = F.conv2d(F.pad(gray, (2, 2, 2, 2), mode="reflect"), self.gradient.to(gray.dtype))
        gx, gy = grad[:, :1], grad[:, 1:]
        return torch.tanh(torch.sqrt(gx * gx + gy * gy + 1e-6) / 2)

    def forward_gray(self, gray: torch.Tensor) -> torch.Tensor:
        """The structure code of a one-channel image (B, 1, H, W)."""
        x = self.edges(gray) if self.input == "edges" else gray
        return self.aspp(self.blocks(self.stem(x)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The structure code of a normalised RGB batch (B, 3, H, W)."""
        return self.forward_gray(self.to_gray(images))
