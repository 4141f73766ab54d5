"""`dgnet-edge bench ...`: time the library's hot paths on generated problems (no dataset needed).

Benchmarks are commands, not tests: they print what this machine measures and assert nothing.
"""

from __future__ import annotations

import statistics
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from dgnet_edge.cli.options import ConfigOpt, ExportDirArg, OverridesOpt
from dgnet_edge.cli.output import err, out, print_json
from dgnet_edge.errors import UsageError

app = typer.Typer(help="Benchmarks: time hot paths on generated problems.", no_args_is_help=True)

# Share of Market-1501's gallery (as torchreid and fast-reid load it: 15,913 images without the
# junk id -1) taken by the 2,793 distractors of id 0.
_DISTRACTOR_SHARE = 2793 / 15913


class Dtype(str, Enum):
    float32 = "float32"
    float64 = "float64"


@app.command("eval")
def eval_ranking(
    queries: Annotated[int, typer.Option(min=1, help="Query rows of the distance matrix.")] = 3368,
    gallery: Annotated[int, typer.Option(min=1, help="Gallery columns of the distance matrix.")] = 15913,
    ids: Annotated[int, typer.Option(min=1, help="Identities shared by query and gallery.")] = 751,
    cameras: Annotated[int, typer.Option(min=2, help="Cameras.")] = 6,
    repeat: Annotated[int, typer.Option(min=1, help="Timed runs per AP convention; the median is reported.")] = 3,
    dtype: Annotated[Dtype, typer.Option(help="dtype of the distance matrix.")] = Dtype.float32,
    seed: Annotated[int, typer.Option(help="Seed of the generated problem.")] = 0,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Time `evaluate` (CMC, mAP, mINP) on a random Market-size problem, for both AP conventions.

    The default size is Market-1501's test split: 3,368 queries, 15,913 gallery images, 6 cameras.
    """
    import numpy as np

    from dgnet_edge.eval import evaluate
    from dgnet_edge.eval.metrics import AP_CONVENTIONS

    if ids > min(queries, gallery):
        raise UsageError(f"--ids ({ids}) cannot exceed --queries ({queries}) or --gallery ({gallery}): "
                         "every identity needs query and gallery images")
    err.print(f"generating a {queries} × {gallery} {dtype.value} ranking problem ({ids} ids, {cameras} cameras)")
    problem = _random_problem(queries, gallery, ids, cameras, np.dtype(dtype.value), seed)
    rows = []
    for ap in AP_CONVENTIONS:
        seconds = []
        for _ in range(repeat):
            start = time.perf_counter()
            result = evaluate(*problem, ap=ap)
            seconds.append(time.perf_counter() - start)
        rows.append(
            {
                "ap": ap,
                "median_s": statistics.median(seconds),
                "min_s": min(seconds),
                "max_s": max(seconds),
                **{k: v for k, v in result.as_dict().items() if k != "ap"},
            }
        )

    if json_output:
        size = {"queries": queries, "gallery": gallery, "ids": ids, "cameras": cameras, "dtype": dtype.value}
        print_json({"benchmark": "eval", "problem": size, "repeat": repeat, "seed": seed, "results": rows})
        return

    from rich.table import Table

    table = Table(title=f"evaluate on {queries} × {gallery} {dtype.value}: seconds (median of {repeat}), scores in %")
    for column in ("AP", "median s", "min s", "max s", "rank-1", "mAP", "mINP", "valid queries"):
        table.add_column(column, justify="left" if column == "AP" else "right")
    for row in rows:
        table.add_row(
            row["ap"],
            f"{row['median_s']:.3f}",
            f"{row['min_s']:.3f}",
            f"{row['max_s']:.3f}",
            f"{row['rank1']:.2f}",
            f"{row['mAP']:.2f}",
            f"{row['mINP']:.2f}",
            f"{row['num_valid_queries']}/{row['num_queries']}",
        )
    out.print(table)


def _random_problem(queries: int, gallery: int, ids: int, cameras: int, dtype, seed: int) -> tuple:
    """(distmat, q_pids, g_pids, q_camids, g_camids) of a random ranking problem.

    Negatives are uniform in [0, 1]; a pair with the same identity is log-uniform in [1e-6, 1], so
    true matches spread from the top of the ranking to its end (at Market size: rank-1 about 90 %,
    mAP about 45 %, low mINP). The time of `evaluate` barely depends on where the matches land.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    q_pids = rng.integers(1, ids + 1, queries)
    q_camids = rng.integers(0, cameras, queries)
    g_pids = rng.integers(1, ids + 1, gallery)
    g_pids[rng.random(gallery) < _DISTRACTOR_SHARE] = 0
    g_camids = rng.integers(0, cameras, gallery)
    distmat = rng.random((queries, gallery), dtype=np.float32).astype(dtype, copy=False)
    rows, cols = np.nonzero(q_pids[:, None] == g_pids[None, :])
    if not np.any(q_camids[rows] != g_camids[cols]):
        raise UsageError("no query of this draw has a match in another camera (needed to score it): give more --gallery "
                         "images per identity, fewer --ids, or another --seed")
    distmat[rows, cols] = 10.0 ** (-6 * rng.random(len(rows)))
    return distmat, q_pids, g_pids, q_camids, g_camids


@app.command("checkpoint")
def initial_checkpoint(
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint file to write.")],
    config: ConfigOpt = "dgnet_market",
    overrides: OverridesOpt = None,
    stage: Annotated[str, typer.Option("--stage", help="Which run's networks: teacher | baseline | dgnet.")] = "dgnet",
    num_classes: Annotated[int, typer.Option("--num-classes", min=1, help="Identities of the ID heads.")] = 751,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights.")] = 0,
) -> None:
    """Write a checkpoint of a config's networks at their initial weights, to export and time.

    Latency, memory and MAC counts do not depend on the weights, so `bench speed` can measure the
    paper's ResNet-50 DG-Net at 256x128 without training it; its accuracy is meaningless.
    """
    from dgnet_edge.config import load_config
    from dgnet_edge.models.factory import save_initial_checkpoint
    from dgnet_edge.paths import prepare_output_file

    cfg = load_config(config, list(overrides or []))
    prepare_output_file(out_file, "--out file")
    path = save_initial_checkpoint(out_file, cfg, stage, num_classes, seed)
    err.print(f"wrote {path} ({stage}, {cfg.appearance.backbone} at {cfg.data.height}x{cfg.data.width}, initial weights)")


@app.command("speed")
def speed(
    export_dir: ExportDirArg,
    runs: Annotated[int, typer.Option(min=1, help="Timed runs per batch size, after 3 warm-up runs.")] = 30,
    report_json: Annotated[
        Optional[Path], typer.Option("--report-json", help="report.json whose duration to check (default: EXPORT_DIR/report/report.json).")
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")] = True,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Measure the speed targets on an export: int8 vs torch and ORT fp32, share of the int8 peak,
    generator images/s, report time and the memory of a deployment process. Prints met/missed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from dgnet_edge.apps.report.machine import describe_cpu
    from dgnet_edge.apps.report.speed import measure_speed

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, disable=not progress) as bar:
        task = bar.add_task("bench", total=None)
        result = measure_speed(export_dir, runs, report_json,
                               lambda label, stage, done, total: bar.update(task, description=f"{label}: {stage}",
                                                                            completed=done, total=total))
    if json_output:
        print_json(result.to_dict())
        return

    from rich.table import Table

    cpu = describe_cpu(result.machine["cpu"]) if result.machine else "this machine"
    table = Table(title=f"speed targets on {export_dir} ({cpu})")
    for column in ("target", "measured", "goal", "verdict", "detail"):
        table.add_column(column, justify="right" if column in ("measured", "goal") else "left")
    for t in result.targets:
        measured = "—" if t.measured is None else f"{t.measured:.2f} {t.unit}" if t.unit != "%" else f"{t.measured:.1f} %"
        colour = {"met": "green", "missed": "red"}.get(t.verdict, "yellow")
        table.add_row(t.name, measured, t.goal, f"[{colour}]{t.verdict}[/]", t.detail)
    out.print(table)
