"""Training checkpoints: one file holding everything needed to resume exactly.

A checkpoint is a plain dict of tensors and builtins (loaded with ``weights_only=True``, so no
user file is ever unpickled): format and version, the stage (``kind``), the resolved config,
the state of every network (from unwrapped modules), every optimizer and the AMP scaler, the
iteration and epoch, and the RNG states. It is written to a temporary file in the same folder and
renamed over the target, so a crash mid-write never leaves a truncated checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    check_finite_weights(path, {model_key: state["models"].get(model_key, {})})
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
    check_finite_weights(path, state["models"])
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
