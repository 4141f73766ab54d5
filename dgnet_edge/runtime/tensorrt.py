"""TensorRT backend: engine loaders and a runner on pycuda buffers and one CUDA stream.

Supported TensorRT versions are 8.5 (JetPack 5), 8.6 (JetPack 6.0), 10.x (10.3 = JetPack 6.1/6.2,
10.13+ = JetPack 7) and 11.x. Every one of them runs engines through tensor names
(``num_io_tensors``, ``get_tensor_name``, ``get_tensor_mode``, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``), which exist from 8.5 on; the binding-index API
(``execute_async_v2``), deprecated in 8.5 and removed in 10, is used only for an engine whose
context lacks the name API, or when asked for (``TensorRTRunner(..., api="bindings")``).

Engines are specific to the GPU (compute capability) and the TensorRT version that built them.
:class:`EngineFromExport` checks the manifest's :class:`~dgnet_edge.manifest.EngineEntry` against
the running device *before* deserializing, and a deserialization failure is reported the same way:
as a :class:`~dgnet_edge.errors.BackendUnavailableError` that says to rebuild with
``dgnet-edge build``. Once deserialized, the engine's inputs and outputs (names and dtypes) are
checked against the manifest's entry of the ONNX model it was built from.

CUDA: the runner, the builder and the calibrator use device 0's primary context (the one
TensorRT's CUDA runtime calls use), made current around each use with push/pop, so a runner
works from any thread (pycuda.autoinit's context is current only in the thread that imported
it; the camera app runs its sources in threads). On an integrated GPU (a Jetson: GPU and CPU
share memory) the runner binds mapped host memory, with no device buffers and no copies.

Nothing here imports ``tensorrt`` or ``pycuda`` at module level: ``import
dgnet_edge.runtime.tensorrt`` works on a machine with neither, and the first loader or runner
call says what is missing ("TensorRT: not installed", "TensorRT: no CUDA GPU").
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dgnet_edge.errors import BackendUnavailableError, ExportError
from dgnet_edge.manifest import EngineEntry, Manifest, ModelEntry, load_manifest, verified_path
from dgnet_edge.runtime.base import Runner, TensorSpec, invoke_if_callable, unavailable

log = logging.getLogger(__name__)

BACKEND = "TensorRT"
INSTALL_HINT = "on a CUDA machine: pip install tensorrt pycuda (the tensorrt extra of dgnet-edge); on a Jetson: JetPack's python3-libnvinfer"


# -- optional dependencies, imported when first needed ----------------------------------------
def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or BackendUnavailableError("TensorRT: not installed ...")."""
    try:
        return importlib.import_module("tensorrt")
    except ImportError as e:
        raise unavailable(BACKEND, f"not installed ({INSTALL_HINT}; import failed: {e})") from None


@dataclass
class CudaDevice:
    """Device 0 and its primary context, the context TensorRT's CUDA runtime calls use.

    ``integrated``: the GPU shares memory with the CPU (a Jetson; CUDA's INTEGRATED attribute,
    with host memory mappable into the device's address space).
    """

    driver: Any  # pycuda.driver
    device: Any
    context: Any
    integrated: bool

    @contextmanager
    def current(self) -> Iterator[Any]:
        """The context made current in this thread for the block (any thread); yields pycuda.driver."""
        self.context.push()
        try:
            yield self.driver
        finally:
            self.driver.Context.pop()


_cuda: CudaDevice | None = None
_cuda_lock = threading.Lock()


def cuda_device() -> CudaDevice:
    """The process's :class:`CudaDevice`, created on first use.

    BackendUnavailableError when pycuda is missing or no CUDA GPU can be used.
    """
    global _cuda
    try:
        driver = importlib.import_module("pycuda.driver")
    except ImportError as e:
        raise unavailable(BACKEND, f"pycuda not installed (pip install pycuda; import failed: {e})") from None
    try:
        driver.init()
        if driver.Device.count() == 0:
            raise unavailable(BACKEND, "no CUDA GPU (the CUDA driver sees no device)")
        with _cuda_lock:
            if _cuda is None or _cuda.driver is not driver:
                device = driver.Device(0)
                attribute = driver.device_attribute
                integrated = bool(device.get_attribute(attribute.INTEGRATED)) and bool(
                    device.get_attribute(attribute.CAN_MAP_HOST_MEMORY))
                _cuda = CudaDevice(driver, device, device.retain_primary_context(), integrated)
            return _cuda
    except BackendUnavailableError:
        raise
    except Exception as e:  # pycuda.driver.Error subclasses: no driver, no device, context creation
        raise unavailable(BACKEND, f"no CUDA GPU ({type(e).__name__}: {e})") from None


def version_tuple(version: str) -> tuple[int, ...]:
    """"10.3.0.30" -> (10, 3, 0, 30); non-numeric tails are dropped."""
    parts = []
    for piece in str(version).split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


@dataclass(frozen=True)
class TensorRTFeatures:
    """What the installed TensorRT offers, found once from the module (no GPU needed).

    Attributes:
        version: ``tensorrt.__version__`` (e.g. "10.3.0.30").
        explicit_batch_flag: networks need ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH``
            (TensorRT 8; the flag is ignored in 10 and gone in 11).
        precision_flags: ``BuilderFlag.FP16``/``INT8`` exist (8.x-10.x). Without them (11) networks
            are strongly typed: the ONNX model's types decide the precision.
        implicit_int8: ``IInt8EntropyCalibrator2`` and ``IBuilderConfig.int8_calibrator`` exist
            (8.5-10.x; deprecated in 10.1, removed in 11).
        memory_pools: ``IBuilderConfig.set_memory_pool_limit`` exists (8.4+); else only
            ``max_workspace_size``.
        strongly_typed_flag: networks are marked strongly typed with
            ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` (10.x; 11 ignores it, every network
            being strongly typed there).
    """

    version: str
    explicit_batch_flag: bool
    precision_flags: bool
    implicit_int8: bool
    memory_pools: bool
    strongly_typed_flag: bool = False

    @property
    def major(self) -> int:
        return (version_tuple(self.version) or (0,))[0]

    @property
    def precision_flags_deprecated(self) -> bool:
        """10.12 deprecated ``BuilderFlag.FP16``/``INT8`` ("superseded by strong typing"); 11 removed them."""
        return version_tuple(self.version)[:2] >= (10, 12)

    @property
    def dla_runs_qdq(self) -> bool:
        """DLA runs Q/DQ (explicit INT8) layers from 10.0; on 8.5/8.6 they fall back to the GPU."""
        return self.major >= 10

    @property
    def short_version(self) -> str:
        """major.minor.patch, as engine file names carry it."""
        return ".".join(str(p) for p in version_tuple(self.version)[:3])

    @classmethod
    def of(cls, trt: Any) -> TensorRTFeatures:
        version = str(trt.__version__)
        major = (version_tuple(version) or (0,))[0]
        creation = trt.NetworkDefinitionCreationFlag
        return cls(
            version=version,
            explicit_batch_flag=major < 10 and hasattr(creation, "EXPLICIT_BATCH"),
            precision_flags=hasattr(trt.BuilderFlag, "FP16") and hasattr(trt.BuilderFlag, "INT8"),
            implicit_int8=hasattr(trt, "IInt8EntropyCalibrator2") and hasattr(trt.IBuilderConfig, "int8_calibrator"),
            memory_pools=hasattr(trt.IBuilderConfig, "set_memory_pool_limit"),
            strongly_typed_flag=major == 10 and hasattr(creation, "STRONGLY_TYPED"),
        )


@dataclass(frozen=True)
class DeviceInfo:
    """The GPU and TensorRT an engine is built on or run with."""

    gpu: str
    compute_capability: str  # "8.7"
    tensorrt: str  # full tensorrt.__version__

    @property
    def sm(self) -> str:
        return "sm" + self.compute_capability.replace(".", "")

    @property
    def tensorrt_short(self) -> str:
        return ".".join(str(p) for p in version_tuple(self.tensorrt)[:3])

    def describe(self) -> str:
        return f"{self.gpu} (compute capability {self.compute_capability}) with TensorRT {self.tensorrt}"


def current_device(trt: Any | None = None) -> DeviceInfo:
    """The GPU engines are built for and run on (device 0) and the TensorRT version."""
    trt = trt if trt is not None else import_tensorrt()
    device = cuda_device().device
    major, minor = device.compute_capability()
    return DeviceInfo(str(device.name()), f"{major}.{minor}", str(trt.__version__))


_logger: tuple[Any, Any] | None = None  # (the tensorrt module, its logger)


def tensorrt_logger(trt: Any) -> Any:
    """The process's one ``tensorrt.ILogger``, forwarding TensorRT's messages to :mod:`logging`.

    TensorRT keeps a single logger: the first one a builder, runtime or parser was given; it warns
    about any other and keeps using the first. So every builder, parser and runtime here gets this one.
    """
    global _logger
    if _logger is None or _logger[0] is not trt:
        _logger = (trt, _make_logger(trt))
    return _logger[1]


def _make_logger(trt: Any) -> Any:
    """TensorRT calls ``log`` from C++ and expects it never to raise, so it swallows its own errors."""
    target = logging.getLogger("tensorrt")
    levels = {
        trt.ILogger.INTERNAL_ERROR: logging.CRITICAL,
        trt.ILogger.ERROR: logging.ERROR,
        trt.ILogger.WARNING: logging.WARNING,
        trt.ILogger.INFO: logging.INFO,
        trt.ILogger.VERBOSE: logging.DEBUG,
    }

    class LoggingBridge(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            try:
                level = levels.get(severity, logging.INFO)
                # TensorRT's INFO is chatty (one line per tactic, layer, memory pool): show it at DEBUG.
                level = logging.DEBUG if level == logging.INFO else level
                if target.isEnabledFor(level):
                    target.log(level, "%s", msg)
            except Exception:  # noqa: BLE001 - must not raise into TensorRT
                pass

    return LoggingBridge()


# -- engines -----------------------------------------------------------------------------------
def rebuild_hint(folder: str | Path | None, entry: EngineEntry | None) -> str:
    where = str(folder) if folder is not None else "EXPORT_DIR"
    if entry is None:
        return f"rebuild the engine on this machine with `dgnet-edge build {where} --precision ...`"
    dla = entry.details.get("dla_core")
    extra = f" --dla {dla}" if dla is not None else ""
    source = entry.details.get("int8_source")
    extra += f" --int8-source {source}" if source else ""
    return f"rebuild it on this machine with `dgnet-edge build {where} --precision {entry.precision} --role {entry.role}{extra}`"


def check_engine_entry(entry: EngineEntry, device: DeviceInfo, folder: str | Path | None = None) -> None:
    """BackendUnavailableError unless ``entry`` was built for this GPU generation and TensorRT version.

    The compute capability and the full TensorRT version must match (TensorRT refuses other
    engines); a different GPU name of the same compute capability only warns.
    """
    problems = []
    if entry.compute_capability != device.compute_capability:
        problems.append(f"compute capability {entry.compute_capability} (this GPU: {device.compute_capability})")
    if version_tuple(entry.tensorrt) != version_tuple(device.tensorrt):
        problems.append(f"TensorRT {entry.tensorrt} (installed: {device.tensorrt})")
    if problems:
        raise unavailable(
            BACKEND,
            f"{entry.file} was built for {entry.gpu} with {' and '.join(problems)}; engines run only on the GPU "
            f"generation and TensorRT version that built them: {rebuild_hint(folder, entry)}",
        )
    if entry.gpu != device.gpu:
        log.warning("%s was built on %s and runs on %s (same compute capability): rebuild it here for best speed",
                    entry.file, entry.gpu, device.gpu)


def find_engine(
    manifest: Manifest,
    role: str,
    precision: str,
    device: DeviceInfo,
    dla_core: int | None = None,
    folder: str | Path | None = None,
) -> EngineEntry:
    """The manifest's engine for ``role``/``precision`` built for ``device`` (and ``dla_core``).

    ExportError when the export has no such engine at all; BackendUnavailableError when it has
    one, but for another GPU or TensorRT version.
    """
    candidates = [e for e in manifest.engines
                  if e.role == role and e.precision == precision and e.details.get("dla_core") == dla_core]
    if not candidates:
        have = ", ".join(e.file for e in manifest.engines) or "none"
        dla = "" if dla_core is None else f" --dla {dla_core}"
        raise ExportError(
            f"the export has no {precision} {role} engine{'' if dla_core is None else f' for DLA core {dla_core}'} "
            f"(it has: {have}); build one on this device with "
            f"`dgnet-edge build {folder or 'EXPORT_DIR'} --precision {precision} --role {role}{dla}`"
        )
    for entry in candidates:
        if entry.compute_capability == device.compute_capability and version_tuple(entry.tensorrt) == version_tuple(device.tensorrt):
            return entry
    check_engine_entry(candidates[0], device, folder)  # raises, naming what differs
    return candidates[0]


def deserialize_engine(
    trt: Any, data: bytes, what: str, dla_core: int | None = None, hint: str | None = None,
    model: ModelEntry | None = None,
) -> _EngineHandle:
    """An ICudaEngine from serialized bytes; BackendUnavailableError when TensorRT refuses them.

    ``model``: the manifest's entry of the ONNX model the engine was built from; the runner checks
    the engine's inputs and outputs against it.
    """
    runtime = trt.Runtime(tensorrt_logger(trt))
    if dla_core is not None:
        runtime.DLA_core = int(dla_core)
    try:
        with cuda_device().current():
            engine = runtime.deserialize_cuda_engine(data)
    except BackendUnavailableError:
        raise
    except Exception as e:  # some releases raise instead of returning None
        engine, reason = None, f"{type(e).__name__}: {e}"
    else:
        reason = "see the TensorRT error logged above"
    if engine is None:
        raise unavailable(
            BACKEND,
            f"cannot deserialize {what} ({reason}); it was probably built for another GPU or TensorRT version: "
            f"{hint or rebuild_hint(None, None)}",
        )
    # The engine does not keep its runtime alive in every release; keep it next to the engine's user.
    return _EngineHandle(engine, runtime, what, model, hint)


@dataclass
class _EngineHandle:
    """An engine together with the runtime that deserialized it (freed together)."""

    engine: Any
    runtime: Any
    what: str = "the engine"
    model: ModelEntry | None = None  # the manifest's entry of the ONNX model it was built from
    hint: str | None = None  # how to rebuild it


class EngineFromPath:
    """Loader: deserialize an engine file, optionally checking its manifest entry first.

    Args:
        path: the engine file.
        entry: its manifest entry; when given, the GPU and TensorRT version are checked before
            deserializing (and DLA engines are loaded on their DLA core).
    """

    def __init__(self, path: str | Path, entry: EngineEntry | None = None):
        self.path = Path(path)
        self.entry = entry

    def __call__(self) -> _EngineHandle:
        trt = import_tensorrt()
        device = current_device(trt)
        folder = self.path.parent.parent if self.entry is not None else None
        if self.entry is not None:
            check_engine_entry(self.entry, device, folder)
        if not self.path.is_file():
            raise ExportError(f"{self.path}: engine file not found")
        dla = self.entry.details.get("dla_core") if self.entry is not None else None
        return deserialize_engine(trt, self.path.read_bytes(), str(self.path), dla, rebuild_hint(folder, self.entry))


class EngineFromExport:
    """Loader: the engine of an export folder for ``role``/``precision`` built for this device.

    The manifest entry is matched against the running GPU and TensorRT version before the file
    is read; the file's sha256 is checked against the manifest.
    """

    def __init__(self, folder: str | Path, role: str = "embedder", precision: str = "fp16", dla_core: int | None = None):
        self.folder = Path(folder)
        self.role = role
        self.precision = precision
        self.dla_core = dla_core

    def __call__(self) -> _EngineHandle:
        trt = import_tensorrt()
        device = current_device(trt)
        manifest = load_manifest(self.folder)
        entry = find_engine(manifest, self.role, self.precision, device, self.dla_core, self.folder)
        check_engine_entry(entry, device, self.folder)
        path = verified_path(self.folder, entry)
        model = next((m for m in manifest.models if m.key == entry.source), None)
        return deserialize_engine(trt, path.read_bytes(), str(path), entry.details.get("dla_core"),
                                  rebuild_hint(self.folder, entry), model)


# -- the runner --------------------------------------------------------------------------------
@dataclass
class _IOTensor:
    name: str
    index: int  # binding index (binding API) or I/O tensor index
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]  # engine shape, -1 for dynamic dimensions
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None  # inputs: min/opt/max
    host: np.ndarray | None = None  # page-locked (mapped on an integrated GPU), flat, sized for the profile maximum
    device: Any = None  # pycuda DeviceAllocation of the same size; None when the host memory is mapped

    def spec(self) -> TensorSpec:
        dims = tuple(("batch" if i == 0 else f"dim{i}") if d < 0 else int(d) for i, d in enumerate(self.shape))
        return TensorSpec(self.name, dims, self.dtype.name)


def _dims(dims: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in dims)


class _BindingAPI:
    """Binding indices and ``execute_async_v2``: engines whose context lacks the name API."""

    name = "bindings"

    def __init__(self, trt: Any, engine: Any, context: Any):
        self.engine, self.context = engine, context
        self.tensors = []
        for i in range(engine.num_bindings):
            is_input = bool(engine.binding_is_input(i))
            t = _IOTensor(engine.get_binding_name(i), i, is_input, np.dtype(trt.nptype(engine.get_binding_dtype(i))),
                          _dims(engine.get_binding_shape(i)))
            if is_input:
                t.profile = tuple(_dims(s) for s in engine.get_profile_shape(0, i))
            self.tensors.append(t)
        self.bindings = [0] * len(self.tensors)

    def set_input_shape(self, t: _IOTensor, shape: tuple[int, ...]) -> bool:
        return bool(self.context.set_binding_shape(t.index, shape))

    def output_shape(self, t: _IOTensor) -> tuple[int, ...]:
        return _dims(self.context.get_binding_shape(t.index))

    def bind(self, t: _IOTensor, pointer: int) -> None:
        self.bindings[t.index] = pointer

    def execute(self, stream: Any) -> bool:
        return bool(self.context.execute_async_v2(bindings=self.bindings, stream_handle=stream.handle))


class _TensorAPI:
    """Tensor names and ``execute_async_v3`` (TensorRT 8.5 and later)."""

    name = "tensors"

    def __init__(self, trt: Any, engine: Any, context: Any):
        self.context = context
        self.tensors = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            t = _IOTensor(name, i, is_input, np.dtype(trt.nptype(engine.get_tensor_dtype(name))),
                          _dims(engine.get_tensor_shape(name)))
            if is_input:
                t.profile = tuple(_dims(s) for s in engine.get_tensor_profile_shape(name, 0))
            self.tensors.append(t)

    def set_input_shape(self, t: _IOTensor, shape: tuple[int, ...]) -> bool:
        return bool(self.context.set_input_shape(t.name, shape))

    def output_shape(self, t: _IOTensor) -> tuple[int, ...]:
        return _dims(self.context.get_tensor_shape(t.name))

    def bind(self, t: _IOTensor, pointer: int) -> None:
        self.context.set_tensor_address(t.name, pointer)

    def execute(self, stream: Any) -> bool:
        return bool(self.context.execute_async_v3(stream.handle))


def choose_api(engine: Any, context: Any, api: str = "auto") -> type[_BindingAPI] | type[_TensorAPI]:
    """``auto``: tensor names wherever the engine and context have them (TensorRT 8.5+), else bindings."""
    if api not in ("auto", "bindings", "tensors"):
        raise ValueError(f"api must be auto, bindings or tensors, got {api!r}")
    names = hasattr(engine, "num_io_tensors") and hasattr(context, "execute_async_v3")
    return _TensorAPI if api == "tensors" or (api == "auto" and names) else _BindingAPI


def check_io(tensors: list[_IOTensor], model: ModelEntry, what: str, hint: str | None) -> None:
    """ExportError unless the engine's inputs and outputs have the names and dtypes of ``model``'s."""
    expected = {s.name: (True, np.dtype(s.dtype)) for s in model.inputs}
    expected.update({s.name: (False, np.dtype(s.dtype)) for s in model.outputs})
    problems = []
    for t in tensors:
        kind = "input" if t.is_input else "output"
        if t.name not in expected:
            problems.append(f"the engine has {kind} {t.name!r}, which the model does not")
            continue
        is_input, dtype = expected.pop(t.name)
        if is_input != t.is_input:
            problems.append(f"{t.name!r} is an {kind} of the engine but not of the model")
        elif dtype != t.dtype:
            problems.append(f"{kind} {t.name!r} is {t.dtype.name} in the engine, {dtype.name} in the manifest")
    problems += [f"the engine has no {'input' if is_input else 'output'} {name!r}"
                 for name, (is_input, _) in expected.items()]
    if problems:
        raise ExportError(f"{what} does not match the manifest's {model.key} model ({model.file}): "
                          f"{'; '.join(problems)}; {hint or rebuild_hint(None, None)}")


class TensorRTRunner(Runner):
    """Runs a TensorRT engine: page-locked host buffers, device buffers, one CUDA stream.

    Buffers are allocated once, at activation, for the largest shapes of the engine's
    optimisation profile. Each :meth:`infer` copies the inputs host-to-device asynchronously,
    executes and copies the outputs back on the same stream, then synchronizes. On an integrated
    GPU (a Jetson) the host buffers are mapped into the GPU's address space and bound directly:
    no device buffers, no copies. The batch can be any size within the profile (``min``..``max``,
    e.g. 1..32; DLA engines have one fixed batch); a batch outside it is refused with a
    ValueError — the caller splits (or pads) it into profile-sized chunks.

    Every CUDA call runs with the primary context pushed, so the runner can be used from any
    thread; concurrent :meth:`infer` calls take turns (the buffers are shared).

    Args:
        engine: an ICudaEngine, or a loader returning one (:class:`EngineFromExport`,
            :class:`EngineFromPath`), called at activation.
        name: the runner's name in comparisons and reports.
        api: ``auto`` (tensor names; bindings only for an engine without them), ``bindings`` or
            ``tensors``.
        zero_copy: bind mapped host memory instead of device buffers (default: on an integrated GPU).
    """

    backend = "tensorrt"

    def __init__(self, engine: Any | Callable[[], Any], name: str | None = None, api: str = "auto",
                 zero_copy: bool | None = None):
        super().__init__(name or "tensorrt")
        self._source = engine
        self.api = api
        self.zero_copy = zero_copy
        self._handle: Any = None
        self.engine: Any = None
        self.context: Any = None
        self.io: _BindingAPI | _TensorAPI | None = None
        self.stream: Any = None
        self._cuda: CudaDevice | None = None
        self._lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------
    def activate_impl(self) -> None:
        trt = import_tensorrt()
        self._cuda = cuda_device()
        with self._cuda.current() as driver:
            loaded = invoke_if_callable(self._source)
            self._handle = loaded
            self.engine = loaded.engine if isinstance(loaded, _EngineHandle) else loaded
            self.context = self.engine.create_execution_context()
            if self.context is None:
                self.deactivate_impl()
                raise unavailable(BACKEND, "could not create an execution context (out of GPU memory?)")
            try:
                self.io = choose_api(self.engine, self.context, self.api)(trt, self.engine, self.context)
                if isinstance(loaded, _EngineHandle) and loaded.model is not None:
                    check_io(self.io.tensors, loaded.model, loaded.what, loaded.hint)
                zero_copy = self._cuda.integrated if self.zero_copy is None else self.zero_copy
                self._allocate(driver, zero_copy)
            except BaseException:
                self.deactivate_impl()
                raise
        log.debug("%s: %s API, %s, inputs %s", self.name, self.io.name,
                  "mapped host memory" if zero_copy else "device buffers", [t.spec() for t in self.inputs])

    def _allocate(self, driver: Any, zero_copy: bool) -> None:
        io = self.io
        for t in self.inputs:
            if not io.set_input_shape(t, t.profile[2]):
                raise unavailable(BACKEND, f"the engine refuses its own maximum shape {t.profile[2]} for {t.name!r}")
        for t in io.tensors:
            shape = t.profile[2] if t.is_input else io.output_shape(t)
            if any(d < 0 for d in shape):
                raise unavailable(BACKEND, f"cannot size the buffer of {t.name!r}: shape {shape} is not fixed by the profile")
            count = max(int(np.prod(shape)), 1)
            if zero_copy:
                t.host = driver.pagelocked_empty(count, t.dtype, mem_flags=driver.host_alloc_flags.DEVICEMAP)
                io.bind(t, int(t.host.base.get_device_pointer()))
            else:
                t.host = driver.pagelocked_empty(count, t.dtype)
                t.device = driver.mem_alloc(count * t.dtype.itemsize)
                io.bind(t, int(t.device))
        self.stream = driver.Stream()

    def deactivate_impl(self) -> None:
        with self._cuda.current():
            for t in self.io.tensors if self.io is not None else ():
                if t.device is not None:
                    t.device.free()
                if t.host is not None:
                    t.host.base.free()
                t.device = t.host = None
            self.io = self.stream = None
            self.context = None  # the context goes before its engine
            self.engine = None
            self._handle = None

    # -- metadata ---------------------------------------------------------------------------
    @property
    def inputs(self) -> list[_IOTensor]:
        return [t for t in self.io.tensors if t.is_input]

    @property
    def outputs(self) -> list[_IOTensor]:
        return [t for t in self.io.tensors if not t.is_input]

    def input_metadata_impl(self) -> list[TensorSpec]:
        return [t.spec() for t in self.inputs]

    def output_metadata_impl(self) -> list[TensorSpec]:
        return [t.spec() for t in self.outputs]

    @property
    def profile(self) -> dict[str, tuple[tuple[int, ...], ...]]:
        """Per input: (min, opt, max) shapes of the engine's optimisation profile."""
        self._require_active()
        return {t.name: t.profile for t in self.inputs}

    # -- inference --------------------------------------------------------------------------
    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        io = self.io
        for t in self.inputs:
            array = feed[t.name]
            low, high = t.profile[0], t.profile[2]
            if any(not lo <= d <= hi for d, lo, hi in zip(array.shape, low, high)):
                advice = (f"split the batch into chunks of at most {high[0]}" if low[0] < high[0]
                          else f"the engine takes batches of exactly {high[0]}: pad or split")
                raise ValueError(
                    f"{self.name}: input {t.name!r} of shape {array.shape} is outside the engine's profile "
                    f"{low}..{high}; {advice}"
                )
        with self._lock, self._cuda.current() as driver:
            stream = self.stream
            for t in self.inputs:
                array = feed[t.name]
                if not io.set_input_shape(t, tuple(array.shape)):
                    raise ValueError(f"{self.name}: TensorRT refused shape {array.shape} for {t.name!r}")
                host = t.host[: array.size].reshape(array.shape)
                np.copyto(host, array, casting="no")
                if t.device is not None:
                    driver.memcpy_htod_async(t.device, host, stream)
            if not io.execute(stream):
                raise RuntimeError(f"{self.name}: TensorRT execution failed (see the TensorRT log)")
            results = {}
            for t in self.outputs:
                shape = io.output_shape(t)
                host = t.host[: int(np.prod(shape))].reshape(shape)
                if t.device is not None:
                    driver.memcpy_dtoh_async(host, t.device, stream)
                results[t.name] = host
            stream.synchronize()
            # The host buffers are reused by the next call: hand out copies.
            return {name: array.copy() for name, array in results.items()}
