"""`dgnet-edge bench camera`: the camera app against ByteTrack on a video bench; speed and memory.

    dgnet-edge data video data/video
    dgnet-edge bench camera data/video --export runs/quickstart/export --soak 10000

A thin layer over :func:`dgnet_edge.apps.camera.measure.camera_bench.run_camera_bench`: the tables go to stdout
(``--json`` for machines), the tracks of every tracker to ``--out``; exit 1 when a target is missed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from dgnet_edge.atomic import write_atomic
from dgnet_edge.cli.options import CameraConfigOpt, CameraSetOpt, JsonOpt, float_option
from dgnet_edge.cli.output import out, print_json
from dgnet_edge.errors import UsageError
from dgnet_edge.paths import prepare_output_dir, require_dir


def camera(
    bench_dir: Annotated[Path, typer.Argument(help="A video bench (dgnet-edge data video DIR).")],
    export_dir: Annotated[Optional[Path], typer.Option("--export", "-e", help="Export folder of the re-id embedder (or the config's embedder.export).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for each tracker's tracks and galleries.")] = Path("runs/camera_bench"),
    threshold: Annotated[Optional[float], float_option("--threshold", min=-1.0, max=1.0, help="Re-id threshold (default: the export's calibrated one).")] = None,
    soak_frames: Annotated[int, typer.Option("--soak", min=0, help="Frames of a soak run over the looped bench, resident memory sampled (0: none).")] = 0,
    config_file: CameraConfigOpt = None,
    overrides: CameraSetOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Per-camera IDF1/HOTA and multi-camera IDF1 of the app, the app without appearance, and ByteTrack; speed; memory.

    The app rows run the camera config (``--config``, ``--set``: the settings under test) on the
    bench's cameras with its public detections."""
    from dgnet_edge.apps.camera.config import load_camera_config
    from dgnet_edge.apps.camera.measure.camera_bench import format_bench, run_camera_bench
    from dgnet_edge.data.video.world import load_site

    load_site(require_dir(bench_dir, "video bench"))
    given = [(key, str(v) if isinstance(v, Path) else v) for key, v in
             (("embedder.export", export_dir), ("identities.threshold", threshold)) if v is not None]
    base = load_camera_config(config_file, given, overrides or ())
    if base.embedder.export is None:
        raise UsageError("give the export to bench: --export DIR (or embedder.export in --config)")
    require_dir(Path(base.embedder.export), "export folder")
    prepare_output_dir(out_dir)
    report = run_camera_bench(bench_dir, out_dir, base, soak_frames)
    body = report.as_dict()
    write_atomic(out_dir / "camera_bench.json", (json.dumps(body, indent=2) + "\n").encode())
    if json_output:
        print_json(body)
    else:
        out.print(format_bench(report), markup=False, highlight=False)
    if any(met is False for *_, met in report.targets()):
        raise typer.Exit(1)
