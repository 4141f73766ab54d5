"""INT8 calibration of an export folder: one pass, then every INT8 artifact from the same ranges.

:func:`calibrate_export` runs on a finished export folder (``export_checkpoint(..., extend=...)``
calls it on the temporary folder before moving it into place; :func:`int8_extend` makes that hook):

1. ranges: one calibration pass of ``embedder.onnx`` over a camera-stratified sample
   (:mod:`~dgnet_edge.calib.sampling`, :mod:`~dgnet_edge.calib.collect`), or the ranges of a
   ``calibration.json`` / TensorRT cache given with ``cache`` (no pass);
2. ``calibration.json`` (:mod:`~dgnet_edge.calib.ranges`);
3. ``embedder.int8-qdq.onnx`` for TensorRT and ``embedder.int8-cpu.onnx`` for ONNX Runtime
   (:mod:`~dgnet_edge.calib.qdq`), each checked against fp32 on a few calibration images;
4. TensorRT caches, one per TensorRT release of JetPack (:mod:`~dgnet_edge.calib.trt_cache`), listing
   the tensors of the quantized region only (:func:`~dgnet_edge.calib.qdq.int8_tensors`), so that an
   implicit-INT8 engine keeps the same layers in float as the Q/DQ model;
5. the manifest: a model entry per INT8 model and ``Manifest.calibration``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from dgnet_edge.atomic import write_atomic
from dgnet_edge.calib import ranges as ranges_mod
from dgnet_edge.calib.accuracy import feature_cosine, features_on
from dgnet_edge.calib.collect import batch_size_for, collect_histograms
from dgnet_edge.calib.generator import calibrate_generator
from dgnet_edge.calib.histogram import DEFAULT_PERCENTILE, METHODS
from dgnet_edge.calib.qdq import int8_tensors, settings_for, write_int8_model
from dgnet_edge.calib.ranges import CalibrationRanges, ranges_from_histograms
from dgnet_edge.calib.sampling import DEFAULT_COUNT, calibration_set, image_batches
from dgnet_edge.calib.trt_cache import JETPACK_TENSORRT, cache_file_name, cache_text, header, ranges_from_cache, read_cache
from dgnet_edge.errors import DatasetError, ExportError, UsageError
from dgnet_edge.export.onnx_export import graph_specs
from dgnet_edge.manifest import Manifest, ModelEntry, sha256_of

log = logging.getLogger(__name__)

# (stage, completed, total): e.g. ("calibrating", 128, 512); the CLI draws it as a progress bar.
ProgressFn = Callable[[str, int, int], None]
FILES = {"int8-qdq": "embedder.int8-qdq.onnx", "int8-cpu": "embedder.int8-cpu.onnx"}
FLAVOUR = {"int8-qdq": "tensorrt", "int8-cpu": "cpu"}
CHECK_IMAGES = 32  # calibration images on which each INT8 model is compared with fp32 at export
COSINE_WARNING = 0.99


@dataclass(frozen=True)
class CalibrationOptions:
    """How to calibrate.

    Args:
        data: calibration images: a dataset root (training split) or a folder of images.
        count: images in the pass (camera-stratified sample).
        method: entropy | percentile | minmax (default entropy; not with ``cache``).
        percentile: the percentile of |x| for method percentile.
        cache: reuse the ranges of a calibration.json or a TensorRT cache instead of a pass.
        exclude: nodes (names or output names, wildcards allowed) kept float in both INT8 models.
        seed: sampling seed.
        batch_size: images per batch of the pass (default: what fits in the memory budget).
        tensorrt_versions: TensorRT versions to write caches for.
        cpu_arch: x86 | arm for the CPU model (default: this machine).
        generator: also write INT8 CPU models of the generator parts, when the export has them
            (:mod:`~dgnet_edge.calib.generator`; needs calibration images).
    """

    data: Path | None = None
    count: int = DEFAULT_COUNT
    method: str | None = None
    percentile: float = DEFAULT_PERCENTILE
    cache: Path | None = None
    exclude: tuple[str, ...] = ()
    seed: int = 0
    batch_size: int | None = None
    tensorrt_versions: tuple[str, ...] = JETPACK_TENSORRT
    cpu_arch: str | None = None
    generator: bool = True

    def __post_init__(self) -> None:
        if self.data is None and self.cache is None:
            raise UsageError("INT8 calibration needs calibration images (--calib-data) or ranges to reuse (--calib-cache)")
        if self.cache is not None and self.method is not None:
            raise UsageError("--calib-method applies to a calibration pass; --calib-cache reuses its ranges as they are")
        if self.method is not None and self.method not in METHODS:
            raise UsageError(f"--calib-method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.count < 1:
            raise UsageError(f"--calib-count must be >= 1, got {self.count}")
        if not 0.0 < self.percentile <= 100.0:
            raise UsageError(f"the percentile must be in (0, 100], got {self.percentile}")


def _notify(progress: ProgressFn | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def load_reusable_ranges(path: Path) -> CalibrationRanges:
    """Ranges from a calibration.json or a TensorRT calibration cache (told apart by content)."""
    if not path.is_file():
        raise UsageError(f"--calib-cache {path}: file not found")
    head = path.read_bytes()[:64].lstrip()
    if head.startswith(b"{"):
        reused = ranges_mod.load_ranges(path)
        return reused.with_source(reused_from=str(path.resolve()))
    cache = read_cache(path)
    return ranges_from_cache(cache, source={"kind": "tensorrt-cache", "file": str(path.resolve()), "tensorrt": cache.version_string})


def compute_ranges(
    fp32_path: Path,
    manifest: Manifest,
    options: CalibrationOptions,
    progress: ProgressFn | None = None,
) -> tuple[CalibrationRanges, tuple[Path, ...]]:
    """The ranges (from a pass or reused) and the calibration images (empty when reused without data)."""
    model = onnx.load(str(fp32_path))
    fmt = manifest.input
    images: tuple[Path, ...] = ()
    if options.data is not None:
        sample = calibration_set(options.data, options.count, options.seed, dataset=manifest.source.get("dataset"))
        images = sample.paths
    if options.cache is not None:
        return load_reusable_ranges(Path(options.cache)), images
    batch = options.batch_size or batch_size_for(model)
    name = model.graph.input[0].name
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        _notify(progress, "calibrating", done, len(images))

    _notify(progress, "calibrating", 0, len(images))
    log.info("calibrating on %d images (%s), batches of %d", len(images), sample.provenance.get("dataset", "folder"), batch)
    histograms = collect_histograms(model, image_batches(images, fmt.height, fmt.width, fmt.dtype, batch, name), on_batch=advance)
    method = options.method or "entropy"
    result = ranges_from_histograms(
        histograms, method, len(images), options.percentile, source=sample.provenance,
        input={"name": name, "height": fmt.height, "width": fmt.width, "layout": fmt.layout, "dtype": fmt.dtype},
    )
    return result, images


def _check_images(images: Sequence[Path], manifest: Manifest) -> list[dict[str, np.ndarray]]:
    """A few batches to compare INT8 with fp32 at export: calibration images, else the checkpoint's, else noise."""
    fmt = manifest.input
    paths = list(images[:: max(1, len(images) // CHECK_IMAGES)][:CHECK_IMAGES]) if images else []
    if not paths and manifest.source.get("data_root"):
        try:
            paths = list(calibration_set(manifest.source["data_root"], CHECK_IMAGES, dataset=manifest.source.get("dataset")).paths)
        except DatasetError:
            paths = []
    if paths:
        return list(image_batches(paths, fmt.height, fmt.width, fmt.dtype, 16))
    rng = np.random.default_rng(0)
    return [{"images": rng.integers(0, 256, (8, fmt.height, fmt.width, 3)).astype(fmt.dtype)}]


def calibrate_export(
    folder: str | Path,
    manifest: Manifest,
    options: CalibrationOptions,
    progress: ProgressFn | None = None,
) -> Manifest:
    """Add calibration.json, both INT8 models and the TensorRT caches to an export folder; returns the manifest."""
    folder = Path(folder)
    fp32_entry = manifest.model("embedder", "fp32")
    fp32_path = folder / fp32_entry.file
    ranges, images = compute_ranges(fp32_path, manifest, options, progress)
    ranges = replace(ranges, model={"file": fp32_entry.file, "sha256": fp32_entry.sha256}) if not ranges.model else ranges
    if ranges.model.get("sha256") not in (None, fp32_entry.sha256):
        log.warning("the reused ranges were calibrated on another embedder.onnx (sha256 differs); using them since the tensor names match")
    ranges.save(folder / ranges_mod.FILE_NAME)

    feeds = _check_images(images, manifest)
    reference = features_on(fp32_path, feeds)
    checked = sum(len(next(iter(f.values()))) for f in feeds)
    entries = []
    steps = len(FILES) + 1
    for step, (precision, file) in enumerate(FILES.items()):
        _notify(progress, "quantizing", step, steps)
        settings = settings_for(FLAVOUR[precision], arch=options.cpu_arch if precision == "int8-cpu" else None)
        model, done = write_int8_model(fp32_path, ranges, folder / file, settings, options.exclude)
        mean_cos, min_cos = feature_cosine(reference, features_on(folder / file, feeds))
        if mean_cos < COSINE_WARNING:
            log.warning("%s: mean feature cosine to fp32 %.4f on %d check images (< %.2f); see `dgnet-edge calib sensitivity`",
                        file, mean_cos, checked, COSINE_WARNING)
        details = {
            "calibration": ranges_mod.FILE_NAME,
            "method": ranges.method,
            "percentile": ranges.percentile,
            "samples": ranges.samples,
            "ranges_source": ranges.source.get("kind", "dataset"),
            **done.details(),
            "cosine_vs_fp32": {"mean": round(mean_cos, 6), "min": round(min_cos, 6), "images": checked},
        }
        entries.append(ModelEntry("embedder", precision, file, sha256_of(folder / file), graph_specs(model.graph.input),
                                  graph_specs(model.graph.output), fp32_entry.opset, details))
    _notify(progress, "quantizing", steps - 1, steps)
    entries += _generator_entries(folder, manifest, images, ranges, options, progress)
    cached = cache_amax(fp32_path, ranges, options.exclude)
    caches = []
    for version in options.tensorrt_versions:
        file = cache_file_name(version)
        write_atomic(folder / file, cache_text(cached, version).encode("ascii"))
        caches.append({"file": file, "role": "embedder", "tensorrt": version, "header": header(version),
                       "sha256": sha256_of(folder / file)})
    _notify(progress, "quantizing", steps, steps)

    for entry in entries:
        manifest = manifest.with_model(entry)
    calibration: dict[str, Any] = {
        "file": ranges_mod.FILE_NAME,
        "sha256": sha256_of(folder / ranges_mod.FILE_NAME),
        "method": ranges.method,
        "percentile": ranges.percentile,
        "count": ranges.samples,
        "source": ranges.source,
        "excluded_nodes": list(entries[0].details["excluded_nodes"]),
        "tensors": len(ranges.tensors),
        "cache_tensors": len(cached),
        "caches": caches,
    }
    return replace(manifest, calibration=calibration)


def _generator_entries(folder: Path, manifest: Manifest, images: Sequence[Path], ranges: CalibrationRanges,
                       options: CalibrationOptions, progress: ProgressFn | None) -> list[ModelEntry]:
    """The INT8 CPU generator parts, when asked for and possible (else a log line says why not)."""
    if not options.generator or not (manifest.has_model("structure", "fp32") and manifest.has_model("decoder", "fp32")):
        return []
    if not images:
        log.warning("the INT8 generator parts need calibration images (--calib-data): the generator stays fp32/fp16")
        return []
    if manifest.code_dim <= 0:
        log.warning("the embedder has no appearance output (exported with --no-code): the generator stays fp32/fp16")
        return []
    settings = settings_for("cpu", arch=options.cpu_arch)
    return calibrate_generator(folder, manifest, images, settings, ranges.method, options.percentile, progress=progress)


def cache_amax(fp32: str | Path, ranges: CalibrationRanges, exclude: Sequence[str] = ()) -> dict[str, float]:
    """amax of the tensors a TensorRT cache lists: the quantized region of the graph (:func:`int8_tensors`)."""
    wanted = int8_tensors(onnx.load(str(fp32)), exclude)
    missing = [t for t in wanted if t not in ranges.tensors]
    if missing:
        raise ExportError(f"the calibration ranges have no entry for {', '.join(missing[:3])}: calibrate again")
    return {name: ranges.tensors[name].amax for name in wanted}


def int8_extend(options: CalibrationOptions, progress: ProgressFn | None = None) -> Callable[[Path, Manifest], Manifest]:
    """The ``extend`` hook of :func:`dgnet_edge.export.pipeline.export_checkpoint` that calibrates."""

    def extend(folder: Path, manifest: Manifest) -> Manifest:
        return calibrate_export(folder, manifest, options, progress)

    return extend
