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
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated files, pickled objects and foreign formats raise various types
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
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


# Which network of a checkpoint carries the re-id feature, per stage.
FEATURE_NETWORK = {"teacher": ("teacher", "teacher"), "baseline": ("appearance", "appearance"), "dgnet": ("appearance", "appearance")}


def load_reid_net(path: str | Path):
    """The re-id network of a checkpoint (teacher, or E_a for baseline and DG-Net runs), in eval
    mode, with the run's config: ``(net, config, kind)``."""
    from dgnet_edge.config import config_from_dict
    from dgnet_edge.models import build_reid_net

    state = load_checkpoint(path, kinds=tuple(FEATURE_NETWORK))
    cfg = config_from_dict(state["config"], f"{path} (config)")
    model_key, section = FEATURE_NETWORK[state["kind"]]
    net = build_reid_net(getattr(cfg, section), state["num_classes"], appearance_code=section == "appearance")
    try:
        net.load_state_dict(state["models"][model_key])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path}: weights do not fit the network its config describes ({e})") from None
    return net.eval(), cfg, state["kind"]


def load_dgnet(path: str | Path):
    """All four DG-Net parts of a ``dgnet`` checkpoint, in eval mode, with the run's config:
    ``(model, config)``."""
    from dgnet_edge.config import config_from_dict
    from dgnet_edge.models import build_dgnet

    state = load_checkpoint(path, kinds=("dgnet",))
    cfg = config_from_dict(state["config"], f"{path} (config)")
    model = build_dgnet(cfg, state["num_classes"])
    try:
        for name, part_state in state["models"].items():
            getattr(model, name).load_state_dict(part_state)
    except (AttributeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: weights do not fit the networks its config describes ({e})") from None
    return model.eval(), cfg


def save_initial_checkpoint(path: str | Path, cfg: Any, kind: str, num_classes: int, seed: int = 0) -> Path:
    """A checkpoint of ``cfg``'s networks at their initial (random) weights, as a run of stage
    ``kind`` would hold them: what latency and memory benchmarks need, since neither depends on
    the weight values. It carries ``step`` 0 and no optimizer state, so it cannot be resumed."""
    from dgnet_edge.models import build_dgnet, build_reid_net

    if kind not in FEATURE_NETWORK:
        raise CheckpointError(f"unknown stage {kind!r}; expected one of: {', '.join(FEATURE_NETWORK)}")
    torch.manual_seed(seed)
    if kind == "dgnet":
        model = build_dgnet(cfg, num_classes)
        models = {name: getattr(model, name).state_dict() for name in ("appearance", "structure", "decoder", "discriminator")}
    else:
        model_key, section = FEATURE_NETWORK[kind]
        models = {model_key: build_reid_net(getattr(cfg, section), num_classes, appearance_code=section == "appearance").state_dict()}
    return save_checkpoint(path, {"kind": kind, "config": cfg.to_dict(), "num_classes": num_classes, "step": 0, "models": models})
