"""DG-Net training: E_a, E_s, G and D together, guided by a trained teacher (stage ``dgnet``).

Launch:
  dgnet-edge train --config dgnet_market --stage dgnet --teacher runs/teacher_market/checkpoints/last.pt
  torchrun --nproc_per_node 4 -m dgnet_edge train --config dgnet_market --stage dgnet --teacher ...

Each step, as the official trainer: two batches (a, b) with a positive of the same identity per
image; E_s encodes structure, E_a appearance; G renders self-reconstructions, same-identity
reconstructions and the swaps x_ba (b's structure in a's appearance) and x_ab. D is updated first
(LSGAN with a gradient penalty on real images), then E_a, E_s and G on: self and same-identity
reconstruction (L1), GAN, appearance/structure code reconstruction and cycle reconstruction (their
weights grow from 0 after ``warm_iter``), ID on real and positive images, ID of a frozen E_a copy
on the swaps, and, on the swaps, the teacher's KL on head 1 (teacher softmax of image + mirror,
renormalised) plus the fine-grained loss on head 2 with the structure provider's label (the
teacher's weight grows from 0 after ``warm_teacher_iter``). Random erasing feeds only the ID passes.

Differences from the official code, on purpose: the warm-up weights and learning rates are pure
functions of the iteration, so ``--resume`` restores them exactly (the official resume loses the E_a
scheduler and the warm-up); the frozen E_a / E_s copies are the live modules run with detached
weights (no deep copy per step); D's weights are frozen during G's update (D's gradients from it
were discarded anyway); under torchrun, gradients are averaged over processes per optimiser step.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dgnet_edge.checkpoint import load_checkpoint
from dgnet_edge.config import Config, config_from_dict
from dgnet_edge.errors import CheckpointError, ConfigError
from dgnet_edge.models import DGNet, ReidNet, build_dgnet, discriminator_loss, generator_loss
from dgnet_edge.models.factory import load_reid_net
from dgnet_edge.training.frozen import frozen_call, teacher_labels
from dgnet_edge.training.id_trainer import amp_setup
from dgnet_edge.training.sample_grid import save_sample_grid
from dgnet_edge.training.schedule import step_lr_factor
from dgnet_edge.training.trainer import Trainer, TrainResult, all_reduce_grads, evaluate_net

PARTS = ("appearance", "structure", "decoder", "discriminator")


def load_teacher(path: Path, num_classes: int, device: torch.device) -> ReidNet:
    """The teacher network of a ``teacher`` checkpoint (or of a ``baseline`` or ``distil`` one: an E_a
    is such a network too, its first head the teacher's), checked against the training set."""
    state = load_checkpoint(path)
    if state.get("kind") not in ("teacher", "baseline", "distil"):
        raise CheckpointError(f"--teacher {path}: a {state.get('kind')!r} checkpoint; give one trained with "
                              "--stage teacher, baseline or distil")
    if state["num_classes"] != num_classes:
        raise CheckpointError(
            f"--teacher {path}: the teacher classifies {state['num_classes']} identities, but the training set has "
            f"{num_classes}; train the teacher on the same dataset"
        )
    net, _, _ = load_reid_net(path)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.to(device)


def l1(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (x - target.detach()).abs().mean()


class DGNetTrainer(Trainer):
    kind = "dgnet"

    def __init__(self, cfg: Config, out_dir: Path, teacher: Path | None, resume: Path | None = None, progress: bool = True):
        state = load_checkpoint(resume, kinds=("dgnet",)) if resume is not None else None
        if state is not None and "optimizers" not in state:
            raise CheckpointError(f"{resume}: imported weights without training state; training cannot resume from it")
        if state is not None:
            saved = config_from_dict(state["config"], f"{resume} (config)")
            if (saved.appearance, saved.dgnet.generator, saved.dgnet.discriminator) != (cfg.appearance, cfg.dgnet.generator, cfg.dgnet.discriminator):
                raise CheckpointError(f"{resume}: the checkpoint's networks differ from the config's")
            teacher = teacher or Path(state["teacher"])
        if teacher is None:
            raise ConfigError("stage dgnet needs a teacher checkpoint: --teacher CKPT (from --stage teacher)")
        super().__init__(cfg, out_dir, progress)
        d = cfg.dgnet
        self.teacher_path = Path(teacher)
        self.teacher = load_teacher(self.teacher_path, self.train_set.num_classes, self.device)
        self.model: DGNet = build_dgnet(cfg, self.train_set.num_classes).to(self.device)
        if state is None and d.appearance_init == "teacher":
            self._init_from_teacher()
        self.dist.broadcast(self.model.state_dict().values())  # every process starts from the main one's weights
        m = self.model
        self.gen_params = [*m.structure.parameters(), *m.decoder.parameters()]
        self.dis_params = list(m.discriminator.parameters())
        self.id_params = [*m.appearance.backbone_parameters(), *m.appearance.head_parameters()]
        self.gen_opt = torch.optim.Adam(self.gen_params, lr=d.lr_g, betas=(d.beta1, d.beta2), weight_decay=d.weight_decay)
        self.dis_opt = torch.optim.Adam(self.dis_params, lr=d.lr_d, betas=(d.beta1, d.beta2), weight_decay=d.weight_decay)
        self.id_opt = torch.optim.SGD(
            [
                {"params": m.appearance.backbone_parameters(), "lr": d.lr_id},
                {"params": m.appearance.head_parameters(), "lr": d.lr_id * d.head_lr_mult},
            ],
            lr=d.lr_id, momentum=0.9, nesterov=True, weight_decay=d.weight_decay,
        )
        for opt in (self.gen_opt, self.dis_opt, self.id_opt):
            for group in opt.param_groups:
                group["base_lr"] = group["lr"]
        self.autocast, self.scaler = amp_setup(self.device, d.amp)
        self.augment = self.make_augment(d.pad_mode)
        self._positives = self._positive_table()
        if state is not None:
            self.load_state_dict(state)

    def _init_from_teacher(self) -> None:
        try:
            self.model.appearance.backbone.load_state_dict(self.teacher.backbone.state_dict())
        except RuntimeError as e:
            raise ConfigError(
                f"dgnet.appearance_init=teacher: the teacher's trunk ({self.cfg.teacher.backbone}) does not fit E_a's "
                f"({self.cfg.appearance.backbone}): {str(e).splitlines()[0]}"
            ) from None

    # -- schedule and data ---------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        return self.cfg.dgnet.max_iter

    @property
    def max_minutes(self) -> float | None:
        return self.cfg.dgnet.max_minutes

    @property
    def log_every(self) -> int:
        return self.cfg.dgnet.log_every

    def _positive_table(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """For drawing, per image, another image of its identity: images sorted by label, each
        image's group start, group size and rank in its group."""
        labels = self.train_set.labels
        order = torch.sort(labels, stable=True).indices
        counts = torch.bincount(labels, minlength=self.train_set.num_classes)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(labels)
        rank[order] = torch.arange(len(labels)) - starts[labels[order]]
        return order, starts, counts, rank

    def positives(self, index: torch.Tensor) -> torch.Tensor:
        """A random other image of the same identity for each index (itself if it is alone)."""
        order, starts, counts, rank = self._positives
        label = self.train_set.labels[index]
        n = counts[label]
        pick = (torch.rand(len(index), generator=self.augment.generator) * (n - 1).clamp(min=1)).long()
        pick = torch.where(pick >= rank[index], pick + 1, pick)  # skip the image itself
        other = order[starts[label] + pick.clamp(max=n - 1)]
        return torch.where(n > 1, other, index)

    def batches(self, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Pairs of batches from two independent shuffles of the training set (the two loaders)."""
        per_epoch = self.train_set.batches_per_epoch(self.cfg.data.batch_size, self.dist.world_size)
        if per_epoch == 0:
            raise ConfigError(f"batch size {self.cfg.data.batch_size} is larger than the training set")
        epoch, offset = divmod(start, per_epoch)
        while True:
            a = self.train_set.epoch_batches(epoch, self.cfg.data.batch_size, self.cfg.seed, self.dist.rank, self.dist.world_size)
            b = self.train_set.epoch_batches(epoch, self.cfg.data.batch_size, self.cfg.seed + 1, self.dist.rank, self.dist.world_size)
            yield from list(zip(a, b))[offset:]
            epoch, offset = epoch + 1, 0

    def _images(self, index: torch.Tensor) -> torch.Tensor:
        return self.augment(self.train_set.pixels[index].to(self.device, non_blocking=True), erase=False)

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = self.base_state()
        state["models"] = {name: getattr(self.model, name).state_dict() for name in PARTS}
        state["optimizers"] = {"gen": self.gen_opt.state_dict(), "dis": self.dis_opt.state_dict(), "id": self.id_opt.state_dict()}
        state["scaler"] = self.scaler.state_dict()
        state["teacher"] = str(self.teacher_path)
        state["teacher_state"] = self.teacher.state_dict()  # its BN statistics move while it labels
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_base_state(state)
        for name in PARTS:
            getattr(self.model, name).load_state_dict(state["models"][name])
        self.gen_opt.load_state_dict(state["optimizers"]["gen"])
        self.dis_opt.load_state_dict(state["optimizers"]["dis"])
        self.id_opt.load_state_dict(state["optimizers"]["id"])
        self.scaler.load_state_dict(state["scaler"])
        self.teacher.load_state_dict(state["teacher_state"])

    # -- one step ------------------------------------------------------------------------------
    def _set_lrs(self) -> None:
        d = self.cfg.dgnet
        for opt, gamma in ((self.gen_opt, d.gamma), (self.dis_opt, d.gamma), (self.id_opt, d.gamma_id)):
            factor = step_lr_factor(self.step, d.milestones, gamma)
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * factor

    def weights(self) -> dict[str, float]:
        """The loss weights at this step (the "0 -> w" ones grow after their warm-up iteration)."""
        d, it = self.cfg.dgnet, self.step
        code = d.warm_weight(d.recon_f_w, d.max_w, it, d.warm_iter)
        return {
            "recon_f": code,
            "recon_s": d.warm_weight(d.recon_s_w, d.max_w, it, d.warm_iter),
            "cycle": d.warm_weight(d.recon_x_cyc_w, d.max_cyc_w, it, d.warm_iter),
            "teacher": d.warm_weight(d.teacher_w, d.max_teacher_w, it, d.warm_teacher_iter),
        }

    @torch.no_grad()
    def teacher_targets(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's soft label; its running statistics move with the generated batches."""
        return teacher_labels(self.teacher, x, self.cfg.dgnet.train_bn, keep_running_stats=False)

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float] | None:
        # The main process's BatchNorm statistics for all (as DistributedDataParallel does): the
        # frozen E_s runs on them, and they are what a checkpoint keeps.
        self.dist.broadcast([*self.model.buffers(), *self.teacher.buffers()])
        if self.step < self.cfg.dgnet.recon_warm_iter:
            return self.reconstruction_step(batch)
        d, m = self.cfg.dgnet, self.model
        ia, ib = batch
        la, lb = self.train_set.labels[ia].to(self.device), self.train_set.labels[ib].to(self.device)
        x_a, x_b = self._images(ia), self._images(ib)
        xp_a, xp_b = self._images(self.positives(ia)), self._images(self.positives(ib))
        w = self.weights()
        self._set_lrs()
        m.train()

        with self.autocast():
            s_a, s_b = m.structure(x_a), m.structure(x_b)
            f_a, p_a = self._appearance(x_a)
            f_b, p_b = self._appearance(x_b)
            fp_a, pp_a = self._appearance(xp_a)
            fp_b, pp_b = self._appearance(xp_b)
            x_ba, x_ab = m.decoder(s_b, f_a), m.decoder(s_a, f_b)
            x_a_rec, x_b_rec = m.decoder(s_a, f_a), m.decoder(s_b, f_b)
            x_a_rec_p, x_b_rec_p = m.decoder(s_a, fp_a), m.decoder(s_b, fp_b)
            if self.cfg.data.erasing_p > 0:  # erasing reaches the ID losses only
                p_a, p_b, pp_a, pp_b = (m.appearance(self.augment.erase(x)).logits for x in (x_a, x_b, xp_a, xp_b))

        # D first, on detached swaps (not at all when the GAN loss weighs nothing).
        dis = x_a.new_zeros(())
        if d.gan_w > 0:
            with self.autocast():
                dis = (discriminator_loss(m.discriminator, x_ba.detach(), x_a, d.discriminator.gp_weight).total
                       + discriminator_loss(m.discriminator, x_ab.detach(), x_b, d.discriminator.gp_weight).total) * d.gan_w
            self.dis_opt.zero_grad(set_to_none=True)
            dis_mean = self.dist.mean(dis)  # not finite if it is not in one process
            if not torch.isfinite(dis_mean):
                self.skip("discriminator loss", dis_mean)
                return None
            self.scaler.scale(dis).backward()
            all_reduce_grads(self.dis_params, self.dist)
            self.scaler.step(self.dis_opt)

        # Then E_a, E_s and G.
        for p in self.dis_params:
            p.requires_grad_(False)
        try:
            with self.autocast():
                losses = self._generator_losses(x_a, x_b, la, lb, s_a, s_b, f_a, f_b, p_a, p_b, pp_a, pp_b,
                                                x_ba, x_ab, x_a_rec, x_b_rec, x_a_rec_p, x_b_rec_p, w)
                total = (d.gan_w * losses["gan"] + d.recon_x_w * losses["recon_x"] + d.recon_xp_w * losses["recon_xp"]
                         + w["recon_f"] * losses["recon_f"] + w["recon_s"] * losses["recon_s"] + w["cycle"] * losses["cycle"]
                         + d.id_w * losses["id"] + d.pid_w * losses["pid"] + d.recon_id_w * losses["recon_id"]
                         + w["teacher"] * losses["teacher"])
        finally:
            for p in self.dis_params:
                p.requires_grad_(True)
        if not self._update(total, "generator loss", (self.gen_opt, self.id_opt), self.gen_params + self.id_params):
            return None
        values = self._mean({"total": total, "dis": dis, **losses})
        return {**values, **{f"w_{k}": v for k, v in w.items()}}

    def reconstruction_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float] | None:
        """A step of the reconstruction warm-up: E_s and G learn to rebuild each image from its
        structure and its own or a positive's appearance code (E_a frozen, D idle). About a tenth of
        a full step's cost, it gives the full losses a generator that already uses the code."""
        d, m = self.cfg.dgnet, self.model
        index = batch[0]  # one of the two batches: twice the steps in the same time
        x, xp = self._images(index), self._images(self.positives(index))
        self._set_lrs()
        m.train()
        with self.autocast():
            f, fp = (frozen_call(m.appearance, images, batch_stats=d.train_bn).code for images in (x, xp))
            s = m.structure(x)
            recon_x, recon_xp = 2 * l1(m.decoder(s, f), x), 2 * l1(m.decoder(s, fp), x)  # x2: the full step's scale (a + b)
            total = d.recon_x_w * recon_x + d.recon_xp_w * recon_xp
        if not self._update(total, "reconstruction loss", (self.gen_opt,), self.gen_params):
            return None
        # The full step's columns (one CSV for the whole run), the terms not trained here at 0.
        values = dict.fromkeys(("dis", "teacher", "recon_x", "recon_xp", "recon_f", "recon_s", "cycle", "id", "pid",
                                "recon_id", "gan"), 0.0)
        means = self._mean({"total": total, "recon_x": recon_x, "recon_xp": recon_xp})
        values.update(recon_x=means["recon_x"], recon_xp=means["recon_xp"])
        return {"total": means["total"], **values, **{f"w_{k}": v for k, v in self.weights().items()}}

    def _mean(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        """The losses of the whole batch: averaged over processes, in one message."""
        means = self.dist.mean(torch.stack([v.detach().float() for v in losses.values()])).tolist()
        return dict(zip(losses, means))

    def _update(self, total: torch.Tensor, what: str, optimisers: tuple[torch.optim.Optimizer, ...],
                params: list[nn.Parameter]) -> bool:
        """Backward ``total`` and step ``optimisers``; a non-finite loss skips the step (False)."""
        for opt in optimisers:
            opt.zero_grad(set_to_none=True)
        total_mean = self.dist.mean(total)  # not finite if it is not in one process
        if not torch.isfinite(total_mean):
            self.skip(what, total_mean)
            self.scaler.update()
            return False
        self.scaler.scale(total).backward()
        all_reduce_grads(params, self.dist)
        for opt in optimisers:
            self.scaler.step(opt)
        self.scaler.update()
        return True

    def _appearance(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        out = self.model.appearance(x)
        return out.code, out.logits

    def _generator_losses(self, x_a, x_b, la, lb, s_a, s_b, f_a, f_b, p_a, p_b, pp_a, pp_b,
                          x_ba, x_ab, x_a_rec, x_b_rec, x_a_rec_p, x_b_rec_p, w) -> dict[str, torch.Tensor]:
        d, m = self.cfg.dgnet, self.model
        x_ba_fixed, x_ab_fixed = x_ba.detach(), x_ab.detach()
        # Structure of the swaps: train E_s on the generated images, or G through a frozen E_s.
        if float(torch.rand((), generator=self.augment.generator)) < d.use_encoder_again:
            s_a_rec, s_b_rec = m.structure(x_ab_fixed), m.structure(x_ba_fixed)
        else:
            s_a_rec = frozen_call(m.structure, x_ab, batch_stats=False)
            s_b_rec = frozen_call(m.structure, x_ba, batch_stats=False)
        # Appearance of the swaps through a frozen E_a: gradients reach G only.
        out_ba = frozen_call(m.appearance, x_ba, batch_stats=d.train_bn)
        out_ab = frozen_call(m.appearance, x_ab, batch_stats=d.train_bn)
        f_a_rec, p_a_rec = out_ba.code, out_ba.logits
        f_b_rec, p_b_rec = out_ab.code, out_ab.logits

        losses: dict[str, torch.Tensor] = {}
        zero = x_a.new_zeros(())
        if w["teacher"] > 0:
            student_ba = m.appearance(x_ba_fixed).logits
            student_ab = m.appearance(x_ab_fixed).logits
            kl = (F.kl_div(F.log_softmax(student_ba[0].float(), 1), self.teacher_targets(x_ba_fixed), reduction="sum")
                  + F.kl_div(F.log_softmax(student_ab[0].float(), 1), self.teacher_targets(x_ab_fixed), reduction="sum")) / len(x_a)
            fine = F.cross_entropy(student_ba[1].float(), lb) + F.cross_entropy(student_ab[1].float(), la)
            losses["teacher"] = d.kl_w * kl + d.fine_w * fine
        else:
            losses["teacher"] = zero
        losses["recon_x"] = l1(x_a_rec, x_a) + l1(x_b_rec, x_b)
        losses["recon_xp"] = l1(x_a_rec_p, x_a) + l1(x_b_rec_p, x_b)
        losses["recon_f"] = l1(f_a_rec, f_a) + l1(f_b_rec, f_b) if w["recon_f"] > 0 else zero
        losses["recon_s"] = l1(s_a_rec, s_a) + l1(s_b_rec, s_b) if w["recon_s"] > 0 else zero
        if w["cycle"] > 0:
            losses["cycle"] = l1(m.decoder(s_a_rec, f_a_rec), x_a) + l1(m.decoder(s_b_rec, f_b_rec), x_b)
        else:
            losses["cycle"] = zero

        def ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(logits.float(), labels)

        fine_id = w["teacher"] * d.fine_w
        losses["id"] = ce(p_a[0], la) + ce(p_b[0], lb) + fine_id * (ce(p_a[1], la) + ce(p_b[1], lb))
        losses["pid"] = ce(pp_a[0], la) + ce(pp_b[0], lb)
        losses["recon_id"] = ce(p_a_rec[0], la) + ce(p_b_rec[0], lb)
        losses["gan"] = generator_loss(m.discriminator, x_ba) + generator_loss(m.discriminator, x_ab) if d.gan_w > 0 else zero
        return losses

    # -- hooks ---------------------------------------------------------------------------------
    def after_step(self) -> None:
        d = self.cfg.dgnet
        if d.sample_every and self.step % d.sample_every == 0 and self.dist.is_main:
            save_sample_grid(self.model, self.train_set, self.cfg, self.out_dir / "samples" / f"train_{self.step:08d}.png", self.device)
        if d.swap_every and self.step % d.swap_every == 0 and self.dist.is_main and self.runlog is not None:
            self.runlog.write("swap", self.step, {**self.swap_identity_accuracy(), "train_seconds": round(self.train_seconds, 1)})
        if self.step % d.save_every == 0 and self.step < self.total_steps:
            self.save()
            self.dist.barrier()

    @torch.no_grad()
    def swap_identity_accuracy(self, pairs: int = 256) -> dict[str, float]:
        """How often the teacher names the appearance provider of a swapped image x_ba (b's
        structure in a's appearance), and how often the structure provider, on training pairs of
        different identities drawn with a fixed seed; chance is 1 / identities."""
        g = torch.Generator().manual_seed(12345)
        n = len(self.train_set)
        ia, ib = torch.randint(n, (pairs,), generator=g), torch.randint(n, (pairs,), generator=g)
        keep = self.train_set.labels[ia] != self.train_set.labels[ib]
        ia, ib = ia[keep], ib[keep]
        self.model.eval()
        self.teacher.eval()
        hits_a = hits_b = 0
        mean = torch.tensor(self.cfg.data.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.cfg.data.std, device=self.device).view(1, 3, 1, 1)
        for start in range(0, len(ia), 32):
            a, b = ia[start : start + 32], ib[start : start + 32]
            x = [(self.train_set.pixels[i].to(self.device).permute(0, 3, 1, 2).float() / 255 - mean) / std for i in (a, b)]
            predicted = self.teacher(self.model.swap(x[0], x[1]).x_ba).logits[0].argmax(1).cpu()
            hits_a += int((predicted == self.train_set.labels[a]).sum())
            hits_b += int((predicted == self.train_set.labels[b]).sum())
        self.model.train()
        total = max(len(ia), 1)
        return {"swap_teacher_top1_appearance": 100.0 * hits_a / total,
                "swap_teacher_top1_structure": 100.0 * hits_b / total,
                "swap_chance": 100.0 / self.train_set.num_classes, "swap_pairs": len(ia)}

    def final_metrics(self) -> dict[str, Any]:
        return {**evaluate_net(self.model.appearance, self.cfg, self.device), **self.swap_identity_accuracy()}


def train_dgnet(cfg: Config, teacher: Path | None, out_dir: Path | None = None, resume: Path | None = None,
                progress: bool = True) -> TrainResult:
    return DGNetTrainer(cfg, out_dir or cfg.out_dir, teacher, resume, progress).run()
