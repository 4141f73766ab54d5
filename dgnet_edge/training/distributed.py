"""Multi-GPU training under torchrun: the process's place, read from the environment, and the few
collective operations the stages need (each one a no-op in a single process)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> DistEnv:
        """Set by torchrun (RANK, WORLD_SIZE, LOCAL_RANK); a single process otherwise."""
        if "RANK" not in os.environ:
            return cls()
        return cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process logs, evaluates and writes checkpoints."""
        return self.rank == 0

    def init(self, device: torch.device) -> None:
        if self.enabled and not dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)  # NCCL's object collectives use the current device
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=self.rank, world_size=self.world_size)

    def barrier(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.barrier()

    def shutdown(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    # -- collectives: every process must call them at the same point ----------------------------
    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` averaged over the processes. A value that is not finite in one process is not
        finite in the mean, so every process takes the same skip decision."""
        if not self.enabled:
            return values
        total = values.detach().clone()
        dist.all_reduce(total)
        return total / self.world_size

    def any(self, flag: bool, device: torch.device) -> bool:
        """Whether ``flag`` is set in any process (e.g. a stop request that reached only one)."""
        if not self.enabled:
            return flag
        value = torch.tensor([float(flag)], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def broadcast(self, tensors: Iterable[torch.Tensor]) -> None:
        """Overwrite ``tensors`` in place with the main process's (weights, BatchNorm statistics),
        one message per dtype."""
        if not self.enabled:
            return
        tensors = [t.detach() for t in tensors]
        for dtype in dict.fromkeys(t.dtype for t in tensors):  # the same order in every process
            group = [t for t in tensors if t.dtype == dtype]
            flat = torch.cat([t.reshape(-1) for t in group])
            dist.broadcast(flat, src=0)
            offset = 0
            for t in group:
                t.copy_(flat[offset : offset + t.numel()].view_as(t))
                offset += t.numel()

    def gather_object(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order (``[obj]`` in a single process)."""
        if not self.enabled:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered
