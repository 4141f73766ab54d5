"""Stage ``distil``: E_a learns from generated images, G frozen (config section ``distil``).

DG-Net's discriminative gain comes from E_a seeing very many swaps over a long schedule, the
teacher's soft label on each. With G frozen after the generative stage, the swaps are rendered once
into a bank (:mod:`~dgnet_edge.training.swap_bank`) and each step draws from it. A step:

- real images (padded crop, flip, random erasing): cross-entropy on both heads, as stage ``baseline``;
- generated images (``distil.source``), in their own forward pass (their own BatchNorm batch):
  ``teacher_w`` x (``kl_w`` x KL(head 1 || teacher's soft label) + ``fine_w`` x CE(head 2, the structure
  provider's label)), the official primary and fine-grained losses.

The controls run the same schedule with another generated batch: ``mixup`` / ``cutmix`` mix two
real images (the teacher labels the mix, head 2 learns the mix of the two labels) and ``none`` trains
on real images alone. All draws are pure functions of the step, so ``--resume`` replays the run.

Launch:
  dgnet-edge train --stage distil --config distil_synth_small --teacher runs/q/model/checkpoints/last.pt \\
      --generator runs/q/dgnet/checkpoints/last.pt --out runs/distil
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from dgnet_edge.checkpoint import load_checkpoint
from dgnet_edge.config import Config, config_from_dict
from dgnet_edge.errors import CheckpointError, ConfigError
from dgnet_edge.models import build_reid_net
from dgnet_edge.models.factory import dgnet_from_state
from dgnet_edge.training.dgnet_trainer import load_teacher
from dgnet_edge.training.frozen import teacher_labels
from dgnet_edge.training.id_trainer import amp_setup
from dgnet_edge.training.schedule import step_lr_factor
from dgnet_edge.training.swap_bank import SwapBank, load_or_render, render_swap_bank
from dgnet_edge.training.trainer import Trainer, TrainResult, all_reduce_grads, evaluate_net

log = logging.getLogger(__name__)

BANK_FILE = "swap_bank.pt"


class DistilBatch(NamedTuple):
    real: torch.Tensor  # indices into the training set
    generated: torch.Tensor  # bank indices (swaps), or (2, B) training-set indices to mix
    mirror: torch.Tensor  # (B,) bool: flip the generated image
    lam: float  # mixup / CutMix: the first image's share
    box: tuple[int, int, int, int]  # CutMix: (top, left, height, width) taken from the second image


def cutmix_box(lam: float, height: int, width: int, g: torch.Generator) -> tuple[int, int, int, int]:
    """A box of area about (1 - lam) of the image, centred at a uniform point, clipped to the image."""
    cut = (1.0 - lam) ** 0.5
    ch, cw = round(height * cut), round(width * cut)
    cy, cx = int(torch.randint(height, (1,), generator=g)), int(torch.randint(width, (1,), generator=g))
    top, left = max(cy - ch // 2, 0), max(cx - cw // 2, 0)
    bottom, right = min(cy + (ch + 1) // 2, height), min(cx + (cw + 1) // 2, width)
    return top, left, bottom - top, right - left


class DistilTrainer(Trainer):
    kind = "distil"

    def __init__(self, cfg: Config, out_dir: Path, teacher: Path | None, generator: Path | None,
                 resume: Path | None = None, progress: bool = True):
        state = load_checkpoint(resume, kinds=("distil",)) if resume is not None else None
        if state is not None:
            saved = config_from_dict(state["config"], f"{resume} (config)")
            if saved.appearance != cfg.appearance:
                raise CheckpointError(f"{resume}: the checkpoint's network differs from the config's")
            teacher = teacher or (Path(state["teacher"]) if state.get("teacher") else None)
            generator = generator or (Path(state["generator"]) if state.get("generator") else None)
        d = cfg.distil
        if teacher is None and (d.source != "none" or d.init == "teacher"):
            raise ConfigError(f"distil.source={d.source}, distil.init={d.init}: give the teacher checkpoint, "
                              "--teacher CKPT (stage teacher or baseline)")
        if generator is None and (d.source == "swaps" or d.init == "generator"):
            raise ConfigError(f"distil.source={d.source}, distil.init={d.init}: give the DG-Net checkpoint whose "
                              "generator renders the swaps, --generator CKPT (stage dgnet)")
        super().__init__(cfg, out_dir, progress)
        self.teacher_path = Path(teacher) if teacher is not None else None
        self.generator_path = Path(generator) if generator is not None else None
        self.teacher = (load_teacher(self.teacher_path, self.train_set.num_classes, self.device)
                        if self.teacher_path is not None else None)
        self.net = build_reid_net(cfg.appearance, self.train_set.num_classes, appearance_code=True).to(self.device)
        self.bank: SwapBank | None = None
        if d.source == "swaps" or (state is None and d.init == "generator"):
            self._from_generator(init=state is None and d.init == "generator", bank=d.source == "swaps")
        if state is None and d.init == "teacher":
            self._init_from_teacher()
        self.dist.broadcast(self.net.state_dict().values())
        trunk_lr = d.lr * d.backbone_lr_mult
        self.optimizer = torch.optim.SGD(
            [{"params": self.net.backbone_parameters(), "lr": trunk_lr, "base_lr": trunk_lr},
             {"params": self.net.head_parameters(), "lr": d.lr, "base_lr": d.lr}],
            lr=d.lr, momentum=d.momentum, nesterov=d.momentum > 0, weight_decay=d.weight_decay,
        )
        self.autocast, self.scaler = amp_setup(self.device, d.amp)
        self.augment = self.make_augment()
        self.iters_per_epoch = self.train_set.batches_per_epoch(cfg.data.batch_size, self.dist.world_size)
        if self.iters_per_epoch == 0:
            raise ConfigError(f"batch size {cfg.data.batch_size} is larger than the training set ({len(self.train_set)} images)")
        if state is not None:
            self.load_state_dict(state)

    def _init_from_teacher(self) -> None:
        """The teacher's whole network when it is an E_a like this one (stage baseline), else its trunk."""
        try:
            self.net.load_state_dict(self.teacher.state_dict())
        except RuntimeError:
            try:
                self.net.backbone.load_state_dict(self.teacher.backbone.state_dict())
            except RuntimeError as e:
                raise ConfigError(f"distil.init=teacher: the teacher's trunk does not fit E_a's "
                                  f"({str(e).splitlines()[0]})") from None

    def _from_generator(self, init: bool, bank: bool) -> None:
        """E_a's start from the DG-Net checkpoint (``init``) and the swap bank it renders (``bank``)."""
        generator = load_checkpoint(self.generator_path, kinds=("dgnet",))
        model, gen_cfg = dgnet_from_state(generator, self.generator_path)
        size = (gen_cfg.data.height, gen_cfg.data.width)
        if size != (self.cfg.data.height, self.cfg.data.width):
            raise ConfigError(f"--generator {self.generator_path}: trained at {size[0]}x{size[1]}, but this run's "
                              f"images are {self.cfg.data.height}x{self.cfg.data.width}")
        if init:
            try:
                self.net.load_state_dict(model.appearance.state_dict())
            except RuntimeError as e:
                raise ConfigError(f"distil.init=generator: the DG-Net checkpoint's E_a does not fit this run's "
                                  f"({str(e).splitlines()[0]})") from None
        if not bank:
            return
        d = self.cfg.distil
        source = {"generator": str(self.generator_path.resolve()), "generator_step": generator.get("step"),
                  "teacher": str(self.teacher_path.resolve()), "size": d.bank_size, "seed": self.cfg.seed,
                  "train_images": len(self.train_set), "train_bn": d.train_bn}
        model = model.to(self.device)

        def render() -> SwapBank:
            log.info("rendering %d swaps into %s", d.bank_size, self.out_dir / BANK_FILE)
            return render_swap_bank(model, self.teacher, self.train_set, d.bank_size, seed=self.cfg.seed,
                                    mean=self.cfg.data.mean, std=self.cfg.data.std, device=self.device,
                                    train_bn=d.train_bn, source=source)

        if self.dist.is_main:
            self.bank = load_or_render(self.out_dir / BANK_FILE, source, render)
        self.dist.barrier()
        if self.bank is None:
            self.bank = SwapBank.load(self.out_dir / BANK_FILE)

    # -- schedule and data ---------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        return self.cfg.distil.steps

    @property
    def max_minutes(self) -> float | None:
        return self.cfg.distil.max_minutes

    @property
    def log_every(self) -> int:
        return self.cfg.distil.log_every

    def generated_draw(self, step: int) -> tuple[torch.Tensor, torch.Tensor, float, tuple[int, int, int, int]]:
        """The generated batch of ``step`` (a pure function of the step and the process)."""
        d = self.cfg.distil
        g = torch.Generator().manual_seed((self.cfg.seed * 1_000_003 + step) * 64 + self.dist.rank)
        n = d.batch_generated
        mirror = torch.rand(n, generator=g) < 0.5
        if d.source == "swaps":
            return torch.randint(len(self.bank), (n,), generator=g), mirror, 1.0, (0, 0, 0, 0)
        if d.source == "none":
            return torch.empty(0, dtype=torch.int64), mirror, 1.0, (0, 0, 0, 0)
        pairs = torch.randint(len(self.train_set), (2, n), generator=g)
        lam = float(torch.rand((), generator=g))
        box = (0, 0, 0, 0)
        if d.source == "cutmix":
            h, w = self.train_set.pixels.shape[1:3]
            box = cutmix_box(lam, h, w, g)
            lam = 1.0 - box[2] * box[3] / (h * w)
        return pairs, mirror, lam, box

    def batches(self, start: int) -> Iterator[DistilBatch]:
        epoch, offset = divmod(start, self.iters_per_epoch)
        step = start
        while True:
            for real in self.train_set.epoch_batches(epoch, self.cfg.data.batch_size, self.cfg.seed, self.dist.rank,
                                                     self.dist.world_size)[offset:]:
                yield DistilBatch(real, *self.generated_draw(step))
                step += 1
            epoch, offset = epoch + 1, 0

    def _normalise(self, pixels: torch.Tensor, mirror: torch.Tensor) -> torch.Tensor:
        x = pixels.to(self.device).permute(0, 3, 1, 2).float() / 255
        x = torch.where(mirror.to(self.device).view(-1, 1, 1, 1), x.flip(3), x)
        mean = torch.tensor(self.cfg.data.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.cfg.data.std, device=self.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def generated(self, batch: DistilBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images, teacher's soft labels, head-2 target as class probabilities) of the generated batch."""
        d, classes = self.cfg.distil, self.train_set.num_classes
        if d.source == "swaps":
            x = self._normalise(self.bank.pixels[batch.generated], batch.mirror)
            probs = self.bank.teacher_probs[batch.generated].float().to(self.device)
            fine = F.one_hot(self.bank.structure_labels[batch.generated], classes).float().to(self.device)
            return x, probs, fine
        first, second = self.train_set.pixels[batch.generated[0]], self.train_set.pixels[batch.generated[1]]
        if d.source == "mixup":
            mixed = first.float() * batch.lam + second.float() * (1 - batch.lam)
        else:
            top, left, h, w = batch.box
            mixed = first.float().clone()
            mixed[:, top:top + h, left:left + w] = second[:, top:top + h, left:left + w].float()
        x = self._normalise(mixed.round().clamp(0, 255).to(torch.uint8), batch.mirror)
        labels = [F.one_hot(self.train_set.labels[i], classes).float() for i in batch.generated]
        fine = (batch.lam * labels[0] + (1 - batch.lam) * labels[1]).to(self.device)
        return x, teacher_labels(self.teacher, x, d.train_bn), fine

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = self.base_state()
        state["models"] = {"appearance": self.net.state_dict()}
        state["optimizers"] = {"id": self.optimizer.state_dict()}
        state["scaler"] = self.scaler.state_dict()
        state["teacher"] = str(self.teacher_path) if self.teacher_path is not None else None
        state["generator"] = str(self.generator_path) if self.generator_path is not None else None
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_base_state(state)
        self.net.load_state_dict(state["models"]["appearance"])
        self.optimizer.load_state_dict(state["optimizers"]["id"])
        self.scaler.load_state_dict(state["scaler"])

    # -- one step ------------------------------------------------------------------------------
    def _set_lr(self) -> float:
        d = self.cfg.distil
        factor = step_lr_factor(self.step, d.milestones, d.gamma)
        if d.warmup_steps and self.step < d.warmup_steps:
            factor *= 0.1 + 0.9 * self.step / d.warmup_steps
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        return self.optimizer.param_groups[-1]["lr"]

    def train_step(self, batch: DistilBatch) -> dict[str, float] | None:
        d = self.cfg.distil
        labels = self.train_set.labels[batch.real].to(self.device)
        x = self.augment(self.train_set.pixels[batch.real].to(self.device))
        lr = self._set_lr()
        self.net.train()
        with self.autocast():
            logits = self.net(x).logits
            loss_id = sum(F.cross_entropy(z.float(), labels) for z in logits)
            kl = fine = x.new_zeros(())
            if d.source != "none":
                g, probs, fine_target = self.generated(batch)
                g_logits = self.net(g).logits
                kl = F.kl_div(F.log_softmax(g_logits[0].float(), 1), probs, reduction="batchmean")
                fine = F.cross_entropy(g_logits[-1].float(), fine_target)
            loss_gen = d.teacher_w * (d.kl_w * kl + d.fine_w * fine)
            total = loss_id + loss_gen
        self.optimizer.zero_grad(set_to_none=True)
        acc = (logits[0].argmax(1) == labels).float().mean()
        means = self.dist.mean(torch.stack([total.detach(), loss_id.detach(), kl.detach(), fine.detach(), acc]))
        if not torch.isfinite(means[0]):
            self.skip("loss", means[0])
            return None
        self.scaler.scale(total).backward()
        all_reduce_grads(list(self.net.parameters()), self.dist)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        total_m, id_m, kl_m, fine_m, acc_m = means.tolist()
        return {"loss": total_m, "id": id_m, "kl": kl_m, "fine": fine_m, "acc": acc_m, "lr": lr}

    def after_step(self) -> None:
        if self.step % self.cfg.distil.save_every == 0 and self.step < self.total_steps:
            self.save()

    def final_metrics(self) -> dict[str, Any]:
        return evaluate_net(self.net, self.cfg, self.device)


def train_distil(cfg: Config, teacher: Path | None, generator: Path | None, out_dir: Path | None = None,
                 resume: Path | None = None, progress: bool = True) -> TrainResult:
    return DistilTrainer(cfg, out_dir or cfg.out_dir, teacher, generator, resume, progress).run()
