"""What every training stage shares: device and processes, the step loop, stopping, logs, checkpoints.

A stage subclasses :class:`Trainer` and provides its batches (a pure function of the step, so a
resumed run replays the exact data), one optimisation step, and its state. The loop here runs
steps until the schedule ends or a stop is requested (Ctrl-C, time limit), logs every
``log_every`` steps, calls the stage's hooks, and always leaves ``checkpoints/last.pt`` behind.
Under torchrun every process runs this loop: they stop at the same step when any of them is asked to.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dgnet_edge.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from dgnet_edge.config import Config, config_from_dict
from dgnet_edge.data.augment import BatchAugment
from dgnet_edge.data.registry import build_dataset
from dgnet_edge.data.train_set import TrainImages, per_identity
from dgnet_edge.device import resolve_device
from dgnet_edge.models import ReidEmbedder, ReidNet
from dgnet_edge.models.embedder import numpy_embed
from dgnet_edge.retrieval import rank_dataset
from dgnet_edge.training.distributed import DistEnv
from dgnet_edge.training.interrupt import stop_on_interrupt
from dgnet_edge.training.progress import TrainProgress
from dgnet_edge.training.run_log import RunLog
from dgnet_edge.yaml_tree import apply_override

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    checkpoint: Path
    step: int
    seconds: float
    stopped: str | None  # None when the schedule completed, else "interrupted" / "time limit"
    metrics: dict[str, Any] | None


def resume_config(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The config a checkpoint was trained with, with dotted overrides (e.g. more epochs)."""
    tree = load_checkpoint(path)["config"]
    for override in overrides:
        apply_override(tree, override)
    return config_from_dict(tree, f"{path} (config)")


def evaluate_net(net: ReidNet, cfg: Config, device: torch.device) -> dict[str, Any]:
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
    )
    net.train(was_training)
    return run.result.as_dict()


def all_reduce_grads(params: list[nn.Parameter], dist_env: DistEnv) -> None:
    """Average gradients over processes in one flat buffer (for stages that run several forward
    and backward passes per step, which DistributedDataParallel's hooks do not follow)."""
    if not dist_env.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= dist_env.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


class Trainer:
    """Base of the training stages."""

    kind = "base"

    def __init__(self, cfg: Config, out_dir: Path, progress: bool = True):
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.dist = DistEnv.from_env()
        self.device = resolve_device(cfg.device, self.dist.local_rank)
        self.dist.init(self.device)
        self.show_progress = progress and self.dist.is_main
        self.step = 0
        self.skipped_steps = 0
        self.train_seconds = 0.0  # time inside train_step, summed over resumes
        torch.manual_seed(cfg.seed + self.dist.rank)
        dataset = build_dataset(cfg.data.dataset, cfg.data.root)
        records = dataset.train
        if cfg.data.per_identity is not None:
            records = per_identity(records, cfg.data.per_identity, cfg.seed)
        self.train_set = TrainImages.load(records, cfg.data.height, cfg.data.width, cfg.data.workers)
        self.runlog: RunLog | None = None
        self.augment: BatchAugment  # set by the stage, from make_augment

    def make_augment(self, pad_mode: str = "constant") -> BatchAugment:
        d = self.cfg.data
        generator = torch.Generator().manual_seed(self.cfg.seed * 7919 + self.dist.rank)
        return BatchAugment(d.mean, d.std, d.pad, d.flip, d.erasing_p, generator, pad_mode)

    # -- what a stage provides -----------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        raise NotImplementedError

    @property
    def max_minutes(self) -> float | None:
        return None

    @property
    def log_every(self) -> int:
        return 10

    def batches(self, start: int) -> Iterator[Any]:
        """The batches of steps ``start``, ``start + 1``, ... (a pure function of the step)."""
        raise NotImplementedError

    def train_step(self, batch: Any) -> dict[str, float] | None:
        """One optimisation step; returns the values to log, or None if it was skipped."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after every step (periodic evaluation, samples, snapshots)."""

    def final_metrics(self) -> dict[str, Any] | None:
        return None

    # -- shared machinery ----------------------------------------------------------------------
    def rng_state(self) -> dict[str, Any]:
        """This process's random streams: torch's (dropout) and the augmentation's."""
        return {**rng_state(), "augment": self.augment.generator.get_state()}

    def base_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "config": self.cfg.to_dict(),
            "num_classes": self.train_set.num_classes,
            "step": self.step,
            "skipped_steps": self.skipped_steps,
            "train_seconds": self.train_seconds,
            "rng": self.rng_state(),
        }

    def load_base_state(self, state: dict[str, Any]) -> None:
        """The step, counters and this process's random streams (under torchrun, each process's own
        from ``rng_by_rank``; a run resumed on another number of processes keeps the fresh streams
        of the processes the checkpoint has none for)."""
        self.step = state["step"]
        self.skipped_steps = state["skipped_steps"]
        self.train_seconds = state.get("train_seconds", 0.0)
        by_rank = state.get("rng_by_rank") or [state["rng"]]
        if self.dist.rank < len(by_rank):
            restore_rng_state(by_rank[self.dist.rank])
            self.augment.generator.set_state(by_rank[self.dist.rank]["augment"])
        else:
            log.warning("the checkpoint was written by %d process(es): process %d starts fresh random streams",
                        len(by_rank), self.dist.rank)

    def save(self, name: str = "last.pt") -> Path | None:
        """Every process calls this (the checkpoint keeps each one's random streams, for an exact
        resume); the main process writes."""
        by_rank = self.dist.gather_object(self.rng_state())
        if not self.dist.is_main:
            return None
        state = self.state_dict()
        if self.dist.enabled:
            state["rng_by_rank"] = by_rank
        return save_checkpoint(self.out_dir / "checkpoints" / name, state)

    def skip(self, what: str, value: torch.Tensor) -> None:
        self.skipped_steps += 1
        log.warning("step %d: non-finite %s (%s), step skipped", self.step, what, value.item())

    def run(self) -> TrainResult:
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.yaml").write_text(self.cfg.to_yaml())
            self.runlog = RunLog(self.out_dir)
            log.info("%s: %d images, %d ids, %d steps on %s", self.kind, len(self.train_set),
                     self.train_set.num_classes, self.total_steps, self.device)
        started = time.monotonic()
        seen = 0
        limit = None if self.max_minutes is None else self.max_minutes * 60
        with stop_on_interrupt(limit) as stop, TrainProgress(self.total_steps, self.step, enabled=self.show_progress) as bar:
            self.bar = bar
            for batch in self.batches(self.step):
                if self.step >= self.total_steps or self.dist.any(stop.stop, self.device):
                    break
                step_started = time.monotonic()
                stats = self.train_step(batch)
                self.train_seconds += time.monotonic() - step_started
                self.step += 1
                seen += 1
                if stats is not None:
                    bar.update(self.step, stats)
                    if self.runlog and self.step % self.log_every == 0:
                        rate = seen * self.cfg.data.batch_size * self.dist.world_size / max(time.monotonic() - started, 1e-9)
                        self.runlog.write("train", self.step, {**stats, "images_per_s": rate})
                self.after_step()
            stopped = (stop.reason or "stopped by another process") if self.step < self.total_steps else None
        checkpoint = self.save()
        metrics = None
        if stopped is None and self.dist.is_main:
            metrics = self.final_metrics()
            if metrics is not None:
                self.runlog.write("eval", self.step, metrics)
                (self.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if self.runlog:
            self.runlog.close()
        self.dist.barrier()
        self.dist.shutdown()
        return TrainResult(checkpoint or self.out_dir / "checkpoints" / "last.pt", self.step,
                           time.monotonic() - started, stopped, metrics)
