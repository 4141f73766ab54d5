"""Training under torchrun (DistributedDataParallel) on the CPU: the gloo backend, two processes.

Each process takes every second image of the epoch's permutation, so batch k of the two processes
together is batch k of one process with twice the batch size. The losses still differ from that
one process's, by the BatchNorm statistics: each process normalises its half of the batch by its
own (0.2 % apart at the first step on the tiny world, 10 % after six steps at lr 0.1). The reference
here is therefore one process on the same global batch whose network runs each process's half
separately (:class:`PerProcessBatchNorm`); the rest (the data each process takes, the averaged
gradients, the optimiser, the schedule) must then agree to float rounding, and the test does not
pass if the processes saw the same images or did not average their gradients.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides
from test_dgnet_training import SMALL_DGNET
from torch import nn

from dgnet_edge.checkpoint import load_checkpoint
from dgnet_edge.config import load_config
from dgnet_edge.data.train_set import TrainImages
from dgnet_edge.models.reid import ReidOutput
from dgnet_edge.training.dgnet_trainer import DGNetTrainer
from dgnet_edge.training.id_trainer import IdTrainer

# No random draws in the data (padding, flips, erasing) nor in the heads (dropout): the processes
# and the reference then see the same pixels.
DETERMINISTIC = ["data.pad=0", "data.flip=false", "data.erasing_p=0", "appearance.dropout=[0,0]", "device=cpu"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list, timeout: float = 300) -> subprocess.CompletedProcess:
    """``dgnet-edge train ARGS`` in two processes under torchrun, on this machine only."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "dgnet_edge", "train", "--no-progress", *map(str, args)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def sets(items: list[str]) -> list[str]:
    return sum((["--set", s] for s in items), [])


def train_rows(out: Path) -> list[dict]:
    return [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r["kind"] == "train"]


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread, as the processes under torchrun (OMP_NUM_THREADS=1): at lr 0.1 the
    tiny world's training amplifies the rounding of another summation order to 0.1 in eight steps."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class PerProcessBatchNorm(nn.Module):
    """``net`` run separately on each process's share of a batch (every ``world``-th image) and its
    logits put back in batch order: one process computing what ``world`` processes compute."""

    def __init__(self, net: nn.Module, world: int):
        super().__init__()
        self.net, self.world = net, world

    def forward(self, x: torch.Tensor) -> ReidOutput:
        outs = [self.net(x[r :: self.world]) for r in range(self.world)]
        logits = [torch.stack(heads, 1).flatten(0, 1) for heads in zip(*(out.logits for out in outs))]
        return ReidOutput(logits, None)


@pytest.mark.parametrize("world", [2, 3])
def test_the_processes_batches_make_up_one_process_batch(world):
    n, batch = 50, 4
    images = TrainImages(torch.zeros(n, 1, 1, 3, dtype=torch.uint8), torch.arange(n), torch.zeros(n, dtype=torch.int64), n)
    one = images.epoch_batches(3, batch * world, seed=7)
    ranks = [images.epoch_batches(3, batch, seed=7, rank=r, world_size=world) for r in range(world)]
    assert all(len(r) == len(one) == images.batches_per_epoch(batch, world) for r in ranks)
    for k, together in enumerate(one):
        shares = [r[k] for r in ranks]
        assert sorted(torch.cat(shares).tolist()) == sorted(together.tolist())  # disjoint, and the same images
        for r, share in enumerate(shares):
            assert share.tolist() == together[r::world].tolist()


def test_baseline_on_two_processes_matches_one_process(tiny_world, tmp_path):
    items = tiny_overrides(tiny_world) + DETERMINISTIC + ["id_train.epochs=1"]
    torchrun(["--stage", "baseline", *sets(items + ["data.batch_size=4"]), "--out", tmp_path / "two"])
    two = train_rows(tmp_path / "two")  # the main process logs the loss averaged over processes

    trainer = IdTrainer(load_config("synth_small", items + ["data.batch_size=8"]), "baseline", tmp_path / "one", progress=False)
    trainer.model = PerProcessBatchNorm(trainer.net, 2)
    with one_thread():
        trainer.run()
    one = train_rows(tmp_path / "one")

    assert [r["step"] for r in two] == [r["step"] for r in one] == list(range(1, 10))  # written once, by the main process
    torch.testing.assert_close(torch.tensor([r["loss"] for r in two]), torch.tensor([r["loss"] for r in one]), rtol=0, atol=1e-3)
    assert two[-1]["loss"] < two[0]["loss"] - 0.3  # it learned: the comparison is not between two untrained nets
    state = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.pt")
    assert state["step"] == 9 and len(state["rng_by_rank"]) == 2


def assert_same_weights(a: Path, b: Path) -> None:
    models_a, models_b = load_checkpoint(a)["models"], load_checkpoint(b)["models"]
    for part, weights in models_a.items():
        for key, value in weights.items():
            torch.testing.assert_close(value, models_b[part][key], rtol=0, atol=0, msg=f"{part}.{key}")


@pytest.mark.slow  # three runs under torchrun: about a minute on 2 cores
def test_baseline_resumes_exactly_under_torchrun(tiny_world, tmp_path):
    # Random padding, flips, erasing and dropout: each process draws from its own streams, which the
    # checkpoint must keep for every process. Batch 8 per process: 4 steps an epoch.
    items = tiny_overrides(tiny_world) + ["device=cpu", "id_train.eval_every=1"]
    torchrun(["--stage", "baseline", *sets(items + ["id_train.epochs=2"]), "--out", tmp_path / "full"])
    torchrun(["--stage", "baseline", *sets(items + ["id_train.epochs=1"]), "--out", tmp_path / "part"])
    torchrun(["--stage", "baseline", "--resume", tmp_path / "part" / "checkpoints" / "last.pt", "--set", "id_train.epochs=2"])

    full, part = train_rows(tmp_path / "full"), train_rows(tmp_path / "part")
    assert [r["step"] for r in part] == [r["step"] for r in full] == list(range(1, 9))
    assert [(r["loss"], r["acc"]) for r in part] == [(r["loss"], r["acc"]) for r in full]
    assert_same_weights(tmp_path / "full" / "checkpoints" / "last.pt", tmp_path / "part" / "checkpoints" / "last.pt")
    assert (tmp_path / "full" / "checkpoints" / "best.pt").is_file()  # the main process evaluated at each epoch's end


@pytest.mark.slow  # five DG-Net runs: about three minutes on 2 cores
def test_dgnet_on_two_processes(tiny_world, tiny_checkpoint, tmp_path):
    # E_a's trunk from the tiny baseline (a teacher too); the teacher's losses on from step 2. The
    # frozen E_a on its running BatchNorm statistics (train_bn false): they then steer the training.
    items = tiny_overrides(tiny_world) + SMALL_DGNET + DETERMINISTIC + ["data.batch_size=4", "dgnet.sample_every=0",
                                                                        "dgnet.train_bn=false"]
    args = ["--stage", "dgnet", "--teacher", tiny_checkpoint]
    torchrun([*args, *sets(items + ["dgnet.max_iter=3"]), "--out", tmp_path / "full"])
    full = train_rows(tmp_path / "full")
    assert [r["step"] for r in full] == [1, 2, 3] and full[-1]["w_teacher"] > 0
    assert all(torch.isfinite(torch.tensor([v for k, v in r.items() if k != "kind"])).all() for r in full)

    # The first step, before any update, against one process on each process's pair of batches:
    # the same weights in both processes, and the losses of their images (not those of the random
    # positives) averaged.
    cfg = load_config("synth_small", items)
    trainer = DGNetTrainer(cfg, tmp_path / "one", tiny_checkpoint, progress=False)
    start = copy.deepcopy(trainer.model.state_dict())
    shares = []
    for rank in range(2):
        trainer.model.load_state_dict(start)
        a = trainer.train_set.epoch_batches(0, 4, cfg.seed, rank, 2)[0]
        b = trainer.train_set.epoch_batches(0, 4, cfg.seed + 1, rank, 2)[0]
        with one_thread():
            shares.append(trainer.train_step((a, b)))
    for key in ("recon_x", "id", "dis"):
        assert full[0][key] == pytest.approx((shares[0][key] + shares[1][key]) / 2, abs=1e-4), key

    # Stopped after 2 steps and resumed: the same third step (BatchNorm statistics, each process's
    # random streams).
    torchrun([*args, *sets(items + ["dgnet.max_iter=2"]), "--out", tmp_path / "part"])
    torchrun(["--stage", "dgnet", "--resume", tmp_path / "part" / "checkpoints" / "last.pt", "--set", "dgnet.max_iter=3"])
    part = train_rows(tmp_path / "part")
    assert [r["step"] for r in part] == [1, 2, 3]
    for key in full[0].keys() - {"time", "images_per_s"}:
        assert [r[key] for r in part] == [r[key] for r in full], key
    assert_same_weights(tmp_path / "full" / "checkpoints" / "last.pt", tmp_path / "part" / "checkpoints" / "last.pt")
