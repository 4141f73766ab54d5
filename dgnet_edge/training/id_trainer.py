"""ID (cross-entropy) training of the teacher or of the appearance encoder E_a alone.

Stages:
  ``teacher``   the teacher (config section ``teacher``: avg pooling, one ID head);
  ``baseline``  E_a without the generator (section ``appearance``: max pooling, two heads,
                both trained with cross-entropy) — the reference DG-Net is compared with.

Launch:
  dgnet-edge train --config synth_small --stage teacher                    # CPU or one GPU
  torchrun --nproc_per_node 4 -m dgnet_edge train --config teacher_market --stage teacher

Optimiser as the reference baseline: SGD, Nesterov momentum 0.9, weight decay 5e-4, the trunk at
0.1x the heads' lr, x0.1 at each milestone epoch, optional linear warm-up. On CUDA, autocast
(bf16 where supported, else fp16 with a GradScaler); a step whose loss is not finite is skipped
and logged. Checkpoints (``checkpoints/last.pt``) are written at the end of every epoch, on
Ctrl-C and at a time limit; ``resume`` continues from the exact step, data order and RNG state.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dgnet_edge.config import Config, apply_override, config_from_dict
from dgnet_edge.data.augment import BatchAugment
from dgnet_edge.data.registry import build_dataset
from dgnet_edge.data.train_set import TrainImages
from dgnet_edge.device import resolve_device
from dgnet_edge.errors import CheckpointError, UsageError
from dgnet_edge.models import ReidEmbedder, ReidNet, build_reid_net
from dgnet_edge.models.embedder import numpy_embed
from dgnet_edge.retrieval import rank_dataset
from dgnet_edge.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from dgnet_edge.training.distributed import DistEnv
from dgnet_edge.training.interrupt import stop_on_interrupt
from dgnet_edge.training.progress import TrainProgress
from dgnet_edge.training.run_log import RunLog
from dgnet_edge.training.schedule import id_lr_factor

log = logging.getLogger(__name__)

STAGES = ("teacher", "baseline")


def net_config(cfg: Config, stage: str):
    return cfg.teacher if stage == "teacher" else cfg.appearance


@dataclass
class TrainResult:
    checkpoint: Path
    step: int
    seconds: float
    stopped: str | None  # None when the schedule completed, else "interrupted" / "time limit"
    metrics: dict[str, float] | None


def _amp(device: torch.device, enabled: bool) -> tuple[Any, torch.amp.GradScaler]:
    if not enabled or device.type != "cuda":
        return nullcontext, torch.amp.GradScaler("cuda", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return (lambda: torch.autocast("cuda", dtype=dtype)), torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)


def evaluate_net(net: ReidNet, cfg: Config, device: torch.device, on_batch=None) -> dict[str, float]:
    """Rank-1/5/10, mAP, mINP (percent) of ``net`` on the config's query/gallery split."""
    dataset = build_dataset(cfg.data.dataset, cfg.data.root)
    embedder = ReidEmbedder(net, cfg.data.mean, cfg.data.std, flip=cfg.eval.flip).to(device)
    was_training = net.training
    run = rank_dataset(
        numpy_embed(embedder, device),
        dataset,
        cfg.data.height,
        cfg.data.width,
        heads=len(net.heads),
        alpha=cfg.eval.alpha,
        ap=cfg.eval.ap,
        with_rerank=cfg.eval.rerank,
        batch_size=cfg.eval.batch_size,
        workers=cfg.data.workers,
        on_batch=on_batch,
    )
    net.train(was_training)
    return run.result.as_dict()


def _check_same_network(cfg: Config, state: dict[str, Any], stage: str, path: Path) -> None:
    saved = net_config(config_from_dict(state["config"], f"{path} (config)"), stage)
    if saved != net_config(cfg, stage):
        raise CheckpointError(f"{path}: the checkpoint's network ({saved}) differs from the config's ({net_config(cfg, stage)})")


def resume_config(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The config a checkpoint was trained with, with dotted overrides (e.g. more epochs)."""
    state = load_checkpoint(path)
    tree = state["config"]
    for override in overrides:
        apply_override(tree, override)
    return config_from_dict(tree, f"{path} (config)")


class IdTrainer:
    """One training run; :meth:`run` trains to the end of the schedule or until stopped."""

    def __init__(self, cfg: Config, stage: str, out_dir: Path, resume: Path | None = None, progress: bool = True):
        if stage not in STAGES:
            raise UsageError(f"unknown stage {stage!r} for ID training: expected one of {', '.join(STAGES)}")
        self.dist = DistEnv.from_env()
        self.device = resolve_device(cfg.device, self.dist.local_rank)
        self.dist.init(self.device)
        self.stage = stage
        self.out_dir = out_dir
        self.show_progress = progress and self.dist.is_main
        state = load_checkpoint(resume, kinds=(stage,)) if resume is not None else None
        if state is not None:
            _check_same_network(cfg, state, stage, resume)
        self.cfg = cfg
        torch.manual_seed(cfg.seed + self.dist.rank)

        dataset = build_dataset(cfg.data.dataset, cfg.data.root)
        self.train_set = TrainImages.load(dataset.train, cfg.data.height, cfg.data.width, cfg.data.workers)
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
        self.optimizer = torch.optim.SGD(
            [
                {"params": self.net.backbone_parameters(), "lr": t.lr * t.backbone_lr_mult, "base_lr": t.lr * t.backbone_lr_mult},
                {"params": self.net.head_parameters(), "lr": t.lr, "base_lr": t.lr},
            ],
            lr=t.lr,
            momentum=t.momentum,
            nesterov=t.nesterov and t.momentum > 0,
            weight_decay=t.weight_decay,
        )
        self.autocast, self.scaler = _amp(self.device, t.amp)
        self.augment = BatchAugment(cfg.data.mean, cfg.data.std, cfg.data.pad, cfg.data.flip, cfg.data.erasing_p,
                                    torch.Generator().manual_seed(cfg.seed * 7919 + self.dist.rank))
        self.iters_per_epoch = self.train_set.batches_per_epoch(cfg.data.batch_size, self.dist.world_size)
        if self.iters_per_epoch == 0:
            raise UsageError(f"batch size {cfg.data.batch_size} is larger than the training set ({len(self.train_set)} images)")
        self.step = 0
        self.skipped_steps = 0
        self.best_map = -1.0
        if state is not None:
            self._load_state(state)

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.stage,
            "config": self.cfg.to_dict(),
            "num_classes": self.train_set.num_classes,
            "models": {self.stage_model_name: self.net.state_dict()},
            "optimizers": {"id": self.optimizer.state_dict()},
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "skipped_steps": self.skipped_steps,
            "best_map": self.best_map,
            "rng": {**rng_state(), "augment": self.augment.generator.get_state()},
        }

    @property
    def stage_model_name(self) -> str:
        return "teacher" if self.stage == "teacher" else "appearance"

    def _load_state(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["models"][self.stage_model_name])
        self.optimizer.load_state_dict(state["optimizers"]["id"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = state["step"]
        self.skipped_steps = state["skipped_steps"]
        self.best_map = state["best_map"]
        restore_rng_state(state["rng"])
        self.augment.generator.set_state(state["rng"]["augment"])

    def save(self, name: str = "last.pt") -> Path | None:
        if not self.dist.is_main:
            return None
        return save_checkpoint(self.out_dir / "checkpoints" / name, self.state_dict())

    # -- training ----------------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        return self.cfg.id_train.epochs * self.iters_per_epoch

    def _set_lr(self) -> float:
        t = self.cfg.id_train
        factor = id_lr_factor(self.step, self.iters_per_epoch, t.warmup_epochs, t.milestones, t.gamma)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        return self.optimizer.param_groups[-1]["lr"]

    def train_step(self, index: torch.Tensor) -> dict[str, float] | None:
        """One optimisation step on the images at ``index``; None if skipped (non-finite loss)."""
        images = self.train_set.pixels[index].to(self.device, non_blocking=True)
        labels = self.train_set.labels[index].to(self.device, non_blocking=True)
        x = self.augment(images)
        lr = self._set_lr()
        with self.autocast():
            logits = self.model(x).logits
            losses = [F.cross_entropy(z.float(), labels) for z in logits]
            loss = sum(losses)
        self.optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):  # host sync: cheap next to a ResNet step
            self.skipped_steps += 1
            log.warning("step %d: non-finite loss (%s), step skipped", self.step, loss.item())
            return None
        self.scaler.scale(loss).backward()
        if self.cfg.id_train.clip_grad is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.id_train.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        acc = (logits[0].argmax(1) == labels).float().mean()
        return {"loss": loss.item(), "acc": acc.item(), "lr": lr}

    def run(self) -> TrainResult:
        cfg, t = self.cfg, self.cfg.id_train
        runlog = RunLog(self.out_dir, tensorboard=self.dist.is_main) if self.dist.is_main else None
        if self.dist.is_main:
            (self.out_dir / "config.yaml").write_text(self.cfg.to_yaml())
            log.info(
                "%s: %d images, %d ids, %d steps/epoch x %d epochs on %s",
                self.stage, len(self.train_set), self.train_set.num_classes, self.iters_per_epoch, t.epochs, self.device,
            )
        self.net.train()
        started = time.monotonic()
        seen = 0
        last = None
        with stop_on_interrupt(None if t.max_minutes is None else t.max_minutes * 60) as stop, \
                TrainProgress(self.total_steps, self.step, enabled=self.show_progress) as bar:
            while self.step < self.total_steps and not stop.stop:
                epoch, offset = divmod(self.step, self.iters_per_epoch)
                batches = self.train_set.epoch_batches(epoch, cfg.data.batch_size, cfg.seed, self.dist.rank, self.dist.world_size)
                for index in batches[offset:]:
                    stats = self.train_step(index)
                    self.step += 1
                    seen += len(index)
                    if stats is not None:
                        last = stats
                        bar.update(self.step, stats)
                        if runlog and self.step % t.log_every == 0:
                            elapsed = max(time.monotonic() - started, 1e-9)
                            runlog.write("train", self.step, {"epoch": epoch, **stats, "images_per_s": seen * self.dist.world_size / elapsed})
                    if stop.stop:
                        break
                else:
                    self._end_of_epoch(epoch + 1, runlog, bar)
            stopped = stop.reason if self.step < self.total_steps else None
        ckpt = self.save()
        metrics = None
        if stopped is None and self.dist.is_main:
            metrics = evaluate_net(self.net, cfg, self.device)
            runlog.write("eval", self.step, metrics)
            (self.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if runlog:
            runlog.close()
        self.dist.barrier()
        self.dist.shutdown()
        if last and not math.isfinite(last["loss"]):
            log.warning("training ended on a non-finite loss")
        return TrainResult(ckpt or self.out_dir / "checkpoints" / "last.pt", self.step, time.monotonic() - started, stopped, metrics)

    def _end_of_epoch(self, epochs_done: int, runlog: RunLog | None, bar: TrainProgress) -> None:
        self.save()
        every = self.cfg.id_train.eval_every
        if every and epochs_done % every == 0 and epochs_done < self.cfg.id_train.epochs and self.dist.is_main:
            bar.note("evaluating")
            metrics = evaluate_net(self.net, self.cfg, self.device)
            runlog.write("eval", self.step, metrics)
            log.info("epoch %d: rank-1 %.1f, mAP %.1f", epochs_done, metrics["rank1"], metrics["mAP"])
            if metrics["mAP"] > self.best_map:
                self.best_map = metrics["mAP"]
                self.save("best.pt")
        self.dist.barrier()


def train_id(cfg: Config, stage: str, out_dir: Path | None = None, resume: Path | None = None, progress: bool = True) -> TrainResult:
    """Train the teacher (``stage="teacher"``) or E_a alone (``"baseline"``)."""
    return IdTrainer(cfg, stage, out_dir or cfg.out_dir, resume, progress).run()
