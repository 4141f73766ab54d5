"""`dgnet-edge demo`: the live camera re-id app.

    dgnet-edge demo --source data/video/cam1 --source data/video/cam2 --export runs/quickstart/export
    dgnet-edge demo --source 0 --detector hog --export exports/market --show
    dgnet-edge demo --source vtest.avi --detector ssdlite --export runs/quickstart/export
    dgnet-edge demo --jetson-csi 0 --jetson-rtsp rtsp://cam2/stream --detector yolo:yolov8n.engine --export exports/market
    dgnet-edge demo --source data/video/cam1 --export runs/quickstart/export --events mqtt://broker:1883/site --device door
    dgnet-edge demo --config door.yaml --set tracker.max_lost_s=5      # a camera config (apps/camera/config.py)

Every source is one camera; all share one gallery (``--gallery``), so a person keeps their identity
when they leave a view and come back, or appear on another camera, and across runs. A thin layer
over :class:`dgnet_edge.apps.camera.live.app.CameraApp`: options and paths are checked before any source
is opened, progress and logs go to stderr, a summary to stdout.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import typer
from typing_extensions import Annotated

from dgnet_edge.apps.camera.defaults import DETECTOR_HELP, OPEN_TIMEOUT_S, READ_TIMEOUT_S, REID_EVERY, SYNTHETIC_VIEWS, SYNTHETIC_WEIGHT
from dgnet_edge.cli.options import BackendOpt, CameraConfigOpt, CameraSetOpt, JsonOpt, PrecisionOpt, ProgressOpt, float_option
from dgnet_edge.cli.output import err, out, print_json
from dgnet_edge.errors import UsageError
from dgnet_edge.paths import prepare_output_dir, prepare_output_file, require_dir

if TYPE_CHECKING:
    from dgnet_edge.apps.camera.config import CameraConfig


def parse_detector(text: str) -> Tuple[str, Optional[str]]:
    """``"yolo:model.onnx"`` -> ("yolo", "model.onnx"); UsageError for an unknown kind or a missing model."""
    from dgnet_edge.apps.camera.config import DetectorConfig

    kind, _, arg = text.partition(":")
    if kind.strip().lower() == "ssdlite" and text.endswith(":") and not arg:
        raise UsageError("--detector ssdlite: give the model file after the colon (ssdlite:FILE.onnx), or nothing for the cached one")
    try:
        detector = DetectorConfig(kind.strip().lower(), arg or None)
    except ValueError as e:
        raise UsageError(f"--detector {text!r}: {e}") from None
    return detector.kind, detector.model


def demo(
    source: Annotated[Optional[List[str]], typer.Option("--source", help="A camera: webcam index, video file, image folder, rtsp:// or http:// URL, GStreamer pipeline, or a video bench camera folder; NAME=SPEC names it (NAME: ASCII letters, digits, _ and -, starting with a letter). Repeatable.")] = None,
    jetson_csi: Annotated[Optional[List[int]], typer.Option("--jetson-csi", min=0, help="A Jetson CSI camera by sensor id (nvarguscamerasrc pipeline). Repeatable.")] = None,
    jetson_rtsp: Annotated[Optional[List[str]], typer.Option("--jetson-rtsp", help="An RTSP stream decoded by the Jetson's hardware decoder (nvv4l2decoder). Repeatable.")] = None,
    config_file: CameraConfigOpt = None,
    overrides: CameraSetOpt = None,
    export_dir: Annotated[Optional[Path], typer.Option("--export", "-e", help="Export folder of the re-id embedder (dgnet-edge export).")] = None,
    detector: Annotated[Optional[str], typer.Option("--detector", "-d", help=DETECTOR_HELP, show_default="auto")] = None,
    backend: BackendOpt = None,
    precision: PrecisionOpt = None,
    gallery: Annotated[Optional[str], typer.Option("--gallery", "-g", show_default="gallery.db", help="Gallery shared by the cameras and kept across runs: a file (SQLite), or postgresql://USER@HOST[:PORT]/DATABASE to share it with other devices.")] = None,
    threshold: Annotated[Optional[float], float_option("--threshold", min=-1.0, max=1.0, help="Cosine score from which a track is a known identity (default: the export's calibrated reid_threshold.json).")] = None,
    appearance: Annotated[Optional[bool], typer.Option("--appearance/--no-appearance", show_default="appearance", help="Re-id features and the gallery; --no-appearance tracks by motion alone (IoU + Kalman), per camera.")] = None,
    reid_every: Annotated[Optional[int], typer.Option("--reid-every", min=0, show_default=str(REID_EVERY), help="Frames between feature refreshes of a confirmed track (0: never).")] = None,
    show: Annotated[Optional[bool], typer.Option("--show/--no-show", help="A window per camera (keys: q quit, p pause, click + e enrol). Default: when a display is available.")] = None,
    save: Annotated[Optional[Path], typer.Option("--save", help="Folder for an annotated video per camera (CAMERA.mp4).")] = None,
    save_txt: Annotated[Optional[Path], typer.Option("--save-txt", help="Folder for MOTChallenge tracks per camera (CAMERA.txt), the input of eval-tracks.")] = None,
    events: Annotated[Optional[str], typer.Option("--events", metavar="FILE|URL", help="Where events go (enter, leave, reidentified, new_identity, merged; docs/events.md): a JSON lines file, or an MQTT broker: mqtt://[USER:PASSWORD@]HOST[:PORT]/TOPIC (mqtts:// for TLS), published to TOPIC/events/DEVICE with the device's status on TOPIC/status/DEVICE.")] = None,
    device: Annotated[Optional[str], typer.Option("--device", metavar="NAME", help="This device's name in every event and in the MQTT status topic (default: the host name).")] = None,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", min=1, help="Stop after this many frames (all cameras together).")] = None,
    synthesise: Annotated[Optional[bool], typer.Option("--synthesise/--no-synthesise", help="Render each new identity in structures the cameras saw and add the views as synthetic templates. Default: when the export has generator parts (DG-Net).")] = None,
    synthetic_views: Annotated[Optional[int], typer.Option("--synthetic-views", "-k", min=1, show_default=str(SYNTHETIC_VIEWS), help="Synthetic views per new identity.")] = None,
    synthetic_weight: Annotated[Optional[float], float_option("--synthetic-weight", min=0.0, max=1.0, show_default=str(SYNTHETIC_WEIGHT), help="The synthetic views' share in each identity's prototype (the mean of its real templates + this x the views' mean); views never score alone.")] = None,
    open_timeout: Annotated[Optional[float], float_option("--open-timeout", min=0.1, show_default=str(OPEN_TIMEOUT_S), help="Seconds to wait for a source to open.")] = None,
    read_timeout: Annotated[Optional[float], float_option("--read-timeout", min=0.1, show_default=str(READ_TIMEOUT_S), help="Seconds without a frame before a live source counts as dropped and is reopened.")] = None,
    progress: ProgressOpt = True,
    json_output: JsonOpt = False,
) -> None:
    """Detect, track and re-identify people on one or more cameras with a persistent gallery."""
    from dgnet_edge.apps.camera.config import load_camera_config
    from dgnet_edge.apps.camera.live.display import resolve_show
    from dgnet_edge.apps.camera.live.record import DEVICE_NAME, DEVICE_RULE
    from dgnet_edge.apps.camera.live.sources import jetson_csi_pipeline, jetson_rtsp_pipeline

    specs = list(source or []) + [jetson_csi_pipeline(n) for n in jetson_csi or []] + [jetson_rtsp_pipeline(u) for u in jetson_rtsp or []]
    kind, model = parse_detector(detector) if detector is not None else (None, None)
    if device is not None and not DEVICE_NAME.match(device):
        raise UsageError(f"--device {device!r}: {DEVICE_RULE}")
    given = {
        "sources.cameras": specs or None, "sources.open_timeout_s": open_timeout, "sources.read_timeout_s": read_timeout,
        "detector.kind": kind, "embedder.export": export_dir, "embedder.backend": backend, "embedder.precision": precision,
        "tracker.refresh_every": reid_every, "identities.threshold": threshold, "gallery.location": gallery,
        "gallery.synthetic_weight": synthetic_weight, "synthesis.enabled": synthesise, "synthesis.views": synthetic_views,
        "outputs.save": save, "outputs.save_txt": save_txt, "outputs.events": events, "outputs.device": device, "outputs.show": show,
        "outputs.max_frames": max_frames,
    }
    values = [(key, str(v) if isinstance(v, Path) else v) for key, v in given.items() if v is not None]
    if kind is not None:
        values.append(("detector.model", model))
    if appearance is False:
        values.append(("embedder.export", None))
    config = load_camera_config(config_file, values, overrides or ())
    check_demo_config(config, appearance_off=appearance is False)
    config = config.replace(outputs={"show": resolve_show(config.outputs.show)})
    from dgnet_edge.apps.camera.live.run import run_demo

    with _progress(progress and not config.outputs.show) as on_progress:
        summary = run_demo(config, on_progress=on_progress)
    _print_summary(summary, json_output)


def check_demo_config(config: CameraConfig, appearance_off: bool) -> None:
    """UsageError for a config the app cannot run, before any source is opened; output folders are made."""
    if not config.sources.cameras:
        raise UsageError("give at least one camera: --source (webcam index, file, folder, URL, pipeline), --jetson-csi or --jetson-rtsp")
    if config.detector.kind == "ssdlite" and config.detector.model is None:  # say how to fetch it
        from dgnet_edge.apps.camera.live.ssdlite import require_model

        require_model()
    export = config.embedder.export
    if export is None and not appearance_off:
        raise UsageError("--export is needed for re-id (the embedder's export folder); or track without it: --no-appearance")
    if export is None and config.identities.threshold is not None:
        raise UsageError("--threshold needs appearance: drop --no-appearance")
    if export is None and config.synthesis.enabled:
        raise UsageError("--synthesise needs appearance (the gallery): drop --no-appearance")
    if export is not None:
        from dgnet_edge.apps.camera.storage.open_gallery import is_database_url

        require_dir(Path(export), "export folder")
        if config.synthesis.enabled:
            from dgnet_edge.apps.camera.storage.synthesis import require_generator

            require_generator(Path(export))
        location = config.gallery.location
        if location is not None and not is_database_url(location):
            prepare_output_file(Path(location), "gallery")
    out = config.outputs
    for folder, what in ((out.save, "--save folder"), (out.save_txt, "--save-txt folder")):
        if folder is not None:
            prepare_output_dir(Path(folder), what)
    if out.events is not None:
        from dgnet_edge.apps.camera.live.mqtt_events import MqttTarget, is_url, require_paho

        if is_url(out.events):
            MqttTarget.parse(out.events)
            require_paho()
        else:
            prepare_output_file(Path(out.events), "--events file")


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
