"""DG-Net: the appearance encoder, the structure encoder, the decoder and the discriminator.

Zheng et al., "Joint Discriminative and Generative Learning for Person Re-identification", CVPR
2019. An image is split into an appearance code (E_a, the re-id network: clothes, colours) and a
structure code (E_s: pose, shape, background layout); the decoder G recombines any appearance with
any structure, and the multi-scale discriminator D judges the results. All images (in and out)
are ImageNet-normalised RGB.

:class:`DGNet` only holds the four parts and offers the code/image plumbing; losses and the
training schedule live in the trainer.

State-dict keys (each part's own keys, documented in its module, under the part's name):
``appearance.*`` (:class:`~dgnet_edge.models.reid.ReidNet`: ``backbone.*``, ``heads.{0,1}.*``),
``structure.*`` (:mod:`~dgnet_edge.models.structure`), ``decoder.*``
(:mod:`~dgnet_edge.models.decoder`), ``discriminator.*`` (:mod:`~dgnet_edge.models.discriminator`).
For example ``structure.stem.0.conv.weight``, ``decoder.blocks.0.conv1.conv.weight``,
``decoder.mlp_gamma.0.fc.0.weight``, ``discriminator.scales.0.convs.0.conv.weight``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from dgnet_edge.models.decoder import Decoder
from dgnet_edge.models.discriminator import MultiScaleDiscriminator
from dgnet_edge.models.reid import PARTS, ReidNet
from dgnet_edge.models.structure import StructureEncoder


class SwapOutput(NamedTuple):
    x_ba: torch.Tensor  # structure of b, appearance of a
    x_ab: torch.Tensor  # structure of a, appearance of b


class DGNet(nn.Module):
    """E_a + E_s + G + D. Defaults are the paper's Market config.

    Args:
        appearance: E_a, a :class:`ReidNet` with max pooling and two ID heads; its code size (trunk
            channels x 4) sets the decoder's MLP input: 8192 -> 4 slices of 2048 for ResNet-50.
        gen_dim: width of the structure encoder's first conv; the structure code has
            ``gen_dim * 2**n_downsample * 2`` channels (128).
        n_downsample: stride-2 stages of E_s, and upsampling stages of G.
        n_res: residual blocks of E_s and of G (G's carry two AdaIN layers each).
        mlp_dim: hidden width of the AdaIN parameter MLPs.
        dilations: dilations of E_s's ASPP (each smaller than the structure code's height and width).
        dis_dim: width of D's first convs.
        dis_layers: stride-2 stages of each D scale.
        dis_res: residual blocks of each D scale.
        dis_scales: D's scales.
        activation: ``lrelu`` (0.2) or ``relu``, for E_s, G and D.
        pad_type: ``reflect`` or ``zero``, for E_s, G and D.
        gen_init: init of E_s and G (``kaiming`` in the paper).
        dis_init: init of D (``gaussian`` in the paper).
        structure_input: what E_s sees: ``gray`` (the paper) or ``edges`` (see
            :mod:`~dgnet_edge.models.structure`).
    """

    def __init__(
        self,
        appearance: ReidNet,
        gen_dim: int = 16,
        n_downsample: int = 2,
        n_res: int = 4,
        mlp_dim: int = 512,
        dilations: tuple[int, ...] = (3, 6, 9),
        dis_dim: int = 32,
        dis_layers: int = 2,
        dis_res: int = 4,
        dis_scales: int = 3,
        activation: str = "lrelu",
        pad_type: str = "reflect",
        gen_init: str = "kaiming",
        dis_init: str = "gaussian",
        structure_input: str = "gray",
    ):
        super().__init__()
        self.appearance = appearance
        self.structure = StructureEncoder(gen_dim, n_downsample, n_res, dilations, activation, pad_type, gen_init,
                                          structure_input)
        self.decoder = Decoder(
            self.structure.out_channels,
            appearance.code_dim,
            n_res,
            n_downsample,
            out_channels=3,
            mlp_dim=mlp_dim,
            mlp_splits=PARTS,
            activation=activation,
            pad_type=pad_type,
            init=gen_init,
        )
        self.discriminator = MultiScaleDiscriminator(
            3, dis_dim, dis_layers, dis_res, dis_scales, "none", activation, pad_type, dis_init
        )

    def encode_appearance(self, images: torch.Tensor) -> torch.Tensor:
        """The appearance code (B, code_dim), detached from E_a (E_a's ID heads are not run)."""
        return self.appearance.appearance(self.appearance.forward_features(images)).detach()

    def encode_structure(self, images: torch.Tensor) -> torch.Tensor:
        """The structure code (B, C, H/4, W/4) of normalised RGB images (gray conversion inside)."""
        return self.structure(images)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(appearance_code, structure_code) of a normalised RGB batch."""
        return self.encode_appearance(images), self.encode_structure(images)

    def generate(self, structure_code: torch.Tensor, appearance_code: torch.Tensor) -> torch.Tensor:
        """G: the image with this structure and this appearance."""
        return self.decoder(structure_code, appearance_code)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """G(E_s(x), E_a(x)): each image rebuilt from its own codes."""
        appearance_code, structure_code = self.encode(images)
        return self.generate(structure_code, appearance_code)

    def swap(self, x_a: torch.Tensor, x_b: torch.Tensor) -> SwapOutput:
        """Exchange appearance between two batches: ``x_ba`` = b's structure dressed in a's appearance,
        ``x_ab`` = a's structure in b's appearance."""
        f_a, s_a = self.encode(x_a)
        f_b, s_b = self.encode(x_b)
        return SwapOutput(self.generate(s_b, f_a), self.generate(s_a, f_b))

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor) -> SwapOutput:
        return self.swap(x_a, x_b)
