"""Learning-rate schedules as pure functions of the iteration."""

from __future__ import annotations

from bisect import bisect_right


def id_lr_factor(iteration: int, iters_per_epoch: int, warmup_epochs: float, milestones: tuple[int, ...], gamma: float) -> float:
    """Multiplier of the base lr for ID training: linear warm-up from 0.1 over ``warmup_epochs``
    (the reference baseline scales the loss instead, which is the same for SGD up to weight
    decay), then x``gamma`` at each milestone epoch."""
    epoch = iteration / iters_per_epoch
    factor = step_lr_factor(int(epoch), milestones, gamma)
    if warmup_epochs > 0 and epoch < warmup_epochs:
        factor *= 0.1 + 0.9 * epoch / warmup_epochs
    return factor


def step_lr_factor(iteration: int, milestones: tuple[int, ...], gamma: float) -> float:
    """Multiplier of the base lr: x``gamma`` at each milestone iteration passed."""
    return gamma ** bisect_right(milestones, iteration)
