"""DG-Net's decoder G: structure code + appearance code -> image.

The appearance code (B, code_dim) is cut into ``mlp_splits`` contiguous slices
``code[:, k*s:(k+1)*s]`` (s = code_dim / mlp_splits; 8192 / 4 = 2048 in the paper's config). Slice k
feeds the k-th gamma MLP and the k-th beta MLP (code_dim/4 -> 512 -> 512 -> out, LeakyReLU 0.2
between the layers, none after the last). The MLPs' outputs, concatenated in order, hold the AdaIN
parameters of all AdaIN layers: the decoder's residual blocks have two AdaIN layers each, and the
j-th AdaIN layer (in module order: block 0 conv1, block 0 conv2, block 1 conv1, ...) takes the
values ``[j*C, (j+1)*C)``. With 4 blocks of C = 128 channels that is 8 x 128 = 1024 gammas (and as
many betas), 256 per MLP: MLP k serves residual block k.

Architecture (defaults = the paper's Market config), reflection padding, biases everywhere:

    blocks.0-3  residual blocks (128) with AdaIN: conv3x3 AdaIN LeakyReLU, conv3x3 AdaIN, + identity
    up.0        nearest upsample x2, conv5x5 128 -> 64, LayerNorm, LeakyReLU
    up.1        nearest upsample x2, conv5x5  64 -> 32, LayerNorm, LeakyReLU
    refine.0-1  conv3x3 32 -> 32, LeakyReLU (no norm)
    to_rgb      conv1x1 32 -> 3 (no norm, no activation, no tanh)

The output lives in the ImageNet-normalised space of the input images (a 128x64x32 code gives a
3x256x128 image).

Use ``decoder(structure_code, appearance_code)``; :meth:`Decoder.adain_params` and
:meth:`Decoder.render` are the two halves of that call (appearance code -> gammas, betas; structure
code + gammas, betas -> image), so an export can split the MLPs from the conv trunk, or cache the
parameters of a gallery identity.

State-dict keys: ``blocks.{j}.conv{1,2}.conv.{weight,bias}``, ``up.{k}.conv.{weight,bias}``,
``up.{k}.norm.{weight,bias}``, ``refine.{0,1}.conv.{weight,bias}``, ``to_rgb.conv.{weight,bias}``,
``mlp_gamma.{k}.fc.{0,1,2}.{weight,bias}``, ``mlp_beta.{k}.fc.{0,1,2}.{weight,bias}``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dgnet_edge.models.layers import MLP, ConvBlock, ResBlock, init_weights


class Decoder(nn.Module):
    """G: (B, dim, h, w) structure code + (B, code_dim) appearance code -> (B, 3, h*2**n_upsample, ...).

    Args:
        dim: channels of the structure code (8 x the structure encoder's ``dim``).
        code_dim: size of the appearance code (C x 4 of the appearance encoder's trunk: 8192 for
            ResNet-50, 2048 for ResNet-18).
        n_res: AdaIN residual blocks (two AdaIN layers each).
        n_upsample: upsampling stages, each halving the channels.
        out_channels: image channels.
        mlp_dim: hidden width of the AdaIN parameter MLPs.
        mlp_layers: Linear layers per MLP.
        mlp_splits: slices of the appearance code, one gamma MLP and one beta MLP each;
            ``code_dim`` and the AdaIN parameter count ``2 * n_res * dim`` must both divide by it.
        activation: ``lrelu`` (0.2) or ``relu``, in the trunk.
        pad_type: ``reflect`` or ``zero``.
        init: weight init (see :func:`dgnet_edge.models.layers.init_weights`).
    """

    def __init__(
        self,
        dim: int = 128,
        code_dim: int = 8192,
        n_res: int = 4,
        n_upsample: int = 2,
        out_channels: int = 3,
        mlp_dim: int = 512,
        mlp_layers: int = 3,
        mlp_splits: int = 4,
        activation: str = "lrelu",
        pad_type: str = "reflect",
        init: str = "kaiming",
    ):
        super().__init__()
        self.dim = dim
        self.code_dim = code_dim
        self.num_adain = 2 * n_res
        self.num_adain_params = self.num_adain * dim  # gammas (and as many betas)
        if code_dim % mlp_splits or self.num_adain_params % mlp_splits:
            raise ValueError(
                f"mlp_splits={mlp_splits} must divide the appearance code size ({code_dim}) and the "
                f"AdaIN parameter count 2*n_res*dim ({self.num_adain_params})"
            )
        self.mlp_splits = mlp_splits
        self.slice_dim = code_dim // mlp_splits
        self.blocks = nn.ModuleList(ResBlock(dim, "adain", activation, pad_type) for _ in range(n_res))
        up = []
        width = dim
        for _ in range(n_upsample):
            up.append(ConvBlock(width, width // 2, 5, 1, 2, norm="ln", activation=activation, pad_type=pad_type))
            width //= 2
        self.up = nn.ModuleList(up)
        self.refine = nn.Sequential(
            ConvBlock(width, width, 3, 1, 1, norm="none", activation=activation, pad_type=pad_type),
            ConvBlock(width, width, 3, 1, 1, norm="none", activation=activation, pad_type=pad_type),
        )
        self.to_rgb = ConvBlock(width, out_channels, 1, norm="none", activation="none", pad_type=pad_type)
        per_mlp = self.num_adain_params // mlp_splits
        self.mlp_gamma = nn.ModuleList(MLP(self.slice_dim, mlp_dim, per_mlp, mlp_layers) for _ in range(mlp_splits))
        self.mlp_beta = nn.ModuleList(MLP(self.slice_dim, mlp_dim, per_mlp, mlp_layers) for _ in range(mlp_splits))
        init_weights(self, init)

    def adain_params(self, appearance_code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, code_dim) -> gammas, betas, each (B, 2*n_res*dim), in AdaIN-layer order."""
        code = appearance_code.flatten(1)
        parts = [code[:, k * self.slice_dim : (k + 1) * self.slice_dim] for k in range(self.mlp_splits)]
        gammas = torch.cat([mlp(p) for mlp, p in zip(self.mlp_gamma, parts)], dim=1)
        betas = torch.cat([mlp(p) for mlp, p in zip(self.mlp_beta, parts)], dim=1)
        return gammas, betas

    def render(self, structure_code: torch.Tensor, gammas: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        """The conv trunk: structure code + AdaIN parameters (from :meth:`adain_params`) -> image."""
        c = self.dim
        x = structure_code
        for i, block in enumerate(self.blocks):
            j = 2 * i
            x = block(
                x,
                gammas[:, j * c : (j + 1) * c],
                betas[:, j * c : (j + 1) * c],
                gammas[:, (j + 1) * c : (j + 2) * c],
                betas[:, (j + 1) * c : (j + 2) * c],
            )
        for up in self.up:
            x = up(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.to_rgb(self.refine(x))

    def forward(self, structure_code: torch.Tensor, appearance_code: torch.Tensor) -> torch.Tensor:
        return self.render(structure_code, *self.adain_params(appearance_code))
