"""`dgnet-edge export`: a checkpoint -> an export folder (ONNX fp32 [+ fp16] [+ INT8] and its manifest).

    dgnet-edge export runs/synth/checkpoints/last.pt --out exports/synth --fp16 \\
        --int8 --calib-data data/synth

A thin layer over :func:`dgnet_edge.export.pipeline.export_checkpoint`, with INT8 calibration
(:mod:`dgnet_edge.calib.pipeline`) as its ``extend`` hook: options are checked first, progress goes to
stderr, and the table of written files to stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import typer
from typing_extensions import Annotated

from dgnet_edge.cli.options import JsonOpt, ProgressOpt, float_option
from dgnet_edge.cli.output import err, out, print_json
from dgnet_edge.errors import UsageError
from dgnet_edge.paths import refuse_overwriting_inputs, require_dir, require_file

if TYPE_CHECKING:
    from dgnet_edge.manifest import BatchProfile, Manifest

CALIB_METHODS = ("entropy", "percentile", "minmax")
PRESETS = ("default", "jetson")
INPUT_DTYPES = ("float32", "uint8")

CalibDataOpt = Annotated[
    Optional[Path],
    typer.Option("--calib-data", help="Calibration images: a dataset root (its training split) or a folder of images."),
]
CalibCountOpt = Annotated[
    Optional[int], typer.Option("--calib-count", help="Images in the calibration pass, sampled evenly over cameras (default 512).")
]
CalibMethodOpt = Annotated[
    Optional[str], typer.Option("--calib-method", help="entropy (TensorRT-style KL), percentile or minmax (default entropy).")
]
CalibPercentileOpt = Annotated[
    Optional[float], float_option("--calib-percentile", help="Percentile of |x| for --calib-method percentile (default 99.99).")
]
CalibCacheOpt = Annotated[
    Optional[Path],
    typer.Option("--calib-cache", help="Reuse the ranges of a calibration.json or a TensorRT cache instead of a calibration pass."),
]
ExcludeOpt = Annotated[
    Optional[List[str]],
    typer.Option("--exclude", help="Keep this node (name or output name; wildcards allowed) float in the INT8 models. Repeatable."),
]


def parse_batch(text: str) -> BatchProfile:
    """``"1,8,32"`` -> BatchProfile(1, 8, 32); UsageError unless three integers 1 <= min <= opt <= max <= MAX_BATCH."""
    from dgnet_edge.errors import ExportError
    from dgnet_edge.manifest import MAX_BATCH, BatchProfile

    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        raise UsageError(f"--batch must be three integers min,opt,max (e.g. 1,8,32), got {text!r}")
    try:
        return BatchProfile(*(int(p) for p in parts))
    except ExportError:
        raise UsageError(f"--batch must be increasing, 1 <= min <= opt <= max <= {MAX_BATCH} (e.g. 1,8,32), got {text!r}") from None


def _check_options(
    int8: bool, calib_data: Optional[Path], calib_count: Optional[int], calib_method: Optional[str], calib_percentile: Optional[float],
    calib_cache: Optional[Path], exclude: List[str], batch: Optional[str], preset: Optional[str], input_dtype: str,
) -> None:
    if input_dtype not in INPUT_DTYPES:
        raise UsageError(f"--input-dtype must be one of {', '.join(INPUT_DTYPES)}, got {input_dtype!r}")
    if batch is not None and preset is not None:
        raise UsageError("give either --batch or --preset, not both")
    if preset is not None and preset not in PRESETS:
        raise UsageError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    if batch is not None:
        parse_batch(batch)
    given = [name for name, value in (("--calib-data", calib_data), ("--calib-count", calib_count),
                                       ("--calib-method", calib_method), ("--calib-percentile", calib_percentile),
                                       ("--calib-cache", calib_cache), ("--exclude", exclude or None)) if value is not None]
    if not int8:
        if given:
            raise UsageError(f"{', '.join(given)} only apply with --int8")
        return
    if calib_data is None and calib_cache is None:
        raise UsageError("--int8 needs calibration images (--calib-data DIR) or ranges to reuse (--calib-cache FILE)")
    if calib_method is not None and calib_method not in CALIB_METHODS:
        raise UsageError(f"--calib-method must be one of {', '.join(CALIB_METHODS)}, got {calib_method!r}")
    if calib_cache is not None and calib_method is not None:
        raise UsageError("--calib-method applies to a calibration pass; --calib-cache reuses its ranges as they are")
    if calib_percentile is not None and calib_method != "percentile":
        raise UsageError("--calib-percentile goes with --calib-method percentile")
    if calib_percentile is not None and not 0.0 < calib_percentile <= 100.0:
        raise UsageError(f"--calib-percentile must be in (0, 100], got {calib_percentile}")
    if calib_count is not None and calib_count < 1:
        raise UsageError(f"--calib-count must be >= 1, got {calib_count}")
    if calib_data is not None:
        require_dir(calib_data, "--calib-data folder")
    if calib_cache is not None:
        require_file(calib_cache, "--calib-cache file")


def export(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint written by `dgnet-edge train`.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Export folder to write (written atomically).")],
    fp16: Annotated[bool, typer.Option("--fp16", help="Also write an fp16 embedder (fp32 inputs and outputs).")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Calibrate and write the INT8 models and TensorRT caches.")] = False,
    calib_data: CalibDataOpt = None,
    calib_count: CalibCountOpt = None,
    calib_method: CalibMethodOpt = None,
    calib_percentile: CalibPercentileOpt = None,
    calib_cache: CalibCacheOpt = None,
    exclude: ExcludeOpt = None,
    int8_generator: Annotated[
        bool, typer.Option("--int8-generator/--no-int8-generator",
                           help="With --int8: also INT8 CPU models of the generator parts (DG-Net checkpoints).")
    ] = True,
    batch: Annotated[
        Optional[str], typer.Option("--batch", help="TensorRT batch profile min,opt,max, e.g. 1,8,32 (default: the preset's).")
    ] = None,
    preset: Annotated[Optional[str], typer.Option("--preset", help="Batch profile preset: default (1,8,32) or jetson (1,8,16).")] = None,
    input_dtype: Annotated[str, typer.Option("--input-dtype", help="Graph input: float32 (0..255) or uint8 (TensorRT >= 8.6).")] = "float32",
    flip: Annotated[bool, typer.Option("--flip/--no-flip", help="Build the mirrored-image feature into the embedder.")] = True,
    code: Annotated[bool, typer.Option("--code/--no-code", help="The embedder also outputs the appearance code.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists and is not empty.")] = False,
    as_json: JsonOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Export a checkpoint to ONNX (fp32, optional fp16 and INT8) with a manifest, checked against PyTorch."""
    exclude = list(exclude or [])
    _check_options(int8, calib_data, calib_count, calib_method, calib_percentile, calib_cache, exclude, batch, preset, input_dtype)
    refuse_overwriting_inputs(out_dir, [calib_data, calib_cache], "--out folder")  # the checkpoint: export_checkpoint

    from dgnet_edge.export.pipeline import PROFILES, ExportOptions, export_checkpoint

    profile = parse_batch(batch) if batch is not None else PROFILES[preset or "default"]
    options = ExportOptions(fp16=fp16, flip=flip, with_code=code, input_dtype=input_dtype, profile=profile)
    with StageProgress(enabled=progress) as bars:
        extend = None
        if int8:
            from dgnet_edge.calib.histogram import DEFAULT_PERCENTILE
            from dgnet_edge.calib.pipeline import CalibrationOptions, int8_extend
            from dgnet_edge.calib.sampling import DEFAULT_COUNT

            calib = CalibrationOptions(
                data=calib_data, count=calib_count or DEFAULT_COUNT, method=calib_method,
                percentile=calib_percentile or DEFAULT_PERCENTILE, cache=calib_cache, exclude=tuple(exclude),
                generator=int8_generator,
            )
            extend = int8_extend(calib, bars.update)
        err.print(f"exporting {checkpoint} -> {out_dir}")
        manifest = export_checkpoint(checkpoint, out_dir, options, force=force, extend=extend)
    _summary(manifest, out_dir, as_json)


class StageProgress:
    """Progress bars on stderr, one per stage name reported by the library."""

    def __init__(self, enabled: bool):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=err, disable=not enabled)
        self._tasks: Dict[str, Any] = {}

    def __enter__(self) -> StageProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def update(self, stage: str, done: int, total: Optional[int]) -> None:
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(stage, total=total)
        self._progress.update(self._tasks[stage], completed=done, total=total)


def _file_rows(manifest: Manifest, out_dir: Path) -> List[Dict[str, Any]]:
    rows = [{"file": m.file, "what": f"{m.role} {m.precision}", "sha256": m.sha256} for m in manifest.models]
    if manifest.calibration:
        cal = manifest.calibration
        rows.append({"file": cal["file"], "what": f"ranges: {cal['method']}, {cal['count']} images", "sha256": cal["sha256"]})
        rows.extend({"file": c["file"], "what": f"TensorRT {c['tensorrt']} cache", "sha256": c["sha256"]}
                    for c in cal["caches"])
    rows.append({"file": "manifest.json", "what": "manifest", "sha256": None})
    for row in rows:
        path = out_dir / row["file"]
        row["bytes"] = path.stat().st_size if path.is_file() else None
    return rows


def _summary(manifest: Manifest, out_dir: Path, as_json: bool) -> None:
    rows = _file_rows(manifest, out_dir)
    if as_json:
        print_json({"out": str(out_dir), "files": rows, "calibration": manifest.calibration})
        return
    from rich.table import Table

    table = Table(title=f"{out_dir}")
    for col, justify in (("file", "left"), ("what", "left"), ("size", "right"), ("sha256", "left")):
        table.add_column(col, justify=justify)
    for row in rows:
        size = "" if row["bytes"] is None else f"{row['bytes'] / 1e6:.1f} MB" if row["bytes"] >= 1e5 else f"{row['bytes'] / 1e3:.1f} kB"
        table.add_row(row["file"], row["what"], size, (row["sha256"] or "")[:12])
    out.print(table)
    for entry in manifest.models:
        cos = entry.details.get("cosine_vs_fp32")
        if cos:
            err.print(f"{entry.file}: feature cosine to fp32 on {cos['images']} images: mean {cos['mean']:.4f}, min {cos['min']:.4f}")
        gen = entry.details.get("vs_fp32") if entry.role == "decoder" else None
        if gen:
            err.print(f"INT8 generator parts: images PSNR {gen['psnr_db']:.1f} dB to fp32 on {gen['pairs']} swaps "
                      f"(mean |error| {gen['mean_abs_error']:.2f} levels); structure codes cosine {gen['structure_cosine']:.4f}")
