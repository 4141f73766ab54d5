"""`dgnet-edge report`: accuracy vs latency of every backend and precision of an export.

    dgnet-edge report exports/synth --data data/synth --batch 1,8,32 --runs 30

A thin layer over :mod:`dgnet_edge.apps.report.pipeline`: options are checked first (a bad
``--batch`` or an unknown backend is a usage error, exit 2), progress goes to stderr, the tables
to stdout, and report.json, report.md, report.html and pareto.png to ``--out``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Tuple

import typer
from typing_extensions import Annotated

from dgnet_edge.cli.options import ExportDirArg, JsonOpt, ProgressOpt
from dgnet_edge.cli.output import err, out, print_json
from dgnet_edge.errors import UsageError

if TYPE_CHECKING:
    from dgnet_edge.apps.report.render import Table

BACKENDS = ("torch", "onnxruntime", "tensorrt")
AP_CONVENTIONS = ("standard", "trapezoid")


def parse_batches(text: str) -> Tuple[int, ...]:
    """``"1,8,32"`` -> (1, 8, 32); UsageError unless positive integers."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise UsageError(f"--batch must be positive integers separated by commas (e.g. 1,8,32), got {text!r}")
    return tuple(sorted(set(values)))


def parse_backends(text: str) -> Tuple[str, ...]:
    names = [p.strip().lower() for p in text.split(",") if p.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise UsageError(f"--backends: unknown backend {', '.join(unknown) or '(none given)'}; choose from {', '.join(BACKENDS)}")
    return tuple(dict.fromkeys(names))


def rich_table(table: Table) -> Any:
    from rich.table import Table as RichTable

    result = RichTable(title=table.title, caption="\n".join(table.notes) or None, caption_justify="left")
    for column, align in zip(table.columns, table.alignment()):
        result.add_column(column, justify="right" if align == "r" else "left")
    for row in table.rows:
        result.add_row(*row)
    return result


class RowProgress:
    """Two bars on stderr: the rows done, and the current row's stage."""

    def __init__(self, enabled: bool):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=err, disable=not enabled)
        self._overall = self._progress.add_task("report", total=None)
        self._row = self._progress.add_task("", total=None, visible=False)

    def __enter__(self) -> RowProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def update(self, label: str, stage: str, done: int, total: Optional[int]) -> None:
        if label == "report":
            self._progress.update(self._overall, description=f"report: {stage}", completed=done, total=total)
        else:
            self._progress.update(self._row, description=f"{label}: {stage}", completed=done, total=total, visible=True)


def report(
    export_dir: ExportDirArg,
    data: Annotated[
        Optional[Path], typer.Option("--data", help="Root of the query/gallery set (default: the dataset of the export's checkpoint).")
    ] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset reader (default: the manifest's).")] = None,
    backends: Annotated[
        str, typer.Option("--backends", help="Comma-separated backends: torch, onnxruntime, tensorrt.")
    ] = "torch,onnxruntime,tensorrt",
    batch: Annotated[
        str, typer.Option("--batch", help="Batch sizes to time, e.g. 1,8,32 (1 and 8 are always timed for the roofline).")
    ] = "1,8,32",
    runs: Annotated[int, typer.Option("--runs", min=1, help="Timed runs per batch size, after 3 warm-up runs.")] = 30,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default: EXPORT_DIR/report).")] = None,
    ap: Annotated[str, typer.Option("--ap", help="AP convention: standard | trapezoid (Market MATLAB).")] = "standard",
    accuracy: Annotated[bool, typer.Option("--accuracy/--no-accuracy", help="Run the accuracy pass over the dataset.")] = True,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda: where torch and ONNX Runtime run.")] = "auto",
    as_json: JsonOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Accuracy (rank-1, mAP, mINP), latency, memory, start-up and generator speed per backend and precision.

    Each row runs in its own process. Writes report.json, report.md, report.html and pareto.png.
    """
    batches = parse_batches(batch)
    names = parse_backends(backends)
    if ap not in AP_CONVENTIONS:
        raise UsageError(f"--ap must be one of {', '.join(AP_CONVENTIONS)}, got {ap!r}")

    from dgnet_edge.apps.report.pipeline import ReportOptions, make_report, write_report
    from dgnet_edge.apps.report.render import report_tables
    from dgnet_edge.paths import check_output_dir

    options = ReportOptions(Path(export_dir), data=data, dataset=dataset, backends=names, batches=batches, runs=runs,
                            ap=ap, accuracy=accuracy, device=device, out=out_dir)
    check_output_dir(options.out_dir, "report folder")  # before measuring, not after every row
    with RowProgress(progress) as bars:
        result = make_report(options, bars.update)
    paths = write_report(result, options.out_dir)
    if as_json:
        print_json(result)
    else:
        for table in report_tables(result):
            out.print(rich_table(table))
    err.print(f"wrote {', '.join(str(p) for p in paths.values())} in {result['duration_s']:.0f} s")
