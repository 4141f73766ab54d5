"""ID (cross-entropy) training of the teacher or of the appearance encoder E_a alone.

Stages:
  ``teacher``   the teacher (config section ``teacher``: avg pooling, one ID head);
  ``baseline``  E_a without the generator (section ``appearance``: max pooling, two heads,
                both trained with cross-entropy) — the reference DG-Net is compared with.

Launch:
  dgnet-edge train --config synth_small --stage teacher                    # CPU or one GPU
  torchrun --nproc_per_node 4 -m dgnet_edge train --config teacher_market --stage teacher

Optimiser as the reference baseline: SGD, Nesterov momentum 0.9, weight decay 5e-4, the trunk at
``backbone_lr_mult`` x the heads' lr, x``gamma`` at each milestone epoch, optional linear warm-up.
On CUDA, autocast (bf16 where supported, else fp16 with a GradScaler); a step whose loss is not
finite is skipped and logged. Checkpoints (``checkpoints/last.pt``) are written at the end of
every epoch, on Ctrl-C and at a time limit; ``resume`` continues from the exact step, data order
and RNG state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dgnet_edge.checkpoint import load_checkpoint
from dgnet_edge.config import Config, NetConfig, config_from_dict
from dgnet_edge.errors import CheckpointError, UsageError
from dgnet_edge.models import build_reid_net
from dgnet_edge.training.schedule import id_lr_factor
from dgnet_edge.training.trainer import Trainer, TrainResult, evaluate_net

STAGES = ("teacher", "baseline")


def net_config(cfg: Config, stage: str) -> NetConfig:
    return cfg.teacher if stage == "teacher" else cfg.appearance


def model_key(stage: str) -> str:
    """Name of the network in the checkpoint's ``models``."""
    return "teacher" if stage == "teacher" else "appearance"


def amp_setup(device: torch.device, enabled: bool) -> tuple[Any, torch.amp.GradScaler]:
    """(autocast context factory, GradScaler): bf16 where supported, else fp16 with loss scaling."""
    if not enabled or device.type != "cuda":
        return nullcontext, torch.amp.GradScaler("cuda", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return (lambda: torch.autocast("cuda", dtype=dtype)), torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)


class IdTrainer(Trainer):
    """Cross-entropy training of one re-id network, epoch by epoch."""

    def __init__(self, cfg: Config, stage: str, out_dir: Path, resume: Path | None = None, progress: bool = True):
        if stage not in STAGES:
            raise UsageError(f"unknown stage {stage!r} for ID training: expected one of {', '.join(STAGES)}")
        self.kind = stage
        state = load_checkpoint(resume, kinds=(stage,)) if resume is not None else None
        if state is not None:
            saved = net_config(config_from_dict(state["config"], f"{resume} (config)"), stage)
            if saved != net_config(cfg, stage):
                raise CheckpointError(f"{resume}: the checkpoint's network ({saved}) differs from the config's ({net_config(cfg, stage)})")
        super().__init__(cfg, out_dir, progress)
        if state is not None and state["num_classes"] != self.train_set.num_classes:
            raise CheckpointError(
                f"{resume}: trained on {state['num_classes']} identities, but {cfg.data.root} has {self.train_set.num_classes}"
            )
        self.net = build_reid_net(net_config(cfg, stage), self.train_set.num_classes, appearance_code=False).to(self.device)
        self.model: nn.Module = self.net
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        t = cfg.id_train
        trunk_lr = t.lr * t.backbone_lr_mult
        self.optimizer = torch.optim.SGD(
            [
                {"params": self.net.backbone_parameters(), "lr": trunk_lr, "base_lr": trunk_lr},
                {"params": self.net.head_parameters(), "lr": t.lr, "base_lr": t.lr},
            ],
            lr=t.lr,
            momentum=t.momentum,
            nesterov=t.nesterov and t.momentum > 0,
            weight_decay=t.weight_decay,
        )
        self.autocast, self.scaler = amp_setup(self.device, t.amp)
        self.augment = self.make_augment()
        self.iters_per_epoch = self.train_set.batches_per_epoch(cfg.data.batch_size, self.dist.world_size)
        if self.iters_per_epoch == 0:
            raise UsageError(f"batch size {cfg.data.batch_size} is larger than the training set ({len(self.train_set)} images)")
        self.best_map = -1.0
        if state is not None:
            self.load_state_dict(state)

    # -- schedule and data ---------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        return self.cfg.id_train.epochs * self.iters_per_epoch

    @property
    def max_minutes(self) -> float | None:
        return self.cfg.id_train.max_minutes

    @property
    def log_every(self) -> int:
        return self.cfg.id_train.log_every

    def batches(self, start: int) -> Iterator[torch.Tensor]:
        epoch, offset = divmod(start, self.iters_per_epoch)
        while True:
            yield from self.train_set.epoch_batches(epoch, self.cfg.data.batch_size, self.cfg.seed, self.dist.rank,
                                                    self.dist.world_size)[offset:]
            epoch, offset = epoch + 1, 0

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = self.base_state()
        state["models"] = {model_key(self.kind): self.net.state_dict()}
        state["optimizers"] = {"id": self.optimizer.state_dict()}
        state["scaler"] = self.scaler.state_dict()
        state["best_map"] = self.best_map
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_base_state(state)
        self.net.load_state_dict(state["models"][model_key(self.kind)])
        self.optimizer.load_state_dict(state["optimizers"]["id"])
        self.scaler.load_state_dict(state["scaler"])
        self.best_map = state["best_map"]

    # -- training ------------------------------------------------------------------------------
    def _set_lr(self) -> float:
        t = self.cfg.id_train
        factor = id_lr_factor(self.step, self.iters_per_epoch, t.warmup_epochs, t.milestones, t.gamma)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        return self.optimizer.param_groups[-1]["lr"]

    def train_step(self, index: torch.Tensor) -> dict[str, float] | None:
        images = self.train_set.pixels[index].to(self.device, non_blocking=True)
        labels = self.train_set.labels[index].to(self.device, non_blocking=True)
        x = self.augment(images)
        lr = self._set_lr()
        with self.autocast():
            logits = self.model(x).logits
            loss = sum(F.cross_entropy(z.float(), labels) for z in logits)
        self.optimizer.zero_grad(set_to_none=True)
        acc = (logits[0].argmax(1) == labels).float().mean()
        # The loss and accuracy of the whole batch, over all processes (a host sync, cheap next to a
        # ResNet step); a loss that is not finite in one process skips the step in all of them.
        means = self.dist.mean(torch.stack([loss.detach(), acc]))
        if not torch.isfinite(means[0]):
            self.skip("loss", means[0])
            return None
        self.scaler.scale(loss).backward()
        if self.cfg.id_train.clip_grad is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.id_train.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        loss_mean, acc_mean = means.tolist()
        return {"epoch": self.step // self.iters_per_epoch, "loss": loss_mean, "acc": acc_mean, "lr": lr}

    def after_step(self) -> None:
        if self.step % self.iters_per_epoch or self.step >= self.total_steps:
            return
        self.save()
        every, epochs_done = self.cfg.id_train.eval_every, self.step // self.iters_per_epoch
        if not every or epochs_done % every:
            return
        improved = False
        if self.dist.is_main:  # the others wait
            self.bar.note("evaluating")
            metrics = evaluate_net(self.net, self.cfg, self.device)
            self.runlog.write("eval", self.step, metrics)
            improved = metrics["mAP"] > self.best_map
            self.best_map = max(self.best_map, metrics["mAP"])
        if self.dist.any(improved, self.device):
            self.save("best.pt")

    def final_metrics(self) -> dict[str, Any]:
        return evaluate_net(self.net, self.cfg, self.device)


def train_id(cfg: Config, stage: str, out_dir: Path | None = None, resume: Path | None = None, progress: bool = True) -> TrainResult:
    """Train the teacher (``stage="teacher"``) or E_a alone (``"baseline"``)."""
    return IdTrainer(cfg, stage, out_dir or cfg.out_dir, resume, progress).run()
