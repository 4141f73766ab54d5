"""`dgnet-edge quickstart`: the main job on the embedded default (synthetic world, CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dgnet_edge.cli.options import ConfigOpt, OverridesOpt, ProgressOpt
from dgnet_edge.cli.output import err, out


def quickstart(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Where the run goes.")] = Path("runs/quickstart"),
    world: Annotated[Path, typer.Option("--world", help="The synthetic world (rendered if missing).")] = Path("data/synth"),
    config: ConfigOpt = "synth_small",
    overrides: OverridesOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Synthetic world -> small model -> evaluation table. Re-running skips finished steps."""
    from rich.progress import Progress
    from rich.table import Table

    from dgnet_edge.apps.quickstart import quickstart as run

    with Progress(console=err, disable=not progress) as bar:
        task = bar.add_task("rendering the world", total=None)
        result = run(out_dir, world, config, list(overrides or []), progress,
                     on_world_progress=lambda done, total: bar.update(task, completed=done, total=total))
    m = result.metrics
    table = Table(title=f"E_a on the synthetic world ({world}), AP: {m['ap']}")
    for col in ("rank-1", "rank-5", "rank-10", "mAP", "mINP"):
        table.add_column(col, justify="right")
    table.add_row(*(f"{m[k]:.1f}" for k in ("rank1", "rank5", "rank10", "mAP", "mINP")))
    out.print(table)
    for step, seconds in result.timings.items():
        err.print(f"{step}: {seconds / 60:.1f} min")
    err.print(f"checkpoint: {result.checkpoint}")
