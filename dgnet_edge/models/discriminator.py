"""DG-Net's multi-scale discriminator D and its LSGAN losses.

D runs the same patch network, with its own weights, on the image and on two successively
down-sampled copies (3x3 average pooling, stride 2, padding 1, padding not counted). One scale
(defaults = the paper's Market config; reflection padding, biases, no norm, LeakyReLU 0.2):

    convs.0   conv1x1     3 -> 32
    convs.1   conv3x3    32 -> 32
    convs.2   conv3x3 s2 32 -> 32
    convs.3   conv3x3    32 -> 32
    convs.4   conv3x3 s2 32 -> 64
    blocks.0-3  residual blocks (64): conv3x3 LeakyReLU, conv3x3, + identity
    head      conv1x1 64 -> 1 (a real/fake score per patch)

Each further ``n_layer`` adds a conv3x3 (w -> w) and a conv3x3 s2 (w -> min(2w, 512)).

Losses (LSGAN, as DG-Net trains D and G):

- :func:`discriminator_loss`: sum over scales of ``mean(D(fake)^2) + mean((D(real) - 1)^2)``
  plus ``gp_weight`` (0.01) times, per scale, the batch mean of the squared gradient norm of
  ``D_s(real).sum()`` with respect to the real images (a zero-centred penalty on real data);
- :func:`generator_loss`: sum over scales of ``2 * mean((D(fake) - 1)^2)``.

State-dict keys: ``scales.{s}.convs.{i}.conv.{weight,bias}``,
``scales.{s}.blocks.{j}.conv{1,2}.conv.{weight,bias}``, ``scales.{s}.head.{weight,bias}``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dgnet_edge.models.layers import ConvBlock, ResBlock, init_weights


class PatchDiscriminator(nn.Module):
    """One scale of D: (B, in_channels, H, W) -> (B, 1, H/2**n_layer, W/2**n_layer) scores.

    Args:
        in_channels: image channels.
        dim: width of the first convs.
        n_layer: stride-2 stages.
        n_res: residual blocks before the head.
        norm: ``none`` (the paper), ``in`` or ``ln``.
        activation: ``lrelu`` (0.2) or ``relu``.
        pad_type: ``reflect`` or ``zero``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        dim: int = 32,
        n_layer: int = 2,
        n_res: int = 4,
        norm: str = "none",
        activation: str = "lrelu",
        pad_type: str = "reflect",
    ):
        super().__init__()
        kw = dict(norm=norm, activation=activation, pad_type=pad_type)
        convs = [ConvBlock(in_channels, dim, 1, **kw), ConvBlock(dim, dim, 3, 1, 1, **kw), ConvBlock(dim, dim, 3, 2, 1, **kw)]
        for _ in range(n_layer - 1):
            wider = min(2 * dim, 512)
            convs += [ConvBlock(dim, dim, 3, 1, 1, **kw), ConvBlock(dim, wider, 3, 2, 1, **kw)]
            dim = wider
        self.convs = nn.Sequential(*convs)
        self.blocks = nn.Sequential(*(ResBlock(dim, norm, activation, pad_type) for _ in range(n_res)))
        self.head = nn.Conv2d(dim, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.convs(x)))


class MultiScaleDiscriminator(nn.Module):
    """D: the image -> one score map per scale (full, 1/2, 1/4, ...).

    Args:
        in_channels: image channels.
        dim: width of each scale's first convs.
        n_layer: stride-2 stages per scale.
        n_res: residual blocks per scale.
        num_scales: scales (each a 3x3/s2 average pooling of the previous).
        norm: ``none`` (the paper), ``in`` or ``ln``.
        activation: ``lrelu`` (0.2) or ``relu``.
        pad_type: ``reflect`` or ``zero``.
        init: weight init (``gaussian``, N(0, 0.02), in the paper; see
            :func:`dgnet_edge.models.layers.init_weights`).
    """

    def __init__(
        self,
        in_channels: int = 3,
        dim: int = 32,
        n_layer: int = 2,
        n_res: int = 4,
        num_scales: int = 3,
        norm: str = "none",
        activation: str = "lrelu",
        pad_type: str = "reflect",
        init: str = "gaussian",
    ):
        super().__init__()
        self.scales = nn.ModuleList(
            PatchDiscriminator(in_channels, dim, n_layer, n_res, norm, activation, pad_type) for _ in range(num_scales)
        )
        init_weights(self, init)

    @staticmethod
    def downsample(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for i, scale in enumerate(self.scales):
            if i:
                x = self.downsample(x)
            outputs.append(scale(x))
        return outputs


class DiscriminatorLoss(NamedTuple):
    total: torch.Tensor  # adversarial + penalty: what D minimises
    adversarial: torch.Tensor
    penalty: torch.Tensor  # already weighted by gp_weight


def gradient_penalty(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Per sample: the sum of squared gradients of ``output.sum()`` w.r.t. ``inputs`` -> (B,).

    ``inputs`` must require grad and ``output`` depend on it; the graph is kept (create_graph) so
    the penalty can be back-propagated into the discriminator.
    """
    (grad,) = torch.autograd.grad(outputs=output.sum(), inputs=inputs, create_graph=True, retain_graph=True)
    return grad.pow(2).flatten(1).sum(1)


def discriminator_loss(
    discriminator: nn.Module, fake: torch.Tensor, real: torch.Tensor, gp_weight: float = 0.01
) -> DiscriminatorLoss:
    """LSGAN loss of D with the gradient penalty on real images (see the module docstring).

    ``fake`` is used as given: detach it from the generator before the call when only D is
    trained. ``real`` is detached and made to require grad here for the penalty.
    """
    real = real.detach().requires_grad_(True)
    outs_fake = discriminator(fake)
    outs_real = discriminator(real)
    adversarial = fake.new_zeros(())
    penalty = fake.new_zeros(())
    for out_fake, out_real in zip(outs_fake, outs_real):
        adversarial = adversarial + out_fake.pow(2).mean() + (out_real - 1).pow(2).mean()
        if gp_weight:
            penalty = penalty + gp_weight * gradient_penalty(out_real, real).mean()
    return DiscriminatorLoss(adversarial + penalty, adversarial, penalty)


def generator_loss(discriminator: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """LSGAN loss of G: sum over scales of ``2 * mean((D(fake) - 1)^2)``."""
    loss = fake.new_zeros(())
    for out in discriminator(fake):
        loss = loss + 2 * (out - 1).pow(2).mean()
    return loss
