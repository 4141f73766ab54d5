"""Running a network that is not being trained: the teacher, or a frozen copy of a part.

DG-Net labels generated batches with a fixed teacher and feeds them through frozen copies of its own
encoders, with BatchNorm on the generated batch's statistics (the official ``train_bn``): generated
images are not distributed as real ones, so the running statistics of real images would misjudge them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


def batchnorm_train(module: nn.Module) -> None:
    """eval() everything, then put BatchNorm layers back in train mode (batch statistics)."""
    module.eval()
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()


def frozen_call(module: nn.Module, x: torch.Tensor, batch_stats: bool) -> Any:
    """Run ``module`` as a frozen copy: detached weights (gradients reach ``x`` only), eval mode
    (BatchNorm on batch statistics with ``batch_stats``), its buffers left untouched."""
    params = {k: v.detach() for k, v in module.named_parameters()}
    buffers = {k: v.clone() for k, v in module.named_buffers()}
    was_training = module.training
    if batch_stats:
        batchnorm_train(module)
    else:
        module.eval()
    try:
        return functional_call(module, {**params, **buffers}, (x,))
    finally:
        module.train(was_training)


@torch.no_grad()
def teacher_labels(teacher: nn.Module, x: torch.Tensor, batch_stats: bool, keep_running_stats: bool = True) -> torch.Tensor:
    """The teacher's soft label of a normalised batch: softmax(x) + softmax(mirror), renormalised.

    ``batch_stats``: BatchNorm on the batch's statistics. ``keep_running_stats``: the running
    statistics are restored afterwards; off, the batches move them (stage ``dgnet`` does so, and
    checkpoints the teacher's buffers).
    """
    buffers = {k: v.clone() for k, v in teacher.named_buffers()} if keep_running_stats else None
    was_training = teacher.training
    if batch_stats:
        batchnorm_train(teacher)
    else:
        teacher.eval()
    try:
        probs = F.softmax(teacher(x).logits[0].float(), 1) + F.softmax(teacher(x.flip(3)).logits[0].float(), 1)
    finally:
        if buffers is not None:
            teacher.load_state_dict(buffers, strict=False)
        teacher.train(was_training)
    return probs / probs.sum(1, keepdim=True)
