"""Training checkpoints: one file holding everything needed to resume exactly.

A checkpoint is a plain dict of tensors and builtins (loaded with ``weights_only=True``, so no
user file is ever unpickled): format and version, the stage (``kind``), the resolved config,
the state of every network (from unwrapped modules), every optimizer and the AMP scaler, the
iteration and epoch, and the RNG states. It is written to a temporary file in the same folder and
renamed over the target, so a crash mid-write never leaves a truncated checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dgnet_edge import __version__
from dgnet_edge.atomic import atomic_open
from dgnet_edge.errors import CheckpointError
from dgnet_edge.weights import load_weights_file

FORMAT = "dgnet-edge-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus format/version stamps) atomically to ``path``."""
    path = Path(path)
    data = {"format": FORMAT, "version": VERSION, "toolkit_version": __version__, **payload}
    with atomic_open(path) as f:
        torch.save(data, f)
    return path


def load_checkpoint(path: str | Path, kinds: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; CheckpointError if it is not one
    (or not of one of ``kinds``)."""
    path = Path(path).expanduser()
    data = load_weights_file(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a dgnet-edge checkpoint (for the official DG-Net release files use `dgnet-edge import-official`)"
        )
    if data.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {data.get('version')} is not supported (expected {VERSION})")
    if kinds is not None and data.get("kind") not in kinds:
        raise CheckpointError(f"{path}: a {data.get('kind')!r} checkpoint, expected one of: {', '.join(kinds)}")
    return data


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
