"""Choosing the torch device: ``auto`` takes CUDA when present, else the CPU."""

from __future__ import annotations

import torch

from dgnet_edge.errors import DeviceError


def resolve_device(spec: str = "auto", local_rank: int | None = None) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``; DeviceError when CUDA is asked for but absent.

    Under torchrun, ``local_rank`` picks the GPU of this process.
    """
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {spec!r} asked for, but this machine has no usable CUDA GPU (use device: cpu or auto)")
    if spec.startswith("cuda:"):
        index = int(spec[5:])
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {spec!r} asked for, but only {torch.cuda.device_count()} GPU(s) are visible")
        return torch.device(spec)
    return torch.device("cuda", local_rank or 0)
