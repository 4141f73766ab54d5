"""`dgnet-edge build`: TensorRT engines from an export folder, on the device that will run them."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from dgnet_edge.cli.options import ExportDirArg, JsonOpt
from dgnet_edge.cli.output import err, out, print_json
from dgnet_edge.errors import UsageError


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"


class Role(str, Enum):
    embedder = "embedder"
    structure = "structure"
    decoder = "decoder"
    all = "all"


class Int8Source(str, Enum):
    qdq = "qdq"
    cache = "cache"
    calibrate = "calibrate"


def build(
    export_dir: ExportDirArg,
    precision: Annotated[Precision, typer.Option("--precision", "-p", help="Engine precision.")],
    role: Annotated[Role, typer.Option("--role", help="Which model to build, or all the export has.")] = Role.embedder,
    int8_source: Annotated[
        Optional[Int8Source],
        typer.Option("--int8-source", help="INT8 from the Q/DQ model (qdq, default), the export's TensorRT "
                                            "calibration cache (cache) or live calibration (calibrate); "
                                            "cache and calibrate need TensorRT 8.5-10.x."),
    ] = None,
    calib_data: Annotated[
        Optional[Path], typer.Option("--calib-data", help="Folder of images for --int8-source calibrate.")
    ] = None,
    calib_images: Annotated[int, typer.Option("--calib-images", min=1, help="Calibrate on at most this many images.")] = 512,
    calib_batch: Annotated[int, typer.Option("--calib-batch", min=1, help="Calibration batch size.")] = 8,
    dla: Annotated[
        Optional[int], typer.Option("--dla", min=0, metavar="CORE", help="Build for this DLA core (Jetson), with GPU fallback.")
    ] = None,
    timing_cache: Annotated[
        Optional[Path], typer.Option("--timing-cache", help="Timing cache file to reuse and update (default: in the export's engines/).")
    ] = None,
    workspace_mb: Annotated[
        Optional[int], typer.Option("--workspace-mb", min=1, help="Workspace memory limit in MiB (default: TensorRT's).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Build TensorRT engines here and record them (GPU, compute capability, TensorRT version) in the manifest.

    Engines run only on the GPU generation and TensorRT version that built them: build on the target device.
    """
    if int8_source is not None and precision is not Precision.int8:
        raise UsageError("--int8-source applies to --precision int8 only")
    source = (int8_source or Int8Source.qdq).value
    if calib_data is not None and source != "calibrate":
        raise UsageError("--calib-data is used with --int8-source calibrate only")

    from dgnet_edge.export.tensorrt_build import BuildOptions, build_engines
    from dgnet_edge.paths import prepare_output_file, require_dir

    if calib_data is not None:
        require_dir(calib_data, "--calib-data folder")
    if timing_cache is not None:
        prepare_output_file(timing_cache, "--timing-cache file")

    options = BuildOptions(
        precision=precision.value,
        int8_source=source,
        calib_data=calib_data,
        calib_images=calib_images,
        calib_batch=calib_batch,
        dla_core=dla,
        timing_cache=timing_cache,
        workspace_mb=workspace_mb,
    )
    results = build_engines(export_dir, role.value, options)

    rows = [
        {
            "role": r.entry.role,
            "precision": r.entry.precision,
            "file": r.entry.file,
            "gpu": r.entry.gpu,
            "compute_capability": r.entry.compute_capability,
            "tensorrt": r.entry.tensorrt,
            "source": r.entry.source,
            "seconds": round(r.seconds, 2),
            "megabytes": round(r.path.stat().st_size / 2**20, 2),
        }
        for r in results
    ]
    if json_output:
        print_json({"export": str(export_dir), "engines": rows})
        return

    from rich.table import Table

    table = Table(title=f"TensorRT engines in {export_dir}")
    for column in ("role", "precision", "engine", "from", "GPU", "TensorRT", "MB", "build s"):
        table.add_column(column, justify="right" if column in ("MB", "build s") else "left")
    for row in rows:
        table.add_row(row["role"], row["precision"], row["file"], row["source"],
                      f"{row['gpu']} (sm {row['compute_capability']})", row["tensorrt"],
                      f"{row['megabytes']:.1f}", f"{row['seconds']:.1f}")
    out.print(table)
    err.print(f"built {len(rows)} engine(s); run them with the tensorrt backend on this device")
