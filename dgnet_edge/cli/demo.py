"""`dgnet-edge demo`: the live camera re-id app.

    dgnet-edge demo --source data/video/cam1 --source data/video/cam2 --export runs/quickstart/export
    dgnet-edge demo --source 0 --detector hog --export exports/market --show
    dgnet-edge demo --source vtest.avi --detector ssdlite --export runs/quickstart/export
    dgnet-edge demo --jetson-csi 0 --jetson-rtsp rtsp://cam2/stream --detector yolo:yolov8n.engine --export exports/market

Every source is one camera; all share one gallery (``--gallery``), so a person keeps their identity
when they leave a view and come back, or appear on another camera, and across runs. A thin layer
over :class:`dgnet_edge.apps.camera.live.app.CameraApp`: options and paths are checked before any source
is opened, progress and logs go to stderr, a summary to stdout.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import typer
from typing_extensions import Annotated

from dgnet_edge.apps.camera.defaults import REID_EVERY, SYNTHETIC_VIEWS, SYNTHETIC_WEIGHT
from dgnet_edge.cli.options import BackendOpt, JsonOpt, PrecisionOpt, ProgressOpt, float_option
from dgnet_edge.cli.output import err, out, print_json
from dgnet_edge.errors import UsageError
from dgnet_edge.paths import prepare_output_dir, prepare_output_file, require_dir

DETECTOR_HELP = ("auto (per camera: a video bench folder's public detections, else ssdlite when fetched, else hog), "
                 "ssdlite[:FILE.onnx] (a person SSD, fetched once: dgnet-edge detector fetch ssdlite), hog, motion, "
                 "public[:DIR] (MOTChallenge det.txt; DIR: a bench folder, default each source's own) or "
                 "yolo:FILE.onnx|FILE.engine")


def parse_detector(text: str) -> Tuple[str, Optional[str]]:
    """``"yolo:model.onnx"`` -> ("yolo", "model.onnx"); UsageError for an unknown kind."""
    kind, _, arg = text.partition(":")
    kind = kind.strip().lower()
    if kind not in ("auto", "ssdlite", "hog", "motion", "public", "yolo"):
        raise UsageError(f"--detector {text!r}: {DETECTOR_HELP}")
    if kind == "yolo" and not arg:
        raise UsageError("--detector yolo needs the model file: --detector yolo:FILE.onnx (or FILE.engine)")
    if kind in ("auto", "hog", "motion") and arg:
        raise UsageError(f"--detector {kind} takes no argument, got {text!r}")
    if kind == "ssdlite" and text.endswith(":") and not arg:
        raise UsageError("--detector ssdlite: give the model file after the colon (ssdlite:FILE.onnx), or nothing for the cached one")
    return kind, arg or None


def demo(
    source: Annotated[Optional[List[str]], typer.Option("--source", help="A camera: webcam index, video file, image folder, rtsp:// or http:// URL, GStreamer pipeline, or a video bench camera folder; NAME=SPEC names it (NAME: ASCII letters, digits, _ and -, starting with a letter). Repeatable.")] = None,
    jetson_csi: Annotated[Optional[List[int]], typer.Option("--jetson-csi", min=0, help="A Jetson CSI camera by sensor id (nvarguscamerasrc pipeline). Repeatable.")] = None,
    jetson_rtsp: Annotated[Optional[List[str]], typer.Option("--jetson-rtsp", help="An RTSP stream decoded by the Jetson's hardware decoder (nvv4l2decoder). Repeatable.")] = None,
    export_dir: Annotated[Optional[Path], typer.Option("--export", "-e", help="Export folder of the re-id embedder (dgnet-edge export).")] = None,
    detector: Annotated[str, typer.Option("--detector", "-d", help=DETECTOR_HELP)] = "auto",
    backend: BackendOpt = "auto",
    precision: PrecisionOpt = "auto",
    gallery: Annotated[str, typer.Option("--gallery", "-g", help="Gallery shared by the cameras and kept across runs: a file (SQLite), or postgresql://USER@HOST[:PORT]/DATABASE to share it with other devices.")] = "gallery.db",
    threshold: Annotated[Optional[float], float_option("--threshold", min=-1.0, max=1.0, help="Cosine score from which a track is a known identity (default: the export's calibrated reid_threshold.json).")] = None,
    appearance: Annotated[bool, typer.Option("--appearance/--no-appearance", help="Re-id features and the gallery; --no-appearance tracks by motion alone (IoU + Kalman), per camera.")] = True,
    reid_every: Annotated[int, typer.Option("--reid-every", min=0, help="Frames between feature refreshes of a confirmed track (0: never).")] = REID_EVERY,
    show: Annotated[Optional[bool], typer.Option("--show/--no-show", help="A window per camera (keys: q quit, p pause, click + e enrol). Default: when a display is available.")] = None,
    save: Annotated[Optional[Path], typer.Option("--save", help="Folder for an annotated video per camera (CAMERA.mp4).")] = None,
    save_txt: Annotated[Optional[Path], typer.Option("--save-txt", help="Folder for MOTChallenge tracks per camera (CAMERA.txt), the input of eval-tracks.")] = None,
    events: Annotated[Optional[Path], typer.Option("--events", help="JSON lines file of events: enter, leave, reidentified, new_identity.")] = None,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", min=1, help="Stop after this many frames (all cameras together).")] = None,
    synthesise: Annotated[Optional[bool], typer.Option("--synthesise/--no-synthesise", help="Render each new identity in structures the cameras saw and add the views as synthetic templates. Default: when the export has generator parts (DG-Net).")] = None,
    synthetic_views: Annotated[int, typer.Option("--synthetic-views", "-k", min=1, help="Synthetic views per new identity.")] = SYNTHETIC_VIEWS,
    synthetic_weight: Annotated[float, float_option("--synthetic-weight", min=0.0, max=1.0, help="Score multiplier of synthetic templates in matching (real ones: 1).")] = SYNTHETIC_WEIGHT,
    open_timeout: Annotated[float, float_option("--open-timeout", min=0.1, help="Seconds to wait for a source to open.")] = 10.0,
    read_timeout: Annotated[float, float_option("--read-timeout", min=0.1, help="Seconds without a frame before a live source counts as dropped and is reopened.")] = 5.0,
    progress: ProgressOpt = True,
    json_output: JsonOpt = False,
) -> None:
    """Detect, track and re-identify people on one or more cameras with a persistent gallery."""
    from dgnet_edge.apps.camera.live.display import resolve_show
    from dgnet_edge.apps.camera.live.sources import jetson_csi_pipeline, jetson_rtsp_pipeline

    specs = list(source or []) + [jetson_csi_pipeline(n) for n in jetson_csi or []] + [jetson_rtsp_pipeline(u) for u in jetson_rtsp or []]
    if not specs:
        raise UsageError("give at least one camera: --source (webcam index, file, folder, URL, pipeline), --jetson-csi or --jetson-rtsp")
    kind, arg = parse_detector(detector)
    if kind == "ssdlite" and arg is None:  # before any source is opened: say how to fetch it
        from dgnet_edge.apps.camera.live.ssdlite import require_model

        require_model()
    if appearance and export_dir is None:
        raise UsageError("--export is needed for re-id (the embedder's export folder); or track without it: --no-appearance")
    if export_dir is not None:
        require_dir(export_dir, "export folder")
        if synthesise and appearance:
            from dgnet_edge.apps.camera.storage.synthesis import require_generator

            require_generator(export_dir)
    if not appearance and threshold is not None:
        raise UsageError("--threshold needs appearance: drop --no-appearance")
    if not appearance and synthesise:
        raise UsageError("--synthesise needs appearance (the gallery): drop --no-appearance")
    show = resolve_show(show)
    from dgnet_edge.apps.camera.storage.open_gallery import is_database_url, parse_gallery_spec

    gallery_spec = parse_gallery_spec(gallery)
    if appearance and not is_database_url(gallery_spec):
        prepare_output_file(gallery_spec, "gallery")
    for folder, what in ((save, "--save folder"), (save_txt, "--save-txt folder")):
        if folder is not None:
            prepare_output_dir(folder, what)
    if events is not None:
        prepare_output_file(events, "--events file")

    from dgnet_edge.apps.camera.live.run import DemoConfig, run_demo

    config = DemoConfig(
        sources=specs, detector=kind, detector_arg=arg, export_dir=export_dir if appearance else None,
        backend=backend, precision=precision, gallery=gallery_spec, threshold=threshold, reid_every=reid_every,
        show=show, save=save, save_txt=save_txt, events=events, max_frames=max_frames, synthesise=synthesise,
        synthetic_views=synthetic_views, synthetic_weight=synthetic_weight,
        open_timeout_s=open_timeout, read_timeout_s=read_timeout,
    )
    with _progress(progress and not show) as on_progress:
        summary = run_demo(config, on_progress=on_progress)
    _print_summary(summary, json_output)


@contextlib.contextmanager
def _progress(enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("[bold]demo"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                   TimeElapsedColumn(), console=err, disable=not enabled)
    task = bar.add_task("demo", total=None, rate="")
    with bar:
        def update(frames: int, total: Optional[int] = None, fps: float = 0.0) -> None:
            bar.update(task, completed=frames, total=total, rate=f"{fps:.1f} frames/s")

        yield update


def _print_summary(summary: Dict[str, Any], json_output: bool) -> None:
    if json_output:
        print_json(summary)
        return
    from rich.table import Table

    table = Table(title=f"demo: {summary['frames']} frames in {summary['wall_s']:.1f} s ({summary['fps']:.1f} frames/s)")
    for column in ("camera", "frames", "detections", "embedded", "state", "reconnects"):
        table.add_column(column, justify="left" if column in ("camera", "state") else "right")
    for name, cam in summary["cameras"].items():
        table.add_row(name, str(cam["frames"]), str(cam["detections"]), str(cam["embedded"]), cam["state"], str(cam["reconnects"]))
    out.print(table)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary["events"].items())) or "none"
    out.print(f"events: {counts}; identities in the gallery: {summary.get('identities', '-')}")
    if "synthesis" in summary:
        syn = summary["synthesis"]
        banked = ", ".join(f"{c} {n}" for c, n in syn["structures"].items()) or "none"
        out.print(f"synthesis: {syn['done']} enrolments rendered (median {syn['median_s']} s), {syn['dropped']} dropped, "
                  f"{syn['no_structures']} before any structure was banked; structures banked: {banked}")
    for what, paths in summary.get("written", {}).items():
        out.print(f"{what}: {', '.join(paths)}")
