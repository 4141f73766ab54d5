"""Options shared by several commands, declared once.

Every float option is declared with :func:`float_option`, which checks that the value is finite
before it checks the range: a range check alone lets NaN through (every comparison with NaN is
false) or calls it out of range, and takes ``inf`` where there is no upper bound.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from typing_extensions import Annotated


def _range_text(low: Optional[float], high: Optional[float]) -> str:
    if low is not None and high is not None:
        return f"{low:g} <= x <= {high:g}"
    if low is not None:
        return f"x >= {low:g}"
    return "" if high is None else f"x <= {high:g}"


def _finite_float(low: Optional[float], high: Optional[float]) -> Callable[[Any], float]:
    """The parser of a float option: a number, finite, then within [low, high] where given."""
    bounds = _range_text(low, high)

    def parse(value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise typer.BadParameter(f"{value!r} is not a number") from None
        if not math.isfinite(number):
            raise typer.BadParameter(f"must be a finite number{f' ({bounds})' if bounds else ''}, got {value}")
        if (low is not None and number < low) or (high is not None and number > high):
            raise typer.BadParameter(f"must be {bounds}, got {value}")
        return number

    parse.__name__ = "float"  # click names the option's type after its parser (FLOAT in --help)
    return parse


def float_option(*param_decls: str, min: Optional[float] = None, max: Optional[float] = None, **kwargs: Any) -> Any:
    """``typer.Option`` of a float: finite, and within [min, max] where given."""
    return typer.Option(*param_decls, min=min, max=max, parser=_finite_float(min, max), **kwargs)


def _precision(value: Optional[str]) -> Optional[str]:
    """Callback of --precision: a value no backend has is a usage error, before any work."""
    from dgnet_edge.runtime.select import PRECISIONS

    if value is not None and value not in PRECISIONS:
        raise typer.BadParameter(f"expected one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


def _backend(value: Optional[str]) -> Optional[str]:
    """Callback of --backend: the deployment side runs the export's ONNX models or TensorRT engines,
    never torch (it does not import it), so only the runtime's choices are offered."""
    from dgnet_edge.runtime.select import BACKENDS

    if value is not None and value not in BACKENDS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(BACKENDS)}")
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
CameraConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="YAML camera config: sections sources, detector, embedder, tracker, identities, gallery, synthesis, outputs (README, 'The camera config'); `_base_: FILE` inherits one. The other options go over it."),
]
CameraSetOpt = Annotated[
    Optional[List[str]],
    typer.Option("--set", "-s", help="Set one camera config key, e.g. --set tracker.max_lost_s=5 (repeatable; applied last)."),
]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default: the config's output_dir).")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto | cpu | cuda | cuda:N (default: the config's).")]
PrecisionOpt = Annotated[
    Optional[str],
    typer.Option("--precision", callback=_precision,
                 help="auto | fp32 | fp16 | int8; ONNX Runtime also runs int8-qdq (the TensorRT Q/DQ model)."),
]
BackendOpt = Annotated[Optional[str], typer.Option("--backend", callback=_backend, help="Embedder backend: auto | tensorrt | onnxruntime.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")]
ExportDirArg = Annotated[
    Path, typer.Argument(metavar="EXPORT_DIR", callback=_existing_dir, help="Export folder written by `dgnet-edge export`.")
]
