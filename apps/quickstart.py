"""The main job on the embedded default: synthetic world -> small E_a -> DG-Net -> INT8 export ->
re-id threshold -> report -> the camera app on the multi-camera video bench, scored with TrackEval.

E_a is trained alone first (stage ``baseline``, config ``synth_small``, into ``OUT/model``), then
serves as the teacher of DG-Net (stage ``dgnet``, config ``dgnet_synth_small``, into ``OUT/dgnet``),
whose E_a starts from its trunk. The export holds DG-Net's E_a and its generator parts (structure
encoder and decoder, with INT8 CPU models), so the camera app renders each new identity in the
structures the cameras saw. ``dgnet=False`` (``--no-dgnet``) skips DG-Net and exports the E_a
baseline alone, without a generator.

Every step writes into its own folder and is skipped when its result is already there, so an
interrupted quickstart picks up where it stopped (a half-trained model resumes from its last
checkpoint; so does a DG-Net run stopped by Ctrl-C or by its ``dgnet.max_minutes`` cap, which
applies per run: the schedule is ``dgnet.max_iter``). A model trained with another config than the
one asked for is not reused silently: the run stops and says which fields differ. An export made
from another checkpoint (the E_a baseline of an earlier quickstart, say) is made again, with its
re-id threshold. The configs and the output folders are checked before the first step.
Training-side modules are imported inside the steps: importing the apps never imports torch.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

StageFn = Callable[[str, int, "int | None"], None]  # (stage, done, total)
ReportFn = Callable[[str, str, int, "int | None"], None]  # (row, stage, done, total)

WORLD_MARKER = "world.json"
# DG-Net config fields that bound one run, not what it trains: a resumed run may change them.
DGNET_RUN_LIMITS = ("dgnet.max_minutes",)


@dataclass
class QuickstartResult:
    world: Path
    run: Path
    checkpoint: Path  # E_a (stage baseline), DG-Net's teacher
    metrics: dict[str, Any]
    dgnet: Path | None  # DG-Net's checkpoint; None with dgnet=False
    dgnet_metrics: dict[str, Any] | None  # its E_a's rank-1 ... and the teacher's top-1 on swaps
    export: Path
    report: dict[str, Any]
    report_files: dict[str, Path]
    threshold: float
    video: Path
    demo: dict[str, Any]  # the camera app's run summary
    tracking: Any  # TrackingResult of the camera app's tracks on the video bench
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step that ran


def ensure_world(root: Path, on_progress: Callable[[int, int], None] | None = None) -> float | None:
    """Render the default synthetic world into ``root`` unless it is there; seconds taken, or None."""
    if (root / WORLD_MARKER).is_file():
        log.info("synthetic world: %s (already there)", root)
        return None
    from dgnet_edge.data.synth import WorldSpec, write_world
    from dgnet_edge.errors import UsageError

    if root.is_dir() and any(root.iterdir()):
        raise UsageError(f"--world {root} holds other files and no synthetic world ({WORLD_MARKER}): "
                         "give an empty or new folder, or a world written by `dgnet-edge data synth`")

    summary = write_world(root, WorldSpec(), progress=on_progress)
    log.info("synthetic world: %s images in %.0f s", sum(summary.images.values()), summary.seconds)
    return summary.seconds


def ensure_model(run: Path, world: Path, config: str, overrides: list[str], progress: bool) -> tuple[Path, dict[str, Any], float | None]:
    """Train E_a (stage ``baseline``) into ``run`` unless it finished there before; resumes a
    stopped run. Returns (checkpoint, metrics, seconds or None)."""
    from dgnet_edge.checkpoint import load_checkpoint
    from dgnet_edge.config import load_config
    from dgnet_edge.errors import UsageError
    from dgnet_edge.training.id_trainer import train_id
    from dgnet_edge.training.trainer import resume_config

    cfg = load_config(config, [f"data.root={world}", *overrides])
    checkpoint, metrics_file = run / "checkpoints" / "last.pt", run / "metrics.json"
    if checkpoint.is_file():
        changed = config_changes(load_checkpoint(checkpoint)["config"], cfg.to_dict())
        if changed:
            raise UsageError(f"{run} holds a model trained with another config ({', '.join(changed[:4])}"
                             f"{' ...' if len(changed) > 4 else ''} differ); choose another --out for this config, "
                             f"or delete {run.parent} to train again")
    if metrics_file.is_file() and checkpoint.is_file():
        log.info("model: %s (already trained)", checkpoint)
        return checkpoint, json.loads(metrics_file.read_text()), None
    if checkpoint.is_file():
        log.info("model: resuming %s", checkpoint)
        result = train_id(resume_config(checkpoint), "baseline", run, resume=checkpoint, progress=progress)
    else:
        result = train_id(cfg, "baseline", run, progress=progress)
    if result.stopped:
        raise UsageError(f"training stopped ({result.stopped}); run the quickstart again to resume it")
    return result.checkpoint, result.metrics, result.seconds


def ensure_dgnet(run: Path, world: Path, teacher: Path, config: str, overrides: list[str],
                 progress: bool) -> tuple[Path, dict[str, Any], float | None]:
    """Train DG-Net (stage ``dgnet``) into ``run`` with ``teacher`` (the E_a baseline) unless it
    finished there before; resumes a run stopped part-way (Ctrl-C, ``dgnet.max_minutes``).
    Returns (checkpoint, metrics, seconds or None)."""
    from dgnet_edge.checkpoint import load_checkpoint
    from dgnet_edge.config import load_config
    from dgnet_edge.errors import UsageError
    from dgnet_edge.training.dgnet_trainer import train_dgnet

    cfg = load_config(config, [f"data.root={world}", *overrides])
    checkpoint, metrics_file = run / "checkpoints" / "last.pt", run / "metrics.json"
    total = cfg.dgnet.max_iter
    step = None
    if checkpoint.is_file():
        state = load_checkpoint(checkpoint, kinds=("dgnet",))
        changed = [name for name in config_changes(state["config"], cfg.to_dict()) if name not in DGNET_RUN_LIMITS]
        if changed:
            raise UsageError(f"{run} holds a DG-Net trained with another config ({', '.join(changed[:4])}"
                             f"{' ...' if len(changed) > 4 else ''} differ); choose another --out for this config, "
                             f"or delete {run} to train DG-Net again")
        step = int(state["step"])
    if step is not None and step >= total and metrics_file.is_file():
        log.info("DG-Net: %s (already trained)", checkpoint)
        return checkpoint, json.loads(metrics_file.read_text()), None
    if step is not None:
        log.info("DG-Net: resuming %s at iteration %d of %d", checkpoint, step, total)
        # cfg is the checkpoint's config (compared above) but for the run limits asked for now.
        result = train_dgnet(cfg, teacher, run, resume=checkpoint, progress=progress)
    else:
        log.info("DG-Net: %d iterations into %s, teacher %s", total, run, teacher)
        result = train_dgnet(cfg, teacher, run, progress=progress)
    if result.stopped == "time limit":
        raise UsageError(f"DG-Net training reached its time limit (dgnet.max_minutes={cfg.dgnet.max_minutes:g}) at "
                         f"iteration {result.step} of {total}, saved in {result.checkpoint}; run the quickstart again "
                         "to resume it (--dgnet-set dgnet.max_minutes=M gives each run longer)")
    if result.stopped:
        raise UsageError(f"DG-Net training stopped ({result.stopped}) at iteration {result.step} of {total}; "
                         "run the quickstart again to resume it")
    if result.metrics is None:  # the schedule ended, yet final_metrics gave nothing
        raise UsageError(f"DG-Net training ended without metrics in {metrics_file}; run the quickstart again")
    log.info("DG-Net: %d iterations in %.0f s", result.step, result.seconds)
    return result.checkpoint, result.metrics, result.seconds


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted names of the config fields whose values differ between two config dicts. A field the
    ``old`` config (a checkpoint's, say) predates counts as its default value there."""
    return _differing_fields(with_defaults(old), new)


def _differing_fields(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _differing_fields(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}")
    return changed


def with_defaults(tree: dict[str, Any]) -> dict[str, Any]:
    """A saved config dict with every field, those it predates at their defaults (as saved when it
    does not validate)."""
    from dgnet_edge.config import config_from_dict
    from dgnet_edge.errors import ConfigError

    try:
        return config_from_dict(tree).to_dict()
    except ConfigError:
        return tree


def stale_export(export_dir: Path, checkpoint: Path) -> str | None:
    """Why the export in ``export_dir`` is not the quickstart's export of ``checkpoint`` (made from
    another checkpoint, or a DG-Net export without its generator parts), or None when it is."""
    from dgnet_edge.apps.camera.storage.synthesis import has_generator
    from dgnet_edge.errors import ExportError
    from dgnet_edge.manifest import load_manifest, sha256_of

    try:
        manifest = load_manifest(export_dir)
    except ExportError as e:
        return f"its manifest does not load ({e})"
    if manifest.source.get("sha256") != sha256_of(checkpoint):
        return f"it was exported from another checkpoint ({manifest.source.get('kind')} {manifest.source.get('checkpoint')})"
    if manifest.source.get("kind") == "dgnet" and not has_generator(export_dir):
        return "it has no generator parts"
    return None


def ensure_export(export_dir: Path, checkpoint: Path, world: Path, on_progress: StageFn | None = None) -> float | None:
    """Export ``checkpoint`` with fp16 and INT8 models (calibrated on the world's training split;
    a DG-Net's structure encoder and decoder too) unless ``export_dir`` holds that export already;
    an export of another checkpoint is replaced, with the threshold and report inside it. Seconds
    taken, or None."""
    if (export_dir / "manifest.json").is_file():
        stale = stale_export(export_dir, checkpoint)
        if stale is None:
            log.info("export: %s (already there)", export_dir)
            return None
        log.info("export: %s is made again from %s: %s", export_dir, checkpoint, stale)
    from dgnet_edge.calib.pipeline import CalibrationOptions, int8_extend
    from dgnet_edge.export.pipeline import ExportOptions, export_checkpoint

    started = time.perf_counter()
    extend = int8_extend(CalibrationOptions(data=world), on_progress)
    export_checkpoint(checkpoint, export_dir, ExportOptions(fp16=True), force=True, extend=extend)
    return time.perf_counter() - started


def ensure_threshold(export_dir: Path, world: Path) -> tuple[float, float | None]:
    """Calibrate the camera app's re-id threshold on the world's query/gallery split unless the
    export has one; (threshold, seconds taken or None)."""
    from dgnet_edge.apps.camera.measure.threshold import calibrate_export, read_threshold, write_threshold
    from dgnet_edge.data.market1501 import Market1501

    threshold = read_threshold(export_dir)
    if threshold is not None:
        log.info("re-id threshold: %.4f (already calibrated)", threshold)
        return threshold, None
    started = time.perf_counter()
    calibration, used = calibrate_export(export_dir, Market1501(world))
    write_threshold(export_dir, calibration, used)
    log.info("re-id threshold: %.4f", calibration.threshold)
    return calibration.threshold, time.perf_counter() - started


def ensure_video(root: Path, on_progress: Callable[[int, int], None] | None = None) -> float | None:
    """Render the default video bench into ``root`` unless it is there; seconds taken, or None."""
    from dgnet_edge.data.video.world import SITE, write_bench

    if (root / SITE).is_file():
        log.info("video bench: %s (already there)", root)
        return None
    summary = write_bench(root, progress=on_progress)
    log.info("video bench: %d cameras, %d identities in %.0f s", summary.spec.cameras, summary.identities, summary.seconds)
    return summary.seconds


def run_camera_app(video: Path, export_dir: Path, out_dir: Path) -> tuple[dict[str, Any], Any]:
    """``dgnet-edge demo`` on every camera of the bench (public detections, a new gallery), its
    tracks scored against the ground truth; (run summary, TrackingResult)."""
    import shutil

    from dgnet_edge.apps.camera.config import CameraConfig
    from dgnet_edge.apps.camera.live.run import run_demo
    from dgnet_edge.apps.camera.measure.camera_bench import bench_config
    from dgnet_edge.data.video.world import load_site
    from dgnet_edge.eval.tracking import evaluate_tracks, read_predictions

    site = load_site(video)
    shutil.rmtree(out_dir, ignore_errors=True)
    base = CameraConfig().replace(embedder={"export": str(export_dir)})
    config = bench_config(site, base, out_dir, outputs={"save_txt": str(out_dir / "tracks"), "events": str(out_dir / "events.jsonl")})
    out_dir.mkdir(parents=True)
    summary = run_demo(config)
    return summary, evaluate_tracks(read_predictions(out_dir / "tracks", site), site)


def make_report_files(
    export_dir: Path, world: Path, batches: tuple[int, ...], runs: int, on_progress: ReportFn | None = None
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Measure every backend and precision of the export on the world; write them beside it."""
    from dgnet_edge.apps.report.pipeline import ReportOptions, make_report, write_report

    options = ReportOptions(export_dir, data=world, batches=batches, runs=runs)
    report = make_report(options, on_progress)
    return report, write_report(report, options.out_dir)


def quickstart(
    out: Path,
    world: Path,
    video: Path = Path("data/video"),
    config: str = "synth_small",
    overrides: list[str] | None = None,
    progress: bool = True,
    batches: tuple[int, ...] = (1, 8, 32),
    runs: int = 30,
    on_world_progress: Callable[[int, int], None] | None = None,
    on_export_progress: StageFn | None = None,
    on_report_progress: ReportFn | None = None,
    on_video_progress: Callable[[int, int], None] | None = None,
    dgnet: bool = True,
    dgnet_config: str = "dgnet_synth_small",
    dgnet_overrides: list[str] | None = None,
) -> QuickstartResult:
    """Run the steps that have not finished yet; the report and the camera app run afresh.

    ``config``/``overrides`` are E_a's, ``dgnet_config``/``dgnet_overrides`` DG-Net's (each applied
    to its own config only); ``dgnet=False`` exports the E_a baseline without DG-Net.
    """
    from dgnet_edge.config import load_config
    from dgnet_edge.errors import UsageError
    from dgnet_edge.paths import check_output_dir, prepare_output_dir

    # A bad --config, --set, --dgnet-config or --dgnet-set fails before any work.
    cfg = load_config(config, [f"data.root={world}", *(overrides or [])])
    if dgnet:
        dgnet_cfg = load_config(dgnet_config, [f"data.root={world}", *(dgnet_overrides or [])])
        if dgnet_cfg.dgnet.appearance_init == "teacher" and dgnet_cfg.appearance.backbone != cfg.appearance.backbone:
            raise UsageError(f"DG-Net's E_a starts from the trunk of the E_a baseline, a {cfg.appearance.backbone}, "
                             f"but the DG-Net config has a {dgnet_cfg.appearance.backbone}: give both the same "
                             "appearance.backbone (--set / --dgnet-set)")
    prepare_output_dir(out, "--out folder")
    if not (world / WORLD_MARKER).is_file():
        check_output_dir(world, "--world folder")
    if not (video / "site.json").is_file():
        check_output_dir(video, "--video folder")
    timings: dict[str, float] = {}
    seconds = ensure_world(world, on_world_progress)
    if seconds is not None:
        timings["world"] = seconds
    run = out / "model"
    checkpoint, metrics, seconds = ensure_model(run, world, config, list(overrides or []), progress)
    if seconds is not None:
        timings["train"] = seconds
    dgnet_checkpoint, dgnet_metrics = None, None
    if dgnet:
        dgnet_checkpoint, dgnet_metrics, seconds = ensure_dgnet(out / "dgnet", world, checkpoint, dgnet_config,
                                                                list(dgnet_overrides or []), progress)
        if seconds is not None:
            timings["dgnet"] = seconds
    export_dir = out / "export"
    seconds = ensure_export(export_dir, dgnet_checkpoint or checkpoint, world, on_export_progress)
    if seconds is not None:
        timings["export"] = seconds
    threshold, seconds = ensure_threshold(export_dir, world)
    if seconds is not None:
        timings["threshold"] = seconds
    started = time.perf_counter()
    report, files = make_report_files(export_dir, world, batches, runs, on_report_progress)
    timings["report"] = time.perf_counter() - started
    seconds = ensure_video(video, on_video_progress)
    if seconds is not None:
        timings["video"] = seconds
    started = time.perf_counter()
    demo, tracking = run_camera_app(video, export_dir, out / "demo")
    timings["demo"] = time.perf_counter() - started
    return QuickstartResult(world, run, checkpoint, metrics, dgnet_checkpoint, dgnet_metrics, export_dir, report, files,
                            threshold, video, demo, tracking, timings)
