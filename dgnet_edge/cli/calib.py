"""`dgnet-edge calib ...`: INT8 checks on an export folder made with `dgnet-edge export --int8`.

    dgnet-edge calib check exports/synth --data data/synth        # fp32 vs INT8: rank-1, mAP, mINP, cosine
    dgnet-edge calib sensitivity exports/synth                      # which layers cost the most
    dgnet-edge calib cache exports/synth --tensorrt 10.7.0 --out embedder.trt-100700.cache
    dgnet-edge calib bench exports/synth --threads 1                 # ONNX Runtime latency, QDQ vs QOperator
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from dgnet_edge.cli.export import StageProgress
from dgnet_edge.cli.options import ExportDirArg, JsonOpt, ProgressOpt
from dgnet_edge.cli.output import err, out, print_json
from dgnet_edge.errors import UsageError

app = typer.Typer(help="INT8 calibration: accuracy check, per-layer sensitivity, TensorRT caches.", no_args_is_help=True)


@app.command("check")
def check(
    export_dir: ExportDirArg,
    data: Annotated[Optional[Path], typer.Option("--data", help="Dataset root to rank (default: the checkpoint's).")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset reader (default: the checkpoint's).")] = None,
    ap: Annotated[str, typer.Option("--ap", help="AP convention: standard | trapezoid (Market MATLAB).")] = "standard",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per inference batch.")] = 32,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="ONNX Runtime threads (default: all cores).")] = None,
    latency_runs: Annotated[int, typer.Option("--latency-runs", min=0, help="Timed batch-1 runs per model (0: skip).")] = 20,
    as_json: JsonOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Rank the dataset with the fp32 and both INT8 models in ONNX Runtime; exit 1 if an INT8 model misses
    the targets (mean cosine >= 0.99, rank-1 drop <= 1 point, mAP drop <= 1.5 points)."""
    if ap not in ("standard", "trapezoid"):
        raise UsageError(f"--ap must be standard or trapezoid, got {ap!r}")
    from dgnet_edge.calib.accuracy import check_accuracy

    with StageProgress(enabled=progress) as bars:
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            bars.update("ranking", done, None)

        report = check_accuracy(export_dir, data, dataset, ap=ap, batch_size=batch_size, threads=threads,
                                latency_runs=latency_runs, on_batch=advance)
    if as_json:
        print_json(report.to_dict())
    else:
        from rich.table import Table

        t = report.targets
        table = Table(title=f"{export_dir} on {report.root}: {report.queries} queries, {report.gallery} gallery (AP: {report.ap})",
                      caption=f"targets: cosine >= {t.min_cosine}, rank-1 drop <= {t.max_rank1_drop}, mAP drop <= {t.max_map_drop}")
        for col in ("model", "rank-1", "rank-5", "mAP", "mINP", "cos mean", "cos min", "ms b=1", "verdict"):
            table.add_column(col, justify="left" if col in ("model", "verdict") else "right")
        for row in report.rows():
            verdict = "reference" if row.precision == "fp32" else ("ok" if row.passed else "; ".join(row.failures))
            latency = "" if row.latency_ms is None else f"{row.latency_ms:.1f}"
            table.add_row(row.precision, f"{row.rank1:.2f}", f"{row.rank5:.2f}", f"{row.mAP:.2f}", f"{row.mINP:.2f}",
                          f"{row.cosine_mean:.4f}", f"{row.cosine_min:.4f}", latency, verdict)
        out.print(table)
    if not report:
        raise typer.Exit(1)


@app.command("sensitivity")
def sensitivity(
    export_dir: ExportDirArg,
    data: Annotated[Optional[Path], typer.Option("--data", help="Images to measure on (default: the calibration images' folder).")] = None,
    images: Annotated[int, typer.Option("--images", min=1, help="Images (camera-stratified sample).")] = 32,
    mode: Annotated[str, typer.Option("--mode", help="single (quantize one layer at a time) | all-but-one.")] = "single",
    flavour: Annotated[str, typer.Option("--flavour", help="tensorrt (symmetric int8 Q/DQ) | cpu (the ONNX Runtime model).")] = "tensorrt",
    top: Annotated[int, typer.Option("--top", min=1, help="Layers shown in the table.")] = 10,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Where to write the report (default: EXPORT_DIR/sensitivity.json).")] = None,
    as_json: JsonOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Per-layer sensitivity: the embedding cosine to fp32 with one layer quantized (or all but one)."""
    if mode not in ("single", "all-but-one"):
        raise UsageError(f"--mode must be single or all-but-one, got {mode!r}")
    if flavour not in ("tensorrt", "cpu"):
        raise UsageError(f"--flavour must be tensorrt or cpu, got {flavour!r}")
    from dgnet_edge.calib.ranges import FILE_NAME, load_ranges
    from dgnet_edge.calib.sampling import calibration_set, image_batches
    from dgnet_edge.calib.sensitivity import FILE_NAME as REPORT_NAME
    from dgnet_edge.calib.sensitivity import layer_sensitivity
    from dgnet_edge.manifest import MANIFEST_NAME, load_manifest, verified_path
    from dgnet_edge.paths import prepare_output_file, refuse_overwriting_inputs

    report_path = prepare_output_file(out_file or Path(export_dir) / REPORT_NAME, "--out file")
    manifest = load_manifest(export_dir)
    if manifest.calibration is None:
        raise UsageError(f"{export_dir} has no INT8 calibration: export it with --int8 first")
    root = data or _calibration_root(manifest)
    if root is None:
        raise UsageError("the calibration images' folder is not known (ranges came from a cache): pass --data")
    fp32 = verified_path(export_dir, manifest.model("embedder", "fp32"))
    refuse_overwriting_inputs(report_path, [Path(export_dir) / MANIFEST_NAME, Path(export_dir) / FILE_NAME, fp32],
                              "--out file")
    ranges = load_ranges(Path(export_dir) / FILE_NAME)
    sample = calibration_set(root, images, seed=1, dataset=manifest.source.get("dataset"))
    fmt = manifest.input
    feeds = list(image_batches(sample.paths, fmt.height, fmt.width, fmt.dtype, 16))
    excluded = tuple(manifest.calibration.get("excluded_nodes", ()))
    with StageProgress(enabled=progress) as bars:
        report = layer_sensitivity(fp32, ranges, feeds, mode, flavour, exclude=excluded, progress=bars.update)
    path = report.save(report_path)
    if as_json:
        print_json(report.to_dict())
        return
    from rich.table import Table

    what = "cost = 1 - cosine with only this layer quantized" if mode == "single" else \
        "gain = cosine rise when only this layer stays float"
    table = Table(title=f"INT8 sensitivity ({flavour}, {mode}, {report.images} images): all layers quantized -> "
                        f"cosine {report.baseline['cosine_mean']:.5f}", caption=f"{what}; full report: {path}")
    for col in ("node", "op", "cosine mean", "cosine min", "cost" if mode == "single" else "gain"):
        table.add_column(col, justify="left" if col in ("node", "op") else "right")
    for layer in report.top(top):
        table.add_row(layer.node, layer.op_type, f"{layer.cosine_mean:.5f}", f"{layer.cosine_min:.5f}", f"{layer.cost:.5f}")
    out.print(table)


def _calibration_root(manifest) -> Optional[Path]:
    source = (manifest.calibration or {}).get("source", {})
    if source.get("kind") in ("dataset", "folder") and source.get("root"):
        return Path(source["root"])
    root = manifest.source.get("data_root")
    return Path(root) if root else None


@app.command("cache")
def cache(
    export_dir: ExportDirArg,
    tensorrt: Annotated[str, typer.Option("--tensorrt", help="TensorRT version the cache is for, e.g. 10.7.0.")],
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Cache file (default: EXPORT_DIR/embedder.trt-<version>.cache).")] = None,
) -> None:
    """Write a TensorRT calibration cache for another TensorRT version from the export's calibration.json."""
    from dgnet_edge.atomic import write_atomic
    from dgnet_edge.calib.pipeline import cache_amax
    from dgnet_edge.calib.ranges import FILE_NAME, load_ranges
    from dgnet_edge.calib.trt_cache import cache_file_name, cache_text, version_number
    from dgnet_edge.errors import ExportError
    from dgnet_edge.manifest import MANIFEST_NAME, load_manifest, verified_path
    from dgnet_edge.paths import prepare_output_file, refuse_overwriting_inputs

    try:
        version_number(tensorrt)
    except ExportError as e:
        raise UsageError(f"--tensorrt: {e}") from None
    path = prepare_output_file(out_file or Path(export_dir) / cache_file_name(tensorrt), "--out file")
    manifest = load_manifest(export_dir)
    if manifest.calibration is None:
        raise UsageError(f"{export_dir} has no INT8 calibration: export it with --int8 first")
    ranges = load_ranges(Path(export_dir) / FILE_NAME)
    fp32 = verified_path(export_dir, manifest.model("embedder", "fp32"))
    refuse_overwriting_inputs(path, [Path(export_dir) / MANIFEST_NAME, Path(export_dir) / FILE_NAME, fp32], "--out file")
    amax = cache_amax(fp32, ranges, manifest.calibration.get("excluded_nodes", ()))
    write_atomic(path, cache_text(amax, tensorrt).encode("ascii"))
    err.print(f"wrote {path} ({len(amax)} tensors, TensorRT {tensorrt})")
    out.print(str(path))


@app.command("bench")
def bench(
    export_dir: ExportDirArg,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Images per run.")] = 1,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Timed runs per model (interleaved).")] = 50,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="ONNX Runtime threads (default: all cores).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Time the export's embedders in ONNX Runtime, plus the CPU INT8 model in the other format (QDQ/QOperator)."""
    import os

    from dgnet_edge.calib.latency import time_models

    timings = time_models(export_dir, batch, runs, threads)
    if as_json:
        print_json({"batch": batch, "runs": runs, "threads": threads or os.cpu_count(), "models": [t.__dict__ for t in timings]})
        return
    from rich.table import Table

    fp32 = next((t.median_ms for t in timings if t.model.startswith("fp32")), None)
    table = Table(title=f"ONNX Runtime, batch {batch}, {threads or os.cpu_count()} thread(s), {runs} interleaved runs")
    for col in ("model", "median ms", "min ms", "x fp32"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for t in timings:
        table.add_row(t.model, f"{t.median_ms:.2f}", f"{t.min_ms:.2f}", f"{fp32 / t.median_ms:.2f}" if fp32 else "")
    out.print(table)
