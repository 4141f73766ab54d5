"""The camera app's bench on a synthetic video bench: tracking accuracy against a peer, speed, memory.

- **Accuracy** (public detections, every camera): the app as ``dgnet-edge demo`` runs it
  (appearance, gallery identities across cameras, and synthetic views at enrolment when the export
  has DG-Net's generator), the same app without synthesis (such exports only), the same app without
  appearance (IoU + Kalman, per camera), and ByteTrack from ``supervision`` fed the same detections;
  per-camera IDF1, HOTA, MOTA and ID switches, and the multi-camera IDF1, from
  :func:`~dgnet_edge.eval.tracking.evaluate_tracks`.
- **Speed**: frames per second of the whole app over all cameras with public detections (frame
  decoding in the source threads, tracking, re-id, gallery), of one camera with the ``motion``
  detector, and the HOG detector's time per frame.
- **Soak**: the app on every camera replayed in a loop for N frames, resident memory sampled as
  it goes.

Every app run starts from an empty gallery in the bench's output folder.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dgnet_edge.apps.camera.live.detectors import open_detector
from dgnet_edge.apps.camera.config import CameraConfig, OutputsConfig
from dgnet_edge.apps.camera.live.run import run_demo
from dgnet_edge.apps.camera.live.sources import open_source
from dgnet_edge.apps.camera.measure.track_bench import compare_trackers, mean_metric, metrics_table
from dgnet_edge.data.video.world import Site, load_site
from dgnet_edge.eval.tracking import TrackingResult, evaluate_tracks, read_predictions

TRACKERS = ("ours", "ours-no-synthesis", "iou-kalman", "bytetrack")


@dataclass
class TrackerScore:
    """One tracker on every camera of the bench."""

    name: str
    result: TrackingResult
    fps: float | None = None

    def mean(self, key: str) -> float:
        return mean_metric(self.result, key)


@dataclass
class CameraBench:
    """What :func:`run_camera_bench` measured."""

    bench: str
    cameras: int
    frames_per_camera: int
    frame_size: str
    scores: list[TrackerScore] = field(default_factory=list)
    speed: dict[str, Any] = field(default_factory=dict)
    soak: dict[str, Any] | None = None

    def targets(self) -> list[tuple[str, str, str, bool | None]]:
        """(target, goal, measured, met) rows; met is None when not measured."""
        by_name = {s.name: s for s in self.scores}
        rows: list[tuple[str, str, str, bool | None]] = []
        if "ours" in by_name and "bytetrack" in by_name:
            gain = by_name["ours"].mean("idf1") - by_name["bytetrack"].mean("idf1")
            rows.append(("per-camera IDF1 over ByteTrack", "≥ +10 points", f"{gain:+.1f}", gain >= 10))
        if "ours" in by_name:
            mc = by_name["ours"].result.multi_camera_idf1
            rows.append(("multi-camera IDF1", "≥ 60", f"{mc:.1f}", mc >= 60))
        if "app_fps" in self.speed:
            fps = self.speed["app_fps"]
            rows.append((f"app, {self.cameras} cameras, public detections", "≥ 60 frames/s", f"{fps:.1f}", fps >= 60))
        if "motion_fps" in self.speed:
            fps = self.speed["motion_fps"]
            rows.append(("app, 1 camera, motion detector", "≥ 25 frames/s", f"{fps:.1f}", fps >= 25))
        if self.soak is not None:
            growth = self.soak["growth_pct"]
            rows.append((f"resident memory over {self.soak['frames']} frames", "flat within 5 %", f"{growth:+.1f} %",
                         abs(growth) <= 5))
        return rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "bench": self.bench, "cameras": self.cameras, "frames_per_camera": self.frames_per_camera,
            "frame_size": self.frame_size,
            "trackers": {s.name: {"per_camera": {c: dataclasses.asdict(m) for c, m in s.result.per_camera.items()},
                                  "mean_idf1": s.mean("idf1"), "mean_hota": s.mean("hota"), "mean_mota": s.mean("mota"),
                                  "multi_camera_idf1": s.result.multi_camera_idf1, "fps": s.fps} for s in self.scores},
            "speed": self.speed, "soak": self.soak,
            "targets": [{"target": t, "goal": g, "measured": m, "met": ok} for t, g, m, ok in self.targets()],
        }


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _camera_sources(site: Site) -> list[str]:
    return [str(site.camera_dir(name)) for name in site.camera_names]


def bench_config(site: Site, base: CameraConfig, folder: Path, **sections: dict[str, Any]) -> CameraConfig:
    """``base`` (the export, threshold and settings under test) on every camera of the bench with its
    public detections, the gallery in ``folder``; ``sections`` change keys of the config's sections."""
    config = base.replace(sources={"cameras": _camera_sources(site), "loop": False}, detector={"kind": "public", "model": None},
                          gallery={"location": str(folder / "gallery.db")}, outputs=dataclasses.asdict(OutputsConfig(show=False)))
    return config.replace(**sections)


def run_app(site: Site, out_dir: Path, base: CameraConfig, **sections: dict[str, Any]) -> tuple[TrackingResult, dict[str, Any]]:
    """The demo on every camera with public detections; its tracks scored, and its run summary."""
    folder = _fresh(out_dir)
    summary = run_demo(bench_config(site, base, folder, outputs={"save_txt": str(folder / "tracks")}, **sections))
    return evaluate_tracks(read_predictions(folder / "tracks", site), site), summary


def run_bytetrack(bench_dir: str | Path, out_dir: Path) -> TrackerScore:
    _fresh(out_dir / "bytetrack")
    (run,) = compare_trackers(bench_dir, out_dir, kinds=("bytetrack",))
    return TrackerScore("bytetrack", run.result, run.total.tracker_fps if run.total.tracking_s else None)


def hog_ms_per_frame(site: Site, frames: int = 20) -> float:
    """Median time of the HOG people detector on the first camera's frames, in milliseconds."""
    detector = open_detector("hog")
    times = []
    with open_source(str(site.camera_dir(site.camera_names[0]))) as source:
        for _ in range(frames):
            frame = source.read(timeout=30)
            if frame is None:
                break
            t0 = time.perf_counter()
            detector.detect(frame)
            times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def run_camera_bench(bench_dir: str | Path, out_dir: str | Path, base: CameraConfig, soak_frames: int = 0) -> CameraBench:
    """Accuracy of the three trackers, the app's speed, and (``soak_frames`` > 0) a soak run; the app
    rows run ``base`` (its export, threshold and settings) on the bench's cameras and detections."""
    site = load_site(bench_dir)
    out_dir = Path(out_dir)
    report = CameraBench(str(bench_dir), len(site.camera_names), site.frames, f"{site.width}x{site.height}")
    ours, summary = run_app(site, out_dir / "ours", base)
    report.scores.append(TrackerScore("ours", ours, summary["fps"]))
    report.speed["app_fps"] = summary["fps"]
    report.speed["app_embedded_per_frame"] = sum(c["embedded"] for c in summary["cameras"].values()) / max(1, summary["frames"])
    if "synthesis" in summary:
        report.speed["synthesis"] = summary["synthesis"]
        alone, summary = run_app(site, out_dir / "ours-no-synthesis", base, synthesis={"enabled": False})
        report.scores.append(TrackerScore("ours-no-synthesis", alone, summary["fps"]))
    plain, summary = run_app(site, out_dir / "iou-kalman", base, embedder={"export": None})
    report.scores.append(TrackerScore("iou-kalman", plain, summary["fps"]))
    report.scores.append(run_bytetrack(bench_dir, out_dir))

    motion = run_demo(bench_config(site, base, _fresh(out_dir / "motion"), sources={"cameras": _camera_sources(site)[:1]},
                                   detector={"kind": "motion"}))
    report.speed["motion_fps"] = motion["fps"]
    report.speed["hog_ms_per_frame"] = hog_ms_per_frame(site)
    if soak_frames:
        report.soak = soak(site, base, out_dir / "soak", soak_frames)
    return report


# -- soak ------------------------------------------------------------------------------------------
def resident_mb() -> float:
    """This process's resident memory (Linux /proc; 0 where it cannot be read)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def soak(site: Site, base: CameraConfig, out_dir: Path, frames: int, samples_wanted: int = 40) -> dict[str, Any]:
    """The app on every camera of the bench, replayed in a loop, for ``frames`` frames in all
    (public detections, no synthesis).

    Resident memory is sampled ``samples_wanted`` times along the run; ``growth_pct`` compares the
    last sample with the first one taken after a warm-up of a tenth of the run (the embedder's
    and the gallery's buffers fill during the first frames).
    """
    folder = _fresh(out_dir)
    samples: list[tuple[int, float]] = []
    sample_every = max(1, frames // samples_wanted)

    def sample(done: int, *_: Any) -> None:
        if done % sample_every == 0:
            samples.append((done, resident_mb()))

    config = bench_config(site, base, folder, sources={"loop": True}, synthesis={"enabled": False},
                          outputs={"max_frames": frames})
    summary = run_demo(config, on_progress=sample)
    warm = [mb for done, mb in samples if done >= frames // 10]
    first, last = warm[0], warm[-1]
    return {"frames": summary["frames"], "fps": summary["fps"], "rss_mb_after_warmup": round(first, 1),
            "rss_mb_end": round(last, 1), "rss_mb_max": round(max(warm), 1),
            "growth_pct": round(100 * (last - first) / first, 2), "identities": summary["identities"],
            "samples": [(done, round(mb, 1)) for done, mb in samples]}


def format_bench(report: CameraBench) -> str:
    """Markdown tables: per-camera metrics of each tracker, the multi-camera IDF1, the targets."""
    lines = [f"Bench {report.bench}: {report.cameras} cameras x {report.frames_per_camera} frames of {report.frame_size}, "
             "public detections.", "",
             *metrics_table([(score.name, score.result) for score in report.scores])]
    lines += ["", "| tracker | multi-camera IDF1 (one identity mapping over all cameras) |", "|---|---:|"]
    lines += [f"| {s.name} | {s.result.multi_camera_idf1:.1f} |" for s in report.scores]
    speed = report.speed
    lines += ["", f"HOG people detector: {speed['hog_ms_per_frame']:.0f} ms per {report.frame_size} frame "
              f"(median of 20). Re-id crops per frame in the app: {speed['app_embedded_per_frame']:.2f}."]
    if "synthesis" in speed:
        syn = speed["synthesis"]
        lines.append(f"Synthesis at enrolment (ours): {syn['done']} identities rendered off the frame loop "
                     f"(median {syn['median_s']} s each), {syn['dropped']} dropped.")
    lines += ["",
              "| target | goal | measured | |", "|---|---|---:|---|"]
    for target, goal, measured, met in report.targets():
        verdict = "not measured" if met is None else ("met" if met else "missed")
        lines.append(f"| {target} | {goal} | {measured} | {verdict} |")
    return "\n".join(lines) + "\n"
