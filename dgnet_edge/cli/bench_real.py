"""`dgnet-edge bench real`: the embedded model against simple baselines on real people.

    dgnet-edge data vtest                 # once: vtest.avi from Debian's opencv-doc
    dgnet-edge data mobilenet             # once: the ImageNet MobileNetV2 baseline's weights
    dgnet-edge bench real --export runs/quickstart/export

A thin layer over :func:`dgnet_edge.apps.camera.measure.real_people.measure_real_set`: rank-1 and ROC AUC of each
method on the hand-labelled crops of vtest.avi frames 0-399; the table to stdout (``--json`` for
machines).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from dgnet_edge.cli.options import BackendOpt, JsonOpt, PrecisionOpt
from dgnet_edge.cli.output import out, print_json
from dgnet_edge.paths import require_dir, require_file


def real(
    export_dir: Annotated[Optional[Path], typer.Option("--export", "-e", help="Export folder whose embedder is measured (left out: the baselines only).")] = None,
    video: Annotated[Optional[Path], typer.Option("--video", help="vtest.avi (default: the cached one, see `dgnet-edge data vtest`).")] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="Labels CSV (frame,x1,y1,x2,y2,person; frames 0-399); default: the shipped set.")] = None,
    cache: Annotated[Optional[Path], typer.Option("--cache", help="Cache folder holding the video and the MobileNetV2 weights (default: $DGNET_EDGE_CACHE, else ~/.cache/dgnet-edge).")] = None,
    backend: BackendOpt = "auto",
    precision: PrecisionOpt = "auto",
    json_output: JsonOpt = False,
) -> None:
    """Rank-1 and ROC AUC on real people: the export's embedder, HSV histograms and ImageNet MobileNetV2."""
    import importlib.util

    from dgnet_edge.apps.camera.measure.real_people import format_report, measure_real_set
    from dgnet_edge.data.vtest import require_video

    if export_dir is not None:
        require_dir(export_dir, "export folder")
    video = require_file(video, "video") if video is not None else require_video(cache)
    weights, unavailable = None, ""
    if importlib.util.find_spec("torch") is None:
        unavailable = "needs torch: pip install 'dgnet-edge[train]'"
    else:
        from dgnet_edge.models.mobilenetv2 import require_weights

        weights = require_weights(cache)
    report = measure_real_set(video, export_dir, labels_file=labels, backend=backend, precision=precision,
                              mobilenet_weights=weights, mobilenet_unavailable=unavailable)
    if json_output:
        print_json(report.as_dict())
    else:
        out.print(format_report(report), markup=False, highlight=False, soft_wrap=True)
