"""`dgnet-edge bench synthesis`: one-shot cross-camera re-id with and without synthetic views.

    dgnet-edge bench synthesis data/synth --export runs/quickstart/export -k 8

A thin layer over :func:`dgnet_edge.apps.camera.oneshot.one_shot_cross_camera`: rank-1 and mAP of
each identity enrolled from one image with its real template alone, with K synthetic views, and with
K plain augmentations (the control); the table to stdout (``--json`` for machines).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dgnet_edge.cli.options import JsonOpt, ProgressOpt, finite
from dgnet_edge.cli.output import err, out, print_json
from dgnet_edge.paths import require_dir


def synthesis(
    world: Annotated[Path, typer.Argument(help="A Market-layout world (dgnet-edge data synth DIR).")],
    export_dir: Annotated[Path, typer.Option("--export", "-e", help="DG-Net export folder (embedder and generator parts).")],
    k: Annotated[int, typer.Option("--synthetic-views", "-k", min=1, help="Synthetic (and augmented) views per identity.")] = 8,
    weight: Annotated[float, typer.Option("--synthetic-weight", callback=finite, min=0.0, max=1.0, help="Score multiplier of synthetic and augmented templates.")] = 0.9,
    per_camera: Annotated[int, typer.Option("--per-camera", min=1, help="Training images per camera in the structure bank.")] = 32,
    backend: Annotated[str, typer.Option(help="auto | onnxruntime | tensorrt.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto | fp32 | fp16 | int8.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the enrolment cameras and the augmentations.")] = 0,
    progress: ProgressOpt = True,
    json_output: JsonOpt = False,
) -> None:
    """Rank-1/mAP of one-shot cross-camera re-id: real template alone, + K synthetic views, + K augmentations."""
    from rich.progress import Progress

    from dgnet_edge.apps.camera.oneshot import format_report, one_shot_cross_camera
    from dgnet_edge.apps.camera.synthesis import require_generator

    require_dir(world, "world")
    require_dir(export_dir, "export folder")
    require_generator(export_dir)
    with Progress(console=err, disable=not progress) as bar:
        task = bar.add_task("enrolling", total=None)
        report = one_shot_cross_camera(world, export_dir, k=k, weight=weight, per_camera=per_camera, backend=backend,
                                       precision=precision, seed=seed,
                                       on_identity=lambda done, total: bar.update(task, completed=done, total=total))
    if json_output:
        print_json(report.as_dict())
    else:
        out.print(format_report(report), markup=False, highlight=False)
