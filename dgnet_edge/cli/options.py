"""Options shared by several commands, declared once.

Float options without an upper bound go through :func:`finite`: click takes ``inf`` for them (and
``nan`` when there is no bound at all), which would otherwise reach the computation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional

import typer
from typing_extensions import Annotated


def finite(value: Optional[float]) -> Optional[float]:
    """Callback of float options: NaN and infinities are usage errors."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}")
    return value


def _precision(value: str) -> str:
    """Callback of --precision: a value no backend has is a usage error, before any work."""
    from dgnet_edge.runtime.select import PRECISIONS

    if value not in PRECISIONS:
        raise typer.BadParameter(f"expected one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


def _existing_dir(value: Optional[Path]) -> Optional[Path]:
    from dgnet_edge.paths import require_dir

    return None if value is None else require_dir(value, "export folder")


ConfigOpt = Annotated[
    str,
    typer.Option("--config", "-c", help="YAML config file, or a built-in config name (synth_small, teacher_market, ...)."),
]
OverridesOpt = Annotated[
    Optional[List[str]],
    typer.Option("--set", "-s", help="Override a config value, e.g. --set id_train.epochs=3 (repeatable)."),
]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default: the config's output_dir).")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto | cpu | cuda | cuda:N (default: the config's).")]
PrecisionOpt = Annotated[
    str,
    typer.Option("--precision", callback=_precision,
                 help="auto | fp32 | fp16 | int8; ONNX Runtime also runs int8-qdq (the TensorRT Q/DQ model)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")]
ExportDirArg = Annotated[
    Path, typer.Argument(metavar="EXPORT_DIR", callback=_existing_dir, help="Export folder written by `dgnet-edge export`.")
]
