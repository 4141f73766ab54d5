"""ONNX Runtime latency of an export's embedders, with the CPU model in both INT8 formats.

Behind the choice of :data:`dgnet_edge.calib.qdq.CPU_FORMAT`: besides the export's fp32, int8-qdq
and int8-cpu models, the CPU model is written again in the other format (QDQ <-> QOperator) from
the same ranges, and all are timed in one interleaved loop (so a busy machine slows them alike).
Medians and minima of the backend call, in milliseconds.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dgnet_edge.calib.qdq import settings_for, write_int8_model
from dgnet_edge.calib.ranges import FILE_NAME, load_ranges
from dgnet_edge.manifest import load_manifest, verified_path
from dgnet_edge.runtime.onnxrt import OnnxRuntimeRunner, SessionFromOnnx


@dataclass(frozen=True)
class Timing:
    model: str
    median_ms: float
    min_ms: float
    runs: int


def time_models(export_dir: str | Path, batch: int = 1, runs: int = 50, threads: int | None = 1, seed: int = 0) -> list[Timing]:
    """Time fp32, int8-qdq, int8-cpu and the CPU model in the other format on random images."""
    export_dir = Path(export_dir)
    manifest = load_manifest(export_dir)
    fmt = manifest.input
    models = {f"{e.precision} ({e.file})": verified_path(export_dir, e) for e in manifest.models if e.role == "embedder"}
    with tempfile.TemporaryDirectory(prefix="dgnet-latency-") as tmp:
        if manifest.has_model("embedder", "int8-cpu"):
            entry = manifest.model("embedder", "int8-cpu")
            other = "QOperator" if entry.details.get("format") == "QDQ" else "QDQ"
            settings = replace(settings_for("cpu", arch=entry.details.get("arch")), format=other,
                               reduce_range=bool(entry.details.get("reduce_range", False)))
            path = Path(tmp) / f"cpu-{other}.onnx"
            write_int8_model(verified_path(export_dir, manifest.model("embedder")), load_ranges(export_dir / FILE_NAME), path,
                             settings, tuple(entry.details.get("excluded_nodes", ())))
            models[f"int8-cpu as {other}"] = path
        images = np.random.default_rng(seed).integers(0, 256, (batch, fmt.height, fmt.width, 3)).astype(fmt.dtype)
        runners = {name: OnnxRuntimeRunner(SessionFromOnnx(path, device="cpu", threads=threads), name=name).activate()
                   for name, path in models.items()}
        try:
            feeds = {name: {r.input_metadata()[0].name: images} for name, r in runners.items()}
            times: dict[str, list[float]] = {name: [] for name in runners}
            for name, r in runners.items():  # warm-up
                r.infer(feeds[name])
            for _ in range(runs):
                for name, r in runners.items():
                    r.infer(feeds[name])
                    times[name].append(r.inference_time)
        finally:
            for r in runners.values():
                r.deactivate()
    return [Timing(name, 1000 * statistics.median(t), 1000 * min(t), runs) for name, t in times.items()]
