"""`dgnet-edge data video DIR`: render the synthetic multi-camera video bench."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from typing_extensions import Annotated

from dgnet_edge.cli.options import JsonOpt, ProgressOpt, float_option
from dgnet_edge.cli.output import err, out, print_json

if TYPE_CHECKING:
    from dgnet_edge.data.video.world import BenchSummary


# The defaults repeat VideoSpec's so that `--help` shows them without importing the renderer.
def video(
    out_dir: Annotated[Path, typer.Argument(metavar="DIR", help="Folder to write the bench to (MOTChallenge layout).")],
    cameras: Annotated[int, typer.Option("--cameras", min=1, max=16, help="Cameras over the site.")] = 4,
    seconds: Annotated[float, float_option("--seconds", min=1.0, max=3600.0, help="Length of every camera's video.")] = 60.0,
    fps: Annotated[float, float_option("--fps", min=1.0, max=60.0, help="Frames per second.")] = 15.0,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Bench seed: same seed, same files.")] = 0,
    frames: Annotated[bool, typer.Option("--frames/--no-frames", help="Write JPEG frames in camN/img1/.")] = True,
    video_files: Annotated[bool, typer.Option("--video/--no-video", help="Write camN.mp4 (mp4v).")] = False,
    workers: Annotated[
        Optional[int], typer.Option("--workers", "-j", min=1, help="Rendering processes, one camera each (default: all CPU cores).")
    ] = None,
    preview: Annotated[
        Optional[Path], typer.Option("--preview", help="Also write a 2x2 grid of the cameras with ground-truth boxes (JPEG).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace DIR if it exists and is not empty.")] = False,
    as_json: JsonOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Render a multi-camera video bench with ground truth and faulty public detections into DIR.

    Written atomically (a half-written bench is never complete) and deterministic per seed.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from dgnet_edge.data.video.site import VideoSpec
    from dgnet_edge.data.video.world import check_target, write_bench
    from dgnet_edge.errors import UsageError
    from dgnet_edge.paths import prepare_output_file

    if not (frames or video_files):
        raise UsageError("--no-frames needs --video: the bench must hold frames, video or both")
    if preview is not None:
        prepare_output_file(preview, "preview image")
    spec = VideoSpec(cameras=cameras, seconds=seconds, fps=fps, seed=seed)
    check_target(out_dir.expanduser(), force)
    columns = (TextColumn("rendering frames"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, disable=not progress) as bar:
        task = bar.add_task("rendering", total=spec.frames * spec.cameras)
        summary = write_bench(
            out_dir,
            spec,
            frames=frames,
            video=video_files,
            workers=workers,
            force=force,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if preview is not None:
        from dgnet_edge.data.video.preview import write_preview

        write_preview(summary.root, preview)
    if as_json:
        print_json(summary.to_dict())
    else:
        _print_summary(summary)


def _print_summary(summary: BenchSummary) -> None:
    spec = summary.spec
    per = ", ".join(f"{v} on {k} camera{'s' if k > 1 else ''}" for k, v in summary.cameras_per_identity.items())
    det = summary.detections["measured"]
    p5, p50, p95 = summary.box_heights
    out.print(f"video bench in {summary.root}: {spec.cameras} cameras, {spec.width}x{spec.height}, {spec.frames} frames at {spec.fps:g} fps, seed {spec.seed}")
    out.print(f"{summary.identities} identities ({per}); {summary.reentries} re-entries into a camera")
    out.print(f"box heights (visible >= 0.5): p5 {p5:.0f}, median {p50:.0f}, p95 {p95:.0f} px")
    out.print(f"public detections: {100 * det['miss_rate']:.1f}% of ground-truth boxes missed, {det['false_per_frame']:.2f} false positives per frame")
    out.print(f"{summary.bytes_on_disk / 1e6:.1f} MB written in {summary.seconds:.1f} s with {summary.workers} worker(s)")
