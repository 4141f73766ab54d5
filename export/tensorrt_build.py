"""`dgnet-edge build`: TensorRT engines from an export folder, built on the device that runs them.

Engines are specific to the GPU generation (compute capability) and the TensorRT version, so
they are built on the target (a Jetson, a workstation GPU) from the export folder's ONNX models
and recorded in its manifest as :class:`~dgnet_edge.manifest.EngineEntry` with the GPU name,
compute capability, TensorRT version and precision. File names carry the same facts::

    engines/embedder.int8.sm87.trt10.3.0.engine
    engines/embedder.fp16.sm87.dla0.trt8.5.2.engine      (DLA core 0)

Which model is parsed, whether the network is strongly typed and which builder flags are set
depends on the precision and on what the installed TensorRT offers
(:class:`~dgnet_edge.runtime.tensorrt.TensorRTFeatures`):

=========  ====================================  ====================================  =====================
           TensorRT 8.5 / 8.6 / 10.0-10.11       TensorRT 10.12+ (flags deprecated)    TensorRT 11
=========  ====================================  ====================================  =====================
fp32       fp32 ONNX                             fp32 ONNX, strongly typed             fp32 ONNX
fp16       fp32 ONNX + ``FP16``                  fp16 ONNX, strongly typed             fp16 ONNX
                                                 (no fp16 ONNX: fp32 + ``FP16``)       (``export --fp16``)
int8 qdq   Q/DQ ONNX + ``INT8`` + ``FP16``       Q/DQ ONNX, strongly typed             Q/DQ ONNX
                                                 (DLA: + ``INT8`` + ``FP16``)
int8       fp32 ONNX + ``INT8`` + ``FP16`` +     the same (deprecated)                 not available
cache /    entropy calibrator: the export's
calibrate  TensorRT cache, or live calibration
=========  ====================================  ====================================  =====================

``FP16`` goes with ``INT8`` because layers TensorRT leaves out of INT8 otherwise run in FP32
(NvInfer.h: INT8 falls back to FP16 "if kFP16 also specified"), and on DLA FP32 layers cannot run
at all. A strongly typed network takes its precision from the model's types, so no precision flag
is set there; Q/DQ models keep their float layers in FP32 that way, which is why DLA builds of
the Q/DQ model on 10.12+ stay weakly typed. TensorRT 8.5/8.6 run Q/DQ layers on the GPU, not on
DLA: a DLA build of the Q/DQ model says so (``--int8-source cache`` gives DLA INT8 there).

TensorRT 8 networks are created with ``EXPLICIT_BATCH``; 10 ignores that flag and 11 dropped it,
so it is set only on 8. The optimisation profile comes from the manifest: the batch axis of
every input spans the export's :class:`~dgnet_edge.manifest.BatchProfile` (min/opt/max), the
other dimensions are the model's (DLA engines: a static batch of the profile's opt, since DLA
layers take no dynamic dimension); an ONNX model whose batch dimension is static cannot take
that profile and is refused before building. The engine file and the manifest are written
atomically.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dgnet_edge.calib.tensorrt_calibrator import (
    ALGORITHM,
    cache_for_tensorrt,
    cache_versions,
    caches_for_role,
    calibration_state,
    check_cache_file,
    header_version,
    make_entropy_calibrator,
    restamp,
)
from dgnet_edge.calib.trt_cache import parse_cache, unusable_scales, without_tensors
from dgnet_edge.errors import BackendUnavailableError, ExportError, UsageError
from dgnet_edge.manifest import (
    ROLES,
    BatchProfile,
    EngineEntry,
    InputFormat,
    Manifest,
    ModelEntry,
    load_manifest,
    sha256_of,
    verified_path,
    write_atomic,
)
from dgnet_edge.runtime.base import TensorSpec
from dgnet_edge.runtime.tensorrt import (
    DeviceInfo,
    TensorRTFeatures,
    cuda_device,
    current_device,
    import_tensorrt,
    tensorrt_logger,
    version_tuple,
)

log = logging.getLogger(__name__)

ENGINE_DIR = "engines"
PRECISIONS = ("fp32", "fp16", "int8")
INT8_SOURCES = ("qdq", "cache", "calibrate")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class BuildOptions:
    """How to build.

    Args:
        precision: fp32 | fp16 | int8.
        int8_source: for int8: ``qdq`` (the export's Q/DQ model, explicit quantization),
            ``cache`` (the export's TensorRT calibration cache for this TensorRT version; another
            version's, given this version's header, when the export has none for it) or
            ``calibrate`` (live calibration on ``calib_data``); cache and calibrate need
            TensorRT 8.5-10.x.
        calib_data: folder of images (searched recursively) for ``calibrate``.
        calib_images: at most this many images, evenly spread over the sorted file list.
        calib_batch: calibration batch size (the calibration profile's fixed batch).
        dla_core: build for this DLA core (Jetson), with GPU fallback; fp16 or int8 only. DLA
            takes no dynamic dimension, so the engine's batch is fixed at the profile's opt.
            On TensorRT 8.5/8.6 the Q/DQ model's INT8 layers run on the GPU (``cache`` or
            ``calibrate`` give INT8 on DLA there).
        timing_cache: timing cache file to load and update (default: one per GPU and TensorRT
            version in the export's ``engines/`` folder).
        workspace_mb: limit of TensorRT's workspace memory pool (default: TensorRT's).
    """

    precision: str
    int8_source: str = "qdq"
    calib_data: Path | None = None
    calib_images: int = 512
    calib_batch: int = 8
    dla_core: int | None = None
    timing_cache: Path | None = None
    workspace_mb: int | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.int8_source not in INT8_SOURCES:
            raise UsageError(f"--int8-source must be one of {', '.join(INT8_SOURCES)}, got {self.int8_source!r}")
        if self.dla_core is not None and self.precision == "fp32":
            raise UsageError("DLA runs FP16 or INT8 only: use --precision fp16 or int8 with --dla")
        if self.precision == "int8" and self.int8_source == "calibrate" and self.calib_data is None:
            raise UsageError("--int8-source calibrate needs --calib-data DIR (a folder of images)")
        if self.calib_batch < 1 or self.calib_images < 1:
            raise UsageError("calibration batch and image count must be at least 1")


@dataclass(frozen=True)
class BuildPlan:
    """What a build does, decided from the manifest, the options and the TensorRT features."""

    role: str
    precision: str  # fp32 | fp16 | int8
    model: ModelEntry  # the ONNX model parsed
    flags: tuple[str, ...]  # BuilderFlag names set
    network_flags: tuple[str, ...]  # NetworkDefinitionCreationFlag names set
    strongly_typed: bool  # precision comes from the model's types (TensorRT 10.12+ and 11)
    int8_source: str | None = None
    calibration_cache: str | None = None  # cache the calibrator starts from, relative to the export folder
    cache_version: str | None = None  # TensorRT version of the manifest's cache (cache source)
    qdq_on_gpu: bool = False  # a DLA build whose Q/DQ layers fall back to the GPU (TensorRT 8.5/8.6)


@dataclass
class BuildResult:
    entry: EngineEntry
    path: Path
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


def engine_file(role: str, precision: str, device: DeviceInfo, dla_core: int | None = None) -> str:
    """``engines/<role>.<precision>.sm<cc>[.dla<core>].trt<major.minor.patch>.engine``."""
    dla = f".dla{dla_core}" if dla_core is not None else ""
    return f"{ENGINE_DIR}/{role}.{precision}.{device.sm}{dla}.trt{device.tensorrt_short}.engine"


def timing_cache_file(device: DeviceInfo) -> str:
    return f"{ENGINE_DIR}/timing.{device.sm}.trt{device.tensorrt_short}.cache"


def calibration_cache_file(role: str, features: TensorRTFeatures) -> str:
    """Where live calibration writes its cache (caches depend on the TensorRT version only)."""
    return f"{ENGINE_DIR}/{role}.trt{features.short_version}.calibration.cache"


def plan_build(manifest: Manifest, role: str, options: BuildOptions, features: TensorRTFeatures) -> BuildPlan:
    """Choose the model, typing and flags; ExportError/UsageError when this TensorRT or export cannot do it."""
    if role not in ROLES:
        raise UsageError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    typed_only = not features.precision_flags  # TensorRT 11
    prefer_typed = typed_only or features.precision_flags_deprecated  # and 10.12+
    dla = options.dla_core is not None
    flags: list[str] = []
    source = None
    cache = None
    cache_version = None
    qdq_on_gpu = False
    if options.precision == "fp32":
        model = manifest.model(role, "fp32")
        strongly_typed = prefer_typed
    elif options.precision == "fp16":
        if prefer_typed and manifest.has_model(role, "fp16"):
            model = manifest.model(role, "fp16")
            strongly_typed = True
        elif typed_only:
            raise ExportError(
                f"TensorRT {features.version} builds FP16 only from an fp16 ONNX model (it removed the FP16 flag) "
                f"and the export has no {role} fp16 model: re-export with --fp16"
            )
        else:
            if prefer_typed:
                log.warning("TensorRT %s deprecated the FP16 flag in favour of strong typing, and the export has no "
                            "%s fp16 model: building with the flag (re-export with --fp16 for the strongly typed build)",
                            features.short_version, role)
            model = manifest.model(role, "fp32")
            strongly_typed = False
            flags.append("FP16")
    else:
        source = options.int8_source
        if source == "qdq":
            if not manifest.has_model(role, "int8-qdq"):
                raise ExportError(
                    f"the export has no {role} Q/DQ model (int8-qdq): re-export with --int8, "
                    + ("or use --int8-source cache|calibrate" if features.implicit_int8 else
                       f"the only INT8 path of TensorRT {features.version}")
                )
            model = manifest.model(role, "int8-qdq")
            # Strong typing keeps the Q/DQ model's float layers in FP32, which DLA cannot run.
            strongly_typed = typed_only or (prefer_typed and not dla)
            if dla and not features.dla_runs_qdq:
                qdq_on_gpu = True
                log.warning("TensorRT %s does not run Q/DQ (explicit INT8) layers on DLA: this engine's INT8 layers "
                            "fall back to the GPU; for INT8 on DLA build from the calibration cache "
                            "(--int8-source cache) or calibrate (--int8-source calibrate)", features.short_version)
        else:
            if not features.implicit_int8:
                raise UsageError(
                    f"TensorRT {features.version} removed implicit INT8 (calibrators and calibration caches): "
                    "build from the Q/DQ model with --int8-source qdq"
                )
            model = manifest.model(role, "fp32")
            strongly_typed = False
            if prefer_typed:
                log.warning("TensorRT %s deprecated implicit INT8 (calibrators, INT8 flag) in favour of Q/DQ models: "
                            "--int8-source qdq is the strongly typed build", features.short_version)
            if source == "cache":
                # The cache of this TensorRT version; else the newest other one, restamped at build time
                # (the scales do not depend on the version, only the header TensorRT checks does).
                entry = cache_for_tensorrt(manifest.calibration, role, features.version)
                if entry is None:
                    others = caches_for_role(manifest.calibration, role)
                    if not others:
                        raise ExportError(
                            f"the export has no TensorRT calibration cache for {role}: re-export with --int8, "
                            "or use --int8-source calibrate --calib-data DIR, or qdq"
                        )
                    entry = max(others, key=lambda e: version_tuple(e["tensorrt"]))
                    log.warning("the export has no calibration cache for TensorRT %s (it has: %s): using the %s one "
                                "with this version's header", features.short_version,
                                ", ".join(cache_versions(manifest.calibration, role)), entry["tensorrt"])
                cache, cache_version = entry["file"], str(entry["tensorrt"])
            else:
                cache = calibration_cache_file(role, features)
        if not strongly_typed:
            # Layers left out of INT8 run in FP16 rather than FP32 (and can stay on DLA).
            flags += ["INT8", "FP16"]
    if dla:
        flags.append("GPU_FALLBACK")
    network_flags = ("EXPLICIT_BATCH",) if features.explicit_batch_flag else ()
    if strongly_typed and features.strongly_typed_flag:
        network_flags += ("STRONGLY_TYPED",)
    return BuildPlan(role, options.precision, model, tuple(flags), network_flags, strongly_typed, source, cache,
                     cache_version, qdq_on_gpu)


# -- calibration data --------------------------------------------------------------------------
def calibration_images(folder: Path, limit: int, batch: int) -> list[Path]:
    """Image files under ``folder`` (sorted, evenly spread to ``limit``), whole batches only."""
    if not folder.is_dir():
        raise UsageError(f"--calib-data {folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if len(files) > limit:
        step = len(files) / limit
        files = [files[int(i * step)] for i in range(limit)]
    files = files[: len(files) // batch * batch]
    if not files:
        raise UsageError(f"--calib-data {folder}: fewer than one batch ({batch}) of images (.jpg, .png, .bmp)")
    return files


def image_batches(files: list[Path], spec: TensorSpec, fmt: InputFormat, batch: int) -> Iterator[dict[str, np.ndarray]]:
    """Batches of images as the graph takes them (NHWC RGB at the network size, the input dtype)."""
    from dgnet_edge.data.images import load_images

    for start in range(0, len(files), batch):
        pixels = load_images(files[start:start + batch], fmt.height, fmt.width, skip_unreadable=False).pixels
        yield {spec.name: pixels.astype(spec.dtype)}


# -- the build ---------------------------------------------------------------------------------
def prepare_cache(folder: Path, manifest: Manifest, plan: BuildPlan, features: TensorRTFeatures) -> str:
    """The cache file the calibrator reads (relative to ``folder``): the export's, checked, or a copy
    with this TensorRT's header when the export's names another version (TensorRT ignores those) and
    without the tensors of scale 0 an older export wrote (TensorRT would divide by them)."""
    path = folder / plan.calibration_cache
    entry = next((e for e in caches_for_role(manifest.calibration, plan.role) if e["file"] == plan.calibration_cache), {})
    first = check_cache_file(path)
    if entry.get("sha256") and sha256_of(path) != entry["sha256"]:
        raise ExportError(f"{path}: contents differ from the manifest (sha256 mismatch); re-export with --int8")
    text = path.read_text(encoding="ascii")
    wanted = f"TRT-{header_version(features.version)}-{ALGORITHM}"
    unusable = unusable_scales(parse_cache(text, str(path)))
    if first == wanted and not unusable:
        return plan.calibration_cache
    target = calibration_cache_file(plan.role, features)
    if first != wanted:
        log.warning("%s is for %s; TensorRT %s reads %s only: writing %s with that header",
                    plan.calibration_cache, first, features.version, wanted, target)
        text = restamp(text, features.version)
    if unusable:
        log.warning("%s gives %d tensor(s) a scale of 0 or not finite (%s): leaving them out of %s, so they stay float",
                    plan.calibration_cache, len(unusable), ", ".join(unusable[:3]), target)
        text = without_tensors(text, unusable)
    write_atomic(folder / target, text.encode("ascii"))
    return target


def _flag_bits(enum: Any, names: tuple[str, ...]) -> int:
    bits = 0
    for name in names:
        bits |= 1 << int(getattr(enum, name))
    return bits


def _parser_errors(parser: Any, onnx_path: Path) -> str:
    """Every parser error with its node's index, name and operator."""
    nodes = None
    lines = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        index = int(error.node())
        name = error.node_name() if hasattr(error, "node_name") else None
        op = error.node_operator() if hasattr(error, "node_operator") else None
        if (not name or not op) and index >= 0:
            if nodes is None:
                nodes = _onnx_nodes(onnx_path)
            if 0 <= index < len(nodes):
                name, op = name or nodes[index][0], op or nodes[index][1]
        code = error.code()
        where = f"node {index} {name!r} ({op})" if index >= 0 else "model"
        lines.append(f"  {where}: {error.desc()} [{getattr(code, 'name', code)}]")
    return "\n".join(lines)


def _onnx_nodes(path: Path) -> list[tuple[str, str]]:
    """(name, op_type) of the graph's nodes, for TensorRT 8 parsers that report indices only."""
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # noqa: BLE001 - names are a courtesy; the index is still reported
        return []
    return [(n.name, n.op_type) for n in graph.node]


def _profile_shapes(spec: TensorSpec, batch: BatchProfile | int) -> tuple[tuple[int, ...], ...]:
    """(min, opt, max) of one input: the batch axis from the profile, the rest from the model."""
    rest = []
    for axis, dim in enumerate(spec.shape[1:], start=1):
        if not isinstance(dim, int):
            raise ExportError(f"input {spec.name!r} has a dynamic dimension {dim!r} at axis {axis}; only the batch axis may be dynamic")
        rest.append(dim)
    sizes = (batch, batch, batch) if isinstance(batch, int) else (batch.min, batch.opt, batch.max)
    return tuple((n, *rest) for n in sizes)


def _check_network_inputs(network: Any, model: ModelEntry) -> None:
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    expected = [s.name for s in model.inputs]
    if sorted(names) != sorted(expected):
        raise ExportError(f"{model.file}: TensorRT sees inputs {names}, the manifest lists {expected}; re-export")


def _check_profile_fits(network: Any, model: ModelEntry, shapes: dict[str, tuple[tuple[int, ...], ...]], what: str,
                        fix: str = "re-export it with a dynamic batch axis") -> None:
    """ExportError when a static dimension of the parsed network differs from the profile's ``what``."""
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = tuple(int(d) for d in tensor.shape)
        low, _, high = shapes[tensor.name]
        for axis, dim in enumerate(dims):
            if dim < 0 or (low[axis] == dim == high[axis]):
                continue
            span = f"{low[axis]}..{high[axis]}" if low[axis] != high[axis] else str(low[axis])
            if axis == 0:
                raise ExportError(
                    f"{model.file}: input {tensor.name!r} has a static batch dimension of {dim}, so TensorRT cannot "
                    f"take batch {span} of {what}; {fix}"
                )
            raise ExportError(f"{model.file}: input {tensor.name!r} is {dims} in the model but the {what} asks for "
                              f"{span} at axis {axis}; re-export")


def build_engine(
    export_dir: str | Path,
    role: str,
    options: BuildOptions,
) -> BuildResult:
    """Build the ``role`` engine of an export folder on this device and add it to the manifest.

    Raises UsageError/ExportError for what the export or this TensorRT cannot do,
    BackendUnavailableError when TensorRT, pycuda or a GPU is missing or the build fails.
    """
    folder = Path(export_dir)
    manifest = load_manifest(folder)
    trt = import_tensorrt()
    features = TensorRTFeatures.of(trt)
    plan = plan_build(manifest, role, options, features)
    device = current_device(trt)
    onnx_path = verified_path(folder, plan.model)
    (folder / ENGINE_DIR).mkdir(exist_ok=True)
    calib_files = None
    cache_read = plan.calibration_cache
    if plan.int8_source == "calibrate":
        if len(plan.model.inputs) != 1:
            raise UsageError(f"live calibration feeds images; the {role} model takes {len(plan.model.inputs)} inputs")
        calib_files = calibration_images(Path(options.calib_data), options.calib_images, options.calib_batch)
    elif plan.int8_source == "cache":
        cache_read = prepare_cache(folder, manifest, plan, features)

    with cuda_device().current():
        return _build(folder, manifest, plan, options, trt, features, device, onnx_path, calib_files, cache_read)


def _build(folder: Path, manifest: Manifest, plan: BuildPlan, options: BuildOptions, trt: Any,
           features: TensorRTFeatures, device: DeviceInfo, onnx_path: Path, calib_files: list[Path] | None,
           cache_read: str | None) -> BuildResult:
    """The TensorRT side of :func:`build_engine`, with the CUDA context current."""
    role = plan.role
    logger = tensorrt_logger(trt)
    builder = trt.Builder(logger)
    if builder is None:
        raise BackendUnavailableError("TensorRT: cannot create a builder (no usable GPU?)")
    if options.dla_core is not None and not 0 <= options.dla_core < builder.num_DLA_cores:
        raise BackendUnavailableError(
            f"TensorRT: DLA core {options.dla_core} asked for, but this device has {builder.num_DLA_cores} DLA core(s)"
        )
    network = builder.create_network(_flag_bits(trt.NetworkDefinitionCreationFlag, plan.network_flags))
    parser = trt.OnnxParser(network, logger)
    parsed = parser.parse_from_file(str(onnx_path))
    if not parsed or parser.num_errors:
        raise ExportError(
            f"TensorRT {features.version} cannot parse {plan.model.file}:\n{_parser_errors(parser, onnx_path) or '  (no details)'}"
        )
    _check_network_inputs(network, plan.model)

    config = builder.create_builder_config()
    if options.workspace_mb is not None:
        size = int(options.workspace_mb) << 20
        if features.memory_pools:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, size)
        else:
            config.max_workspace_size = size
    # DLA layers take no dynamic dimension: a DLA engine has a static batch, the profile's opt.
    batch = manifest.profile if options.dla_core is None else BatchProfile(*(manifest.profile.opt,) * 3)
    shapes = {spec.name: _profile_shapes(spec, batch) for spec in plan.model.inputs}
    _check_profile_fits(network, plan.model, shapes,
                        "the export's profile" if options.dla_core is None else "the DLA profile (the export's opt)")
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in shapes.items():
        profile.set_shape(name, low, opt, high)
    if config.add_optimization_profile(profile) < 0:
        raise ExportError(f"TensorRT rejected the optimisation profile {shapes} of {plan.model.file} (see the TensorRT "
                          "errors above); check the manifest's profile (min <= opt <= max) and re-export")
    for name in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, name))

    calibrator = None
    if plan.int8_source in ("cache", "calibrate"):
        spec = plan.model.inputs[0]
        batches: Any = (image_batches(calib_files, spec, manifest.input, options.calib_batch)
                        if calib_files is not None else iter(()))
        calibrator = make_entropy_calibrator(
            batches, folder / cache_read, batch_size=options.calib_batch,
            reuse_cache=plan.int8_source == "cache", trt=trt,
        )
        config.int8_calibrator = calibrator
        calib_shapes = {spec.name: _profile_shapes(spec, options.calib_batch) for spec in plan.model.inputs}
        _check_profile_fits(network, plan.model, calib_shapes, "the calibration profile (--calib-batch)",
                            "re-export it with a dynamic batch axis, or calibrate with that --calib-batch")
        calib_profile = builder.create_optimization_profile()
        for name, (low, opt, high) in calib_shapes.items():
            calib_profile.set_shape(name, low, opt, high)
        if not config.set_calibration_profile(calib_profile):
            raise ExportError(f"TensorRT rejected the calibration profile {calib_shapes} of {plan.model.file} "
                              "(see the TensorRT errors above); try another --calib-batch")

    if options.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(options.dla_core)

    cache_path = Path(options.timing_cache) if options.timing_cache is not None else folder / timing_cache_file(device)
    cache_bytes = cache_path.read_bytes() if cache_path.is_file() else b""
    timing_cache = config.create_timing_cache(cache_bytes)
    if not config.set_timing_cache(timing_cache, False):
        log.warning("timing cache %s is from another device or TensorRT version: starting a new one", cache_path)
        timing_cache = config.create_timing_cache(b"")
        config.set_timing_cache(timing_cache, False)

    log.info("building %s %s engine from %s with TensorRT %s on %s%s", role, options.precision, plan.model.file,
             features.version, device.gpu, "" if options.dla_core is None else f" (DLA core {options.dla_core})")
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    state = calibration_state(calibrator) if calibrator is not None else None
    if state is not None and state.error is not None:
        raise ExportError(f"INT8 calibration failed: {state.error}")
    if serialized is None:
        hint = ""
        if plan.int8_source == "cache":
            hint = f"; TensorRT may have rejected the cache {plan.calibration_cache} (another version?): try --int8-source calibrate"
        raise ExportError(f"TensorRT could not build the {role} {options.precision} engine (see the TensorRT errors above){hint}")

    cache_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(cache_path, bytes(config.get_timing_cache().serialize()))

    file = engine_file(role, options.precision, device, options.dla_core)
    path = folder / file
    write_atomic(path, bytes(serialized))
    details: dict[str, Any] = {
        "flags": list(plan.flags),
        "strongly_typed": plan.strongly_typed,
        "network_flags": list(plan.network_flags),
        "build_seconds": round(seconds, 3),
        "dla_core": options.dla_core,
    }
    if plan.int8_source is not None:
        details["int8_source"] = plan.int8_source
    if plan.qdq_on_gpu:
        details["dla_fallback"] = "Q/DQ layers run on the GPU (TensorRT 8.5/8.6 run no explicit INT8 on DLA)"
    if plan.calibration_cache is not None:
        details["calibration_cache"] = plan.calibration_cache
        if cache_read != plan.calibration_cache:
            details["calibration_cache_restamped"] = cache_read
        if state is not None:
            details["calibration_batches"] = state.batches
    if options.workspace_mb is not None:
        details["workspace_mb"] = options.workspace_mb
    entry = EngineEntry(
        role=role,
        precision=options.precision,
        file=file,
        sha256=sha256_of(path),
        source=plan.model.key,
        gpu=device.gpu,
        compute_capability=device.compute_capability,
        tensorrt=device.tensorrt,
        profile=batch,
        details=details,
    )
    # Re-read the manifest so builds of other roles meanwhile are kept.
    load_manifest(folder).with_engine(entry).save(folder)
    log.info("wrote %s (%.1f MB) in %.1f s", file, path.stat().st_size / 2**20, seconds)
    return BuildResult(entry, path, seconds, details)


def roles_to_build(manifest: Manifest, role: str) -> list[str]:
    """``all``: every role the export has a model for; otherwise the one role."""
    if role == "all":
        roles = [r for r in ROLES if any(m.role == r for m in manifest.models)]
        if not roles:
            raise ExportError("the export has no models")
        return roles
    if role not in ROLES:
        raise UsageError(f"--role must be one of {', '.join(ROLES)} or all, got {role!r}")
    return [role]


def build_engines(export_dir: str | Path, role: str, options: BuildOptions) -> list[BuildResult]:
    """Build the engines of ``role`` (or ``all`` roles) of an export folder.

    With ``all``, roles without a model this precision can be built from are skipped (logged).
    """
    manifest = load_manifest(export_dir)
    roles = roles_to_build(manifest, role)
    if role == "all":
        usable = {"fp32": ("fp32",), "fp16": ("fp32", "fp16"),
                  "int8": ("int8-qdq",) if options.int8_source == "qdq" else ("fp32",)}[options.precision]
        skipped = [r for r in roles if not any(manifest.has_model(r, p) for p in usable)]
        for r in skipped:
            log.warning("skipping %s: the export has no %s model of it", r, " or ".join(usable))
        roles = [r for r in roles if r not in skipped]
        if not roles:
            raise ExportError(f"the export has no model to build a {options.precision} engine from; re-export")
    return [build_engine(export_dir, r, options) for r in roles]
