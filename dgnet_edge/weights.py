"""Reading weight files: ``torch.load(weights_only=True)`` with one-line errors, and NaN/Inf checks.

A leaf of the package: checkpoints (:mod:`dgnet_edge.checkpoint`), pretrained trunks
(:mod:`dgnet_edge.models.resnet`) and the official DG-Net files (:mod:`dgnet_edge.models.official`)
all read their files through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from dgnet_edge.errors import CheckpointError


def load_weights_file(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with one-line CheckpointErrors.

    Random bytes, a truncated file or a pickled module make torch raise long multi-line errors;
    the message here says what the file is not, and torch's text stays in the exception's cause
    (shown with ``DGNET_EDGE_DEBUG=1``).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{what} {path} not found")
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a folder, not a file: give the checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated files, pickled objects and foreign formats raise various types
        if isinstance(e, PermissionError):
            raise CheckpointError(f"{what} {path} cannot be read ({(e.strerror or str(e)).lower()})") from e
        kind = "it holds pickled Python objects, which are never loaded" if "global" in str(e).lower() else \
            "truncated, or not a torch file"
        raise CheckpointError(f"{what} {path} is not a weights-only checkpoint ({kind})") from e


def non_finite_tensors(state: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the floating-point tensors in a (nested) state dict holding NaN or Inf."""
    found = []
    for key, value in state.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found += non_finite_tensors(value, f"{name}.")
        elif isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            found.append(name)
    return found


def check_finite_weights(path: str | Path, models: Mapping[str, Any]) -> None:
    """CheckpointError naming the weights that are NaN or Inf (a diverged run saves them)."""
    bad = non_finite_tensors(models)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise CheckpointError(f"{path}: {len(bad)} weight tensor(s) hold NaN or Inf ({shown}); the run diverged: "
                              "use an earlier checkpoint or train again with a lower learning rate")
