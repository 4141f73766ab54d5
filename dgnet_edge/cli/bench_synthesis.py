"""`dgnet-edge bench synthesis`: one-shot cross-camera re-id with and without synthetic views.

    dgnet-edge bench synthesis data/synth --export runs/quickstart/export -k 8
    dgnet-edge bench synthesis data/synth --export runs/quickstart/export --picture docs/synthetic_views.png

A thin layer over :func:`dgnet_edge.apps.camera.measure.oneshot.one_shot_cross_camera`: rank-1 and mAP of
each identity enrolled from one image with its real template alone, with K synthetic views, and with
K plain augmentations (the control); the table to stdout (``--json`` for machines). ``--picture``
also writes one identity's enrolment image, structure sources, synthetic views and real images from
the other cameras (:func:`~dgnet_edge.apps.camera.measure.oneshot.views_picture`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from dgnet_edge.apps.camera.defaults import BANK_PER_CAMERA, SYNTHETIC_VIEWS, SYNTHETIC_WEIGHT
from dgnet_edge.cli.options import BackendOpt, JsonOpt, PrecisionOpt, ProgressOpt, float_option
from dgnet_edge.cli.output import err, out, print_json
from dgnet_edge.paths import prepare_output_file, require_dir


def synthesis(
    world: Annotated[Path, typer.Argument(help="A Market-layout world (dgnet-edge data synth DIR).")],
    export_dir: Annotated[Path, typer.Option("--export", "-e", help="DG-Net export folder (embedder and generator parts).")],
    k: Annotated[int, typer.Option("--synthetic-views", "-k", min=1, help="Synthetic (and augmented) views per identity.")] = SYNTHETIC_VIEWS,
    weight: Annotated[float, float_option("--synthetic-weight", min=0.0, max=1.0, help="The extra (synthetic or augmented) templates' share in each identity's prototype.")] = SYNTHETIC_WEIGHT,
    per_camera: Annotated[int, typer.Option("--per-camera", min=1, help="Training images per camera in the structure bank.")] = BANK_PER_CAMERA,
    backend: BackendOpt = "auto",
    precision: PrecisionOpt = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the enrolment cameras and the augmentations.")] = 0,
    picture: Annotated[Optional[Path], typer.Option("--picture", help="Also write a PNG of one identity's synthetic views.")] = None,
    picture_identity: Annotated[int, typer.Option("--picture-identity", min=0, help="Which enrolled identity the picture shows (index by person id).")] = 0,
    progress: ProgressOpt = True,
    json_output: JsonOpt = False,
) -> None:
    """Rank-1/mAP of one-shot cross-camera re-id: real template alone, + K synthetic views, + K augmentations."""
    from rich.progress import Progress

    from dgnet_edge.apps.camera.measure.oneshot import format_report, one_shot_cross_camera
    from dgnet_edge.apps.camera.storage.synthesis import require_generator

    require_dir(world, "world")
    require_dir(export_dir, "export folder")
    require_generator(export_dir)
    if picture is not None:
        prepare_output_file(picture, "picture")
    with Progress(console=err, disable=not progress) as bar:
        task = bar.add_task("enrolling", total=None)
        report = one_shot_cross_camera(world, export_dir, k=k, weight=weight, per_camera=per_camera, backend=backend,
                                       precision=precision, seed=seed,
                                       on_identity=lambda done, total: bar.update(task, completed=done, total=total))
    if json_output:
        print_json(report.as_dict())
    else:
        out.print(format_report(report), markup=False, highlight=False)
    if picture is not None:
        write_views_picture(world, export_dir, picture, identity=picture_identity, k=k, per_camera=per_camera,
                            backend=backend, precision=precision, seed=seed)
        err.print(f"synthetic views of one identity: {picture}")


def write_views_picture(world: Path, export_dir: Path, path: Path, **options) -> None:
    import cv2

    from dgnet_edge.apps.camera.measure.oneshot import views_example, views_picture
    from dgnet_edge.atomic import write_atomic

    image = views_picture(views_example(world, export_dir, **options))
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    write_atomic(path, data.tobytes())
