"""`dgnet-edge train`: ID training of the teacher or of E_a."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dgnet_edge.cli.options import ConfigOpt, DeviceOpt, OutOpt, OverridesOpt, ProgressOpt
from dgnet_edge.cli.output import err
from dgnet_edge.errors import UsageError


def train(
    stage: Annotated[str, typer.Option("--stage", help="teacher | baseline (E_a alone).")],
    config: ConfigOpt = "synth_small",
    overrides: OverridesOpt = None,
    out: OutOpt = None,
    device: DeviceOpt = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue from this checkpoint (its config, plus --set).")] = None,
    progress: ProgressOpt = True,
) -> None:
    """Train a re-id network with the ID loss; writes checkpoints, logs and metrics to the output folder."""
    from dgnet_edge.config import load_config
    from dgnet_edge.training.id_trainer import STAGES, resume_config, train_id

    if stage not in STAGES:
        raise UsageError(f"--stage must be one of {', '.join(STAGES)}, got {stage!r}")
    overrides = list(overrides or [])
    if device is not None:
        overrides.append(f"device={device}")
    if resume is not None:
        cfg = resume_config(resume, overrides)
        out_dir = out or resume.parent.parent
    else:
        cfg = load_config(config, overrides)
        out_dir = out or cfg.out_dir
    result = train_id(cfg, stage, out_dir, resume, progress)
    if result.stopped:
        err.print(f"stopped ({result.stopped}) at step {result.step}; resume with --resume {result.checkpoint}")
        raise typer.Exit(130 if result.stopped == "interrupted" else 0)
    err.print(f"trained {result.step} steps in {result.seconds / 60:.1f} min; checkpoint {result.checkpoint}")
    if result.metrics:
        m = result.metrics
        err.print(f"rank-1 {m['rank1']:.1f}  mAP {m['mAP']:.1f}  mINP {m['mINP']:.1f}")
