"""One report row, measured in a process of its own.

    python -m dgnet_edge.apps.report.worker JOB.json RESULT.json

A fresh process per row keeps rows from polluting each other (allocator arenas, thread pools,
caches, a torch import) and makes its peak resident memory that of a process that loads only this
row's models; for the deployment rows (ONNX Runtime, TensorRT) it also shows they run without
torch: the result records whether torch ended up in ``sys.modules``.

The worker reads a :class:`RowJob`, measures in this order — start-up (import of the runtime
library, load, first inference), latency per batch size, peak memory, generator throughput,
accuracy — and writes a JSON result. Progress goes to stdout as JSON lines
(``{"event": "progress", "stage": ..., "done": ..., "total": ...}``) for the parent's progress bar.
Accuracy runs last, so that the dataset's images and the distance matrix stay out of the memory
figures. :func:`run_row_process` is the parent's side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from dgnet_edge.apps.report.memory import current_rss_bytes, peak_rss_bytes
from dgnet_edge.apps.report.stats import summarise, time_calls

MODULE = "dgnet_edge.apps.report.worker"
Emit = Callable[[str, int, Optional[int]], None]


@dataclass(frozen=True)
class RowJob:
    """What one worker measures.

    Args:
        export_dir: the export folder.
        backend: torch | onnxruntime | tensorrt.
        precision: the manifest's precision for ONNX Runtime (fp32, fp16, int8-cpu, int8-qdq, ...),
            the engine's for TensorRT (fp32, fp16, int8); fp32 for torch.
        sample_paths: images for the latency and generator timings (at least the largest batch).
        batches: batch sizes to time.
        runs: timed runs per batch size (after ``warmup`` untimed ones).
        device: auto | cpu | cuda.
        dataset, data_root: reader and root of the accuracy set; no accuracy pass without a root.
        ap, alpha: AP convention and the query's fine-grained weight.
        generator: also time the generator parts (structure encoder + decoder) of this row.
        generator_batch: images synthesised per timed generator call.
        generator_budget_s: stop timing the generator after this long (at least 3 runs).
        accuracy_batch: images per embedder call in the accuracy pass.
        image_workers: threads decoding images.
    """

    export_dir: str
    backend: str
    precision: str
    sample_paths: list[str]
    batches: list[int]
    runs: int
    warmup: int = 3
    device: str = "auto"
    dataset: str | None = None
    data_root: str | None = None
    ap: str = "standard"
    alpha: float = 0.5
    generator: bool = True
    generator_batch: int = 8
    generator_budget_s: float = 20.0
    accuracy_batch: int = 32
    image_workers: int = 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the child's side ----------------------------------------------------------------------------
def _import_runtime(backend: str) -> tuple[float, str | None]:
    """Import the row's runtime library; (seconds, version)."""
    start = time.perf_counter()
    if backend == "torch":
        import torch

        version = torch.__version__
    elif backend == "onnxruntime":
        from dgnet_edge.runtime.onnxrt import import_ort

        version = import_ort().__version__
    else:
        from dgnet_edge.runtime.tensorrt import import_tensorrt

        version = str(import_tensorrt().__version__)
    return time.perf_counter() - start, version


def _torch_embedder(job: RowJob, manifest: Any) -> Any:
    """The export's source checkpoint as a torch eager embedder behind the deployment API."""
    from dgnet_edge.device import resolve_device
    from dgnet_edge.models import ReidEmbedder
    from dgnet_edge.models.factory import load_reid_net
    from dgnet_edge.runtime.embedder import Embedder
    from dgnet_edge.runtime.torch_runner import TorchRunner

    net, _, _ = load_reid_net(manifest.source["checkpoint"])
    entry = manifest.model("embedder", "fp32")
    module = ReidEmbedder(net, tuple(manifest.input.mean), tuple(manifest.input.std), flip=manifest.flip,
                          with_code=manifest.code_dim > 0)
    runner = TorchRunner(module, entry.inputs, [s.name for s in entry.outputs], device=resolve_device(job.device),
                         name="torch fp32")
    return Embedder(runner.activate(), manifest)


def _torch_generator(job: RowJob, manifest: Any) -> Any:
    from dgnet_edge.device import resolve_device
    from dgnet_edge.export.graphs import DecoderGraph, StructureGraph
    from dgnet_edge.models.factory import load_dgnet
    from dgnet_edge.runtime.embedder import Generator
    from dgnet_edge.runtime.torch_runner import TorchRunner

    model, _ = load_dgnet(manifest.source["checkpoint"])
    device = resolve_device(job.device)
    structure = StructureGraph(model.structure, tuple(manifest.input.mean), tuple(manifest.input.std))
    s_entry, d_entry = manifest.model("structure"), manifest.model("decoder")
    structure_runner = TorchRunner(structure, s_entry.inputs, ["structure"], device=device, name="torch structure")
    decoder_runner = TorchRunner(DecoderGraph(model.decoder), d_entry.inputs, ["images"], device=device, name="torch decoder")
    return Generator(structure_runner.activate(), decoder_runner.activate(), manifest)


def open_embedder(job: RowJob, manifest: Any) -> Any:
    from dgnet_edge.runtime.embedder import Embedder

    if job.backend == "torch":
        return _torch_embedder(job, manifest)
    return Embedder.open(job.export_dir, backend=job.backend, precision=job.precision, device=job.device)


def generator_unavailable(job: RowJob, manifest: Any) -> str | None:
    """Why this row has no generator measurement, or None."""
    if not (manifest.has_model("structure") and manifest.has_model("decoder")):
        return "the export has no generator parts (exported from a re-id checkpoint, or with the generator off)"
    if job.backend == "torch":
        return None if manifest.source.get("kind") == "dgnet" else "the source checkpoint is not a DG-Net checkpoint"
    if job.backend == "onnxruntime":
        if not (manifest.has_model("structure", job.precision) and manifest.has_model("decoder", job.precision)):
            return f"no {job.precision} structure/decoder models in the export"
        return None
    engines = {(e.role, e.precision) for e in manifest.engines}
    if not {("structure", job.precision), ("decoder", job.precision)} <= engines:
        return f"no TensorRT {job.precision} structure/decoder engines in the export"
    return None


def open_generator(job: RowJob, manifest: Any) -> Any:
    from dgnet_edge.runtime.embedder import Generator

    if job.backend == "torch":
        return _torch_generator(job, manifest)
    return Generator.open(job.export_dir, backend=job.backend, precision=job.precision, device=job.device)


def _runtime_details(embedder: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"runner": embedder.runner.name}
    session = getattr(embedder.runner, "session", None)
    if session is not None and hasattr(session, "get_providers"):
        details["providers"] = list(session.get_providers())
        options = session.get_session_options()
        details["intra_op_threads"] = options.intra_op_num_threads
    device = getattr(embedder.runner, "device", None)
    if device is not None:
        details["device"] = str(device)
    return details


def _sample_images(job: RowJob, height: int, width: int, count: int) -> Any:
    import numpy as np

    from dgnet_edge.data.images import load_images

    paths = list(job.sample_paths)
    if paths:
        while len(paths) < count:
            paths += job.sample_paths
        return load_images(paths[:count], height, width, job.image_workers).pixels
    return np.random.default_rng(0).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def measure_generator(job: RowJob, manifest: Any, images: Any, codes: Any, emit: Emit) -> dict[str, Any]:
    import numpy as np

    reason = generator_unavailable(job, manifest)
    if reason is not None:
        return {"available": False, "reason": reason}
    emit("generator: loading", 0, None)
    start = time.perf_counter()
    generator = open_generator(job, manifest)
    load_s = time.perf_counter() - start
    b = job.generator_batch
    crops = images[:b]
    dim = next(s for s in manifest.model("decoder").inputs if s.name == "appearance").shape[1]
    if codes is None or codes.shape[1] != dim:
        codes = np.abs(np.random.default_rng(0).standard_normal((b, dim))).astype(np.float32)
    appearance = np.ascontiguousarray(codes[:b])

    def synthesise() -> None:
        generator.decode(generator.structure(crops), appearance)

    emit("generator: timing", 0, job.runs)
    timings = time_calls(synthesise, job.runs, warmup=1, budget_s=job.generator_budget_s)
    stats = summarise(timings.call, b)
    generator.close()
    return {"available": True, "batch": b, "load_s": load_s, "latency": stats.to_dict(),
            "images_per_s": stats.images_per_s, "peak_rss_bytes": peak_rss_bytes()}


def measure_accuracy(job: RowJob, embedder: Any, manifest: Any, emit: Emit) -> dict[str, Any]:
    from dgnet_edge.data.registry import build_dataset
    from dgnet_edge.retrieval import rank_dataset

    dataset = build_dataset(job.dataset or manifest.source.get("dataset", "market1501"), job.data_root)
    total = len(dataset.query) + len(dataset.gallery)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        emit("accuracy", done, total)

    emit("accuracy", 0, total)
    start = time.perf_counter()
    run = rank_dataset(
        embedder.embed, dataset, manifest.input.height, manifest.input.width, heads=manifest.heads,
        alpha=job.alpha, ap=job.ap, batch_size=job.accuracy_batch, workers=job.image_workers, on_batch=advance,
    )
    return {**run.result.as_dict(), "queries": len(dataset.query), "gallery": len(dataset.gallery),
            "seconds": time.perf_counter() - start}


def run_row(job: RowJob, emit: Emit) -> dict[str, Any]:
    """Measure one row; raises the project's errors when the row cannot run here."""
    import numpy as np

    from dgnet_edge.manifest import load_manifest

    manifest = load_manifest(job.export_dir)
    fmt = manifest.input
    result: dict[str, Any] = {"available": True, "rss_start_bytes": current_rss_bytes()}
    emit("start-up", 0, None)
    import_s, version = _import_runtime(job.backend)
    images = _sample_images(job, fmt.height, fmt.width, max([*job.batches, job.generator_batch]))
    result["rss_imported_bytes"] = current_rss_bytes()
    start = time.perf_counter()
    embedder = open_embedder(job, manifest)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    first = embedder.embed(images[:1])
    first_s = time.perf_counter() - start
    result["startup"] = {"import_s": import_s, "load_s": load_s, "first_inference_s": first_s, "startup_s": load_s + first_s}
    result["rss_loaded_bytes"] = current_rss_bytes()
    result["runtime"] = {"library_version": version, **_runtime_details(embedder)}
    result["features_finite"] = bool(np.isfinite(first).all())

    latency = {}
    for i, b in enumerate(job.batches):
        emit(f"latency: batch {b}", i, len(job.batches))
        crops = np.ascontiguousarray(images[:b])
        timings = time_calls(lambda: embedder.embed(crops), job.runs, job.warmup,
                             backend_time=lambda: embedder.runner.inference_time)
        latency[str(b)] = {"call": summarise(timings.call, b).to_dict(), "backend": summarise(timings.backend, b).to_dict()}
    result["latency"] = latency
    result["peak_rss_bytes"] = peak_rss_bytes()  # the embedder loaded and run at every batch size
    result["rss_after_latency_bytes"] = current_rss_bytes()

    codes = None
    if job.generator:
        if manifest.code_dim and not manifest.has_model("appearance"):  # else the embedder gives no codes
            _, codes = embedder.embed_with_code(images[: job.generator_batch])
        result["generator"] = measure_generator(job, manifest, images, codes, emit)
    if job.data_root:
        result["accuracy"] = measure_accuracy(job, embedder, manifest, emit)
    embedder.close()
    return result


def _emitter(stream: Any) -> Emit:
    def emit(stage: str, done: int, total: int | None) -> None:
        stream.write(json.dumps({"event": "progress", "stage": stage, "done": done, "total": total}) + "\n")
        stream.flush()

    return emit


def main(argv: list[str] | None = None) -> int:
    from dgnet_edge.atomic import write_atomic
    from dgnet_edge.errors import DgnetEdgeError

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(f"usage: python -m {MODULE} JOB.json RESULT.json", file=sys.stderr)
        return 2
    job = RowJob(**json.loads(Path(args[0]).read_text()))
    try:
        result = run_row(job, _emitter(sys.stdout))
    except DgnetEdgeError as e:
        result = {"available": False, "reason": str(e)}
    except Exception as e:  # a row that crashes is reported, not fatal to the report
        result = {"available": False, "reason": f"failed: {type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    result["torch_imported"] = "torch" in sys.modules
    result["pid"] = os.getpid()
    write_atomic(args[1], (json.dumps(result) + "\n").encode())
    return 0


# -- the parent's side ---------------------------------------------------------------------------
def run_row_process(
    job: RowJob,
    on_progress: Callable[[str, int, int | None], None] | None = None,
) -> dict[str, Any]:
    """Run ``job`` in a fresh interpreter and return its result (an unavailable result if it dies)."""
    with tempfile.TemporaryDirectory(prefix="dgnet-report-") as tmp:
        job_path, result_path, log_path = Path(tmp, "job.json"), Path(tmp, "result.json"), Path(tmp, "stderr.txt")
        job_path.write_text(json.dumps(job.to_dict()))
        started = time.perf_counter()
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", MODULE, str(job_path), str(result_path)],
                stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1,
            )
            try:
                for line in process.stdout:
                    _forward(line, on_progress)
                code = process.wait()
            except BaseException:  # Ctrl-C: stop the row's process too
                process.kill()
                process.wait()
                raise
        wall_s = time.perf_counter() - started
        if result_path.is_file():
            result = json.loads(result_path.read_text())
        else:
            tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-3:])
            result = {"available": False, "reason": f"the worker process exited with code {code} without a result ({tail})"}
        result["process_wall_s"] = wall_s
        return result


def _forward(line: str, on_progress: Callable[[str, int, int | None], None] | None) -> None:
    if on_progress is None or not line.startswith("{"):
        return
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return
    if event.get("event") == "progress":
        on_progress(event["stage"], event["done"], event["total"])


if __name__ == "__main__":
    sys.exit(main())
