"""`dgnet-edge eval-tracks PRED_DIR --gt DIR`: tracking metrics of a video bench (TrackEval)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from typing_extensions import Annotated

from dgnet_edge.cli.options import JsonOpt, float_option
from dgnet_edge.cli.output import out, print_json

if TYPE_CHECKING:
    from dgnet_edge.eval.tracking import TrackingResult


def eval_tracks(
    pred_dir: Annotated[Path, typer.Argument(metavar="PRED_DIR", help="Folder with camN.txt per camera (MOTChallenge results).")],
    gt: Annotated[Path, typer.Option("--gt", help="The video bench (written by `dgnet-edge data video`).")],
    min_visibility: Annotated[
        float,
        float_option("--min-visibility", min=0.0, max=1.0, help="Ground truth less visible than this is ignored, with the tracks on it."),
    ] = 0.25,
    as_json: JsonOpt = False,
) -> None:
    """Per-camera HOTA, IDF1, MOTA and ID switches, and the multi-camera IDF1 over all cameras (TrackEval).

    Per-camera figures map identities camera by camera; the multi-camera IDF1 maps them once over
    all cameras (DukeMTMC-MTMC), so a person given another id in another camera lowers it.
    """
    from dgnet_edge.data.video.world import load_site
    from dgnet_edge.eval.tracking import evaluate_tracks, read_predictions

    site = load_site(gt)
    result = evaluate_tracks(read_predictions(pred_dir, site), site, min_visibility)
    if as_json:
        print_json(result.to_dict())
    else:
        print_tracking(result, f"tracks in {pred_dir} (TrackEval; %)")


def print_tracking(result: TrackingResult, title: str) -> None:
    """The per-camera table and the multi-camera IDF1, on stdout."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in ("camera", "HOTA", "DetA", "AssA", "IDF1", "MOTA", "ID sw.", "GT boxes", "pred boxes"):
        table.add_column(name, justify="left" if name == "camera" else "right")

    def row(label: str, m, end_section: bool = False) -> None:
        empty = m.gt_boxes == 0 and m.pred_boxes == 0  # nothing to score: TrackEval's zeros mean nothing
        scores = ["-"] * 5 if empty else [f"{v:.1f}" for v in (m.hota, m.deta, m.assa, m.idf1, m.mota)]
        table.add_row(label, *scores, str(m.id_switches), str(m.gt_boxes), str(m.pred_boxes), end_section=end_section)

    names = list(result.per_camera)
    for i, (name, m) in enumerate(result.per_camera.items()):
        row(name, m, end_section=i == len(names) - 1)
    row("all", result.combined)
    out.print(table)
    out.print("per camera and 'all' (TrackEval's combination of the cameras): identities mapped camera by camera")
    out.print(
        f"multi-camera IDF1 (one identity mapping over all cameras, DukeMTMC-MTMC): {result.multi_camera_idf1:.1f} "
        f"(IDP {result.multi_camera_idp:.1f}, IDR {result.multi_camera_idr:.1f}); "
        f"ground truth under {result.min_visibility:g} visibility ignored"
    )
