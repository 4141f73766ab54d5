"""`dgnet-edge train`: the teacher, E_a alone, DG-Net, or E_a distilled from a frozen DG-Net's swaps."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from dgnet_edge.cli.options import ConfigOpt, DeviceOpt, OutOpt, OverridesOpt, ProgressOpt
from dgnet_edge.cli.output import err
from dgnet_edge.errors import UsageError
from dgnet_edge.paths import prepare_output_dir

STAGES = ("teacher", "baseline", "dgnet", "distil")


def train(
    stage: Annotated[str, typer.Option("--stage", help="teacher | baseline (E_a alone) | dgnet | distil (E_a on swaps "
                                                      "rendered by a frozen DG-Net generator).")],
    config: ConfigOpt = "synth_small",
    overrides: OverridesOpt = None,
    out: OutOpt = None,
    device: DeviceOpt = None,
    teacher: Annotated[Optional[Path], typer.Option("--teacher", help="Teacher checkpoint (stages dgnet and distil).")] = None,
    generator: Annotated[Optional[Path], typer.Option("--generator", help="DG-Net checkpoint whose frozen generator renders the swaps (stage distil).")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue from this checkpoint (its config, plus --set).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Start afresh in an --out that holds an earlier run's checkpoint.")] = False,
    progress: ProgressOpt = True,
) -> None:
    """Train a stage; writes checkpoints, logs (JSONL, CSV) and metrics to the output folder."""
    from dgnet_edge.config import load_config
    from dgnet_edge.training.trainer import resume_config

    if stage not in STAGES:
        raise UsageError(f"--stage must be one of {', '.join(STAGES)}, got {stage!r}")
    if teacher is not None and stage not in ("dgnet", "distil"):
        raise UsageError("--teacher is only used by --stage dgnet and --stage distil")
    if generator is not None and stage != "distil":
        raise UsageError("--generator is only used by --stage distil")
    if force and resume is not None:
        raise UsageError("--force starts afresh and --resume continues: give one of them")
    overrides = list(overrides or [])
    if device is not None:
        overrides.append(f"device={device}")
    if resume is not None:
        cfg = resume_config(resume, overrides)
        out_dir = out or resume.parent.parent
    else:
        cfg = load_config(config, overrides)
        out_dir = out or cfg.out_dir
        earlier = out_dir / "checkpoints" / "last.pt"
        if earlier.is_file() and not force:
            raise UsageError(f"{out_dir} holds an earlier run ({earlier}): continue it with --resume {earlier}, "
                             "start afresh over it with --force, or choose another --out")
    prepare_output_dir(out_dir, "--out folder")
    if stage == "dgnet":
        from dgnet_edge.training.dgnet_trainer import train_dgnet

        result = train_dgnet(cfg, teacher, out_dir, resume, progress)
    elif stage == "distil":
        from dgnet_edge.training.distil_trainer import train_distil

        result = train_distil(cfg, teacher, generator, out_dir, resume, progress)
    else:
        from dgnet_edge.training.id_trainer import train_id

        result = train_id(cfg, stage, out_dir, resume, progress)
    if result.stopped:
        err.print(f"stopped ({result.stopped}) at step {result.step}; resume with --resume {result.checkpoint}")
        raise typer.Exit(130 if result.stopped == "interrupted" else 0)
    err.print(f"trained {result.step} steps in {result.seconds / 60:.1f} min; checkpoint {result.checkpoint}")
    if result.metrics:
        m = result.metrics
        err.print(f"rank-1 {m['rank1']:.1f}  mAP {m['mAP']:.1f}  mINP {m['mINP']:.1f}")
