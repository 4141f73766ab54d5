"""A training split decoded once into memory, served as shuffled batches of indices.

Re-id training sets are small (Market-1501: 12,936 images, 1.3 GB at 256x128), so decoding once
and augmenting whole batches with tensor ops beats per-image loader workers on every machine
from a 2-core laptop to a GPU server. The order of each epoch is a pure function of (seed, epoch):
every torchrun process takes every ``world_size``-th index of the same permutation (what
DistributedSampler with ``set_epoch`` does), so that batch k of all processes together is batch k
of a single process with ``world_size`` times the batch size; a resumed run replays the exact order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dgnet_edge.data.dataset import ImageRecord
from dgnet_edge.data.images import load_images
from dgnet_edge.errors import DatasetError

log = logging.getLogger(__name__)


def per_identity(records: Sequence[ImageRecord], n: int, seed: int = 0) -> list[ImageRecord]:
    """At most ``n`` records of each identity, drawn with ``seed`` (the data-scarce regime: the same
    cut for every stage trained with the same seed), in their original order."""
    g = torch.Generator().manual_seed(seed * 7_919 + n)
    by_pid: dict[int, list[int]] = {}
    for i, r in enumerate(records):
        by_pid.setdefault(r.pid, []).append(i)
    kept = sorted(i for ids in by_pid.values()
                  for i in (ids if len(ids) <= n else [ids[j] for j in torch.randperm(len(ids), generator=g)[:n].tolist()]))
    return [records[i] for i in kept]


@dataclass
class TrainImages:
    pixels: torch.Tensor  # (N, H, W, 3) uint8 RGB
    labels: torch.Tensor  # (N,) int64, 0..num_classes-1
    camids: torch.Tensor  # (N,) int64
    num_classes: int
    skipped: int = 0  # unreadable files left out

    @classmethod
    def load(cls, records: Sequence[ImageRecord], height: int, width: int, workers: int = 4) -> TrainImages:
        if not records:
            raise DatasetError("the training split is empty")
        loaded = load_images([r.path for r in records], height, width, workers, skip_unreadable=True)
        if not loaded.kept:
            raise DatasetError(f"none of the {len(records)} training images could be read; first error: {loaded.failures[0]}")
        if loaded.failures:
            log.warning("training without %d unreadable image(s) of %d", len(loaded.failures), len(records))
        kept = [records[i] for i in loaded.kept]
        return cls(
            pixels=torch.from_numpy(loaded.pixels),
            labels=torch.tensor([r.pid for r in kept], dtype=torch.int64),
            camids=torch.tensor([r.camid for r in kept], dtype=torch.int64),
            num_classes=max(r.pid for r in records) + 1,
            skipped=len(loaded.failures),
        )

    def __len__(self) -> int:
        return len(self.labels)

    def batches_per_epoch(self, batch_size: int, world_size: int = 1) -> int:
        return (len(self) // world_size) // batch_size

    def epoch_batches(self, epoch: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> list[torch.Tensor]:
        """Index batches of one epoch for this process; the last incomplete batch is dropped."""
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(len(self), generator=g)
        mine = order[: len(self) // world_size * world_size][rank::world_size]
        n = self.batches_per_epoch(batch_size, world_size)
        return [mine[i * batch_size : (i + 1) * batch_size] for i in range(n)]
