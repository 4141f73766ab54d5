"""`dgnet-edge quickstart`: the main job on the embedded default (synthetic world, CPU, ONNX Runtime)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from typing_extensions import Annotated

from dgnet_edge.cli.options import ConfigOpt, OverridesOpt, ProgressOpt
from dgnet_edge.cli.output import err, out

DGNET_CONFIG = "dgnet_synth_small"


def quickstart(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Where the run goes.")] = Path("runs/quickstart"),
    world: Annotated[Path, typer.Option("--world", help="The synthetic world (rendered if missing).")] = Path("data/synth"),
    video: Annotated[Path, typer.Option("--video", help="The multi-camera video bench (rendered if missing).")] = Path("data/video"),
    config: ConfigOpt = "synth_small",
    overrides: OverridesOpt = None,
    dgnet_config: Annotated[str, typer.Option("--dgnet-config", help="DG-Net's YAML config file or built-in config name.")] = DGNET_CONFIG,
    dgnet_overrides: Annotated[Optional[List[str]], typer.Option("--dgnet-set", help="Override a value of the DG-Net config, e.g. --dgnet-set dgnet.max_minutes=30 (repeatable; --set is E_a's).")] = None,
    dgnet: Annotated[bool, typer.Option("--dgnet/--no-dgnet", help="Train DG-Net after E_a and export it with its generator; --no-dgnet exports E_a alone (faster, no synthesis in the camera app).")] = True,
    batch: Annotated[str, typer.Option("--batch", help="Batch sizes the report times, e.g. 1,8,32.")] = "1,8,32",
    runs: Annotated[int, typer.Option("--runs", min=1, help="Timed runs per batch size in the report.")] = 30,
    progress: ProgressOpt = True,
) -> None:
    """Synthetic world -> small E_a -> DG-Net with E_a as its teacher -> export with INT8 (the
    embedder and the generator parts) -> accuracy/latency report -> the camera app on the
    multi-camera video bench.

    Re-running skips the finished steps (world, E_a, DG-Net, export, threshold, video bench) and
    measures the report and the camera app again; a stopped training run resumes.
    """
    from dgnet_edge.errors import UsageError

    if not dgnet and (dgnet_overrides or dgnet_config != DGNET_CONFIG):
        raise UsageError("--dgnet-config and --dgnet-set configure DG-Net, which --no-dgnet leaves out")
    from rich.progress import Progress
    from rich.table import Table

    from dgnet_edge.apps.quickstart import quickstart as run
    from dgnet_edge.apps.report.render import report_tables
    from dgnet_edge.cli.eval_tracks import print_tracking
    from dgnet_edge.cli.export import StageProgress
    from dgnet_edge.cli.report import RowProgress, parse_batches, rich_table

    batches = parse_batches(batch)
    with Progress(console=err, disable=not progress) as world_bar, StageProgress(progress) as export_bars, \
            RowProgress(progress) as report_bars:
        task = world_bar.add_task("rendering the world", total=None)
        video_task = world_bar.add_task("rendering the video bench", total=None, visible=False)

        def on_video(done: int, total: int) -> None:
            world_bar.update(video_task, completed=done, total=total, visible=True)

        result = run(out_dir, world, video, config, list(overrides or []), progress, batches, runs,
                     on_world_progress=lambda done, total: world_bar.update(task, completed=done, total=total),
                     on_export_progress=export_bars.update, on_report_progress=report_bars.update,
                     on_video_progress=on_video, dgnet=dgnet, dgnet_config=dgnet_config,
                     dgnet_overrides=list(dgnet_overrides or []))
    m = result.metrics
    table = Table(title=f"E_a (PyTorch) on the synthetic world ({world}), AP: {m['ap']}")
    for col in ("rank-1", "rank-5", "rank-10", "mAP", "mINP"):
        table.add_column(col, justify="right")
    table.add_row(*(f"{m[k]:.1f}" for k in ("rank1", "rank5", "rank10", "mAP", "mINP")))
    out.print(table)
    if result.dgnet_metrics is not None:
        d = result.dgnet_metrics
        table = Table(title="DG-Net (PyTorch): its E_a on the synthetic world, and the teacher's top-1 on swapped "
                            "images (x_ba: b's structure in a's appearance)")
        for col in ("rank-1", "mAP", "swap = appearance id", "swap = structure id", "chance"):
            table.add_column(col, justify="right")
        table.add_row(*(f"{d[k]:.1f}" for k in ("rank1", "mAP", "swap_teacher_top1_appearance",
                                                 "swap_teacher_top1_structure", "swap_chance")))
        out.print(table)
    for report_table in report_tables(result.report):
        out.print(rich_table(report_table))
    print_tracking(result.tracking, f"dgnet-edge demo on the video bench {result.video} (public detections, "
                   f"{len(result.demo['cameras'])} cameras, {result.demo['fps']:.0f} frames/s; TrackEval, %)")
    if "synthesis" in result.demo:
        syn = result.demo["synthesis"]
        out.print(f"synthesis at enrolment: on ({syn['done']} identities rendered, median {syn['median_s']} s, "
                  f"{syn['dropped']} dropped)")
    else:
        out.print("synthesis at enrolment: off (the export has no generator parts)")
    for step, seconds in result.timings.items():
        err.print(f"{step}: {seconds / 60:.1f} min")
    err.print(f"checkpoint: {result.checkpoint}")
    if result.dgnet is not None:
        err.print(f"DG-Net: {result.dgnet}")
    err.print(f"export: {result.export}")
    err.print(f"report: {', '.join(str(p) for p in result.report_files.values())}")
    err.print(f"camera app: {out_dir / 'demo'} (tracks, events.jsonl, gallery.db); re-id threshold {result.threshold:.4f}")
