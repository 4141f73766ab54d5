"""TensorRT engine building, the INT8 calibrator and the TensorRT runner, per TensorRT version.

No GPU is needed: a fake ``tensorrt`` module is built for each of 8.5, 8.6, 10.3, 10.13 and 11 from
the recorded API surface (``tests/data/trt_python_api.json``). Its classes have exactly the
recorded members — anything else raises AttributeError, members the fake does not model raise
when used — its builder, parser, config, engine and context record the calls made, and members
the bindings wrap in a deprecation emit DeprecationWarning when called. A fake ``pycuda`` keeps
"device memory" in host bytearrays, so the runner's copies and the engine's computation are
checked end to end; it keeps a CUDA context stack per thread, and its memory calls (and the fake
engine's execution) fail in a thread where no context is current, as pycuda's do. Its
``pycuda.autoinit`` makes a context current in the thread that first reads it, as importing the
real one does. An integrated GPU (``FakeGPU(integrated=True)``, a Jetson) maps page-locked host
memory into the device's address space. Both are installed by monkeypatching ``sys.modules``.

Tests marked ``tensorrt``/``gpu`` build and run real engines; they skip here with the reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import types
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from dgnet_edge.calib.tensorrt_calibrator import (
    cache_for_tensorrt,
    calibration_state,
    check_cache_file,
    header_version,
    make_entropy_calibrator,
    restamp,
)
from dgnet_edge.calib.trt_cache import cache_text, parse_cache
from dgnet_edge.errors import BackendUnavailableError, ExportError, UsageError
from dgnet_edge.export.tensorrt_build import BuildOptions, build_engine, build_engines, plan_build
from dgnet_edge.export.trt_ops import operator_table
from dgnet_edge.manifest import BatchProfile, InputFormat, Manifest, ModelEntry, load_manifest, sha256_of
from dgnet_edge.runtime.base import TensorSpec
from dgnet_edge.runtime.tensorrt import (
    EngineFromExport,
    EngineFromPath,
    TensorRTFeatures,
    TensorRTRunner,
    cuda_device,
    import_tensorrt,
)

DATA = Path(__file__).parent / "data"
API = json.loads((DATA / "trt_python_api.json").read_text())
# tensorrt.__version__ of a release of each recorded API version.
FULL_VERSION = {"8.5": "8.5.2.2", "8.6": "8.6.1.6", "10.3": "10.3.0.30", "10.13": "10.13.3.9", "11": "11.0.0.11"}
LABELS = list(FULL_VERSION)
IMPLICIT_INT8 = [label for label in LABELS if label != "11"]

HEIGHT, WIDTH = 8, 4
PROFILE = BatchProfile(1, 4, 16)
CALIB_BATCH = 4


# ==============================================================================================
# The fake tensorrt
# ==============================================================================================
ENUMS = {
    "BuilderFlag", "NetworkDefinitionCreationFlag", "MemoryPoolType", "TensorIOMode", "DataType", "DeviceType",
    "ErrorCode", "ILogger.Severity", "CalibrationAlgoType", "OnnxParserFlag", "ProfilingVerbosity",
    "QuantizationFlag", "TacticSource", "PreviewFeature", "EngineCapability", "TensorLocation", "TensorFormat",
}
DTYPE_ALIASES = {"float32": "FLOAT", "float16": "HALF", "int8": "INT8", "int32": "INT32", "bool": "BOOL",
                 "uint8": "UINT8", "fp8": "FP8", "bfloat16": "BF16", "int64": "INT64", "int4": "INT4",
                 "fp4": "FP4", "e8m0": "E8M0"}
NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "UINT8": np.uint8,
         "BOOL": np.bool_, "INT64": np.int64}
ONNX_TO_TRT = {TensorProto.FLOAT: "FLOAT", TensorProto.FLOAT16: "HALF", TensorProto.UINT8: "UINT8",
               TensorProto.INT8: "INT8", TensorProto.INT32: "INT32"}


class Unmodelled:
    """A recorded member the fake does not model: present (hasattr on the class), fails when used."""

    def __init__(self, owner: str, name: str):
        self.owner, self.name = owner, name

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        if obj is None:
            return self
        raise NotImplementedError(f"fake tensorrt does not model {self.owner}.{self.name}; the code under test used it")

    def __set__(self, obj: Any, value: Any) -> None:
        raise NotImplementedError(f"fake tensorrt does not model {self.owner}.{self.name}; the code under test set it")


class FakeObject:
    """Base of the fake classes: public attributes are only the recorded members."""

    _f_fake = True
    _f_cls = "object"
    _f_allowed: frozenset[str] = frozenset()
    _f_env: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_f_fake" not in cls.__dict__:  # a user subclass (calibrator, logger): its own names are allowed
            cls._f_allowed = frozenset(cls._f_allowed | {k for k in cls.__dict__ if not k.startswith("__")})
            cls._f_user = True

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("_"):
            return object.__getattribute__(self, name)
        cls = type(self)
        if name not in cls._f_allowed and name not in object.__getattribute__(self, "__dict__"):
            raise AttributeError(f"tensorrt {cls._f_env.label}: {cls._f_cls!r} object has no attribute {name!r}")
        return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        cls = type(self)
        if name.startswith("_") or getattr(cls, "_f_user", False):
            object.__setattr__(self, name, value)
            return
        if name not in cls._f_allowed or not isinstance(cls.__dict__.get(name), (property, Unmodelled)):
            raise AttributeError(f"tensorrt {cls._f_env.label}: cannot set {cls._f_cls}.{name}")
        object.__setattr__(self, name, value)


class EnumValue:
    __slots__ = ("_enum", "name", "value")

    def __init__(self, enum: str, name: str, value: int):
        self._enum, self.name, self.value = enum, name, value

    def __int__(self) -> int:
        return self.value

    __index__ = __int__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EnumValue) and (other._enum, other.value) == (self._enum, self.value)

    def __hash__(self) -> int:
        return hash((self._enum, self.value))

    def __repr__(self) -> str:
        return f"{self._enum}.{self.name}"


class DataTypeValue(EnumValue):
    __slots__ = ()

    @property
    def itemsize(self) -> int:
        return np.dtype(NUMPY[self.name]).itemsize


def make_enum(env: FakeEnv, qualname: str, members: list[str]) -> type:
    values = [m for m in members if not m.startswith("_") and m.upper() == m]
    value_cls = DataTypeValue if qualname == "DataType" else EnumValue
    ns: dict[str, Any] = {"__members__": {}}
    for i, name in enumerate(sorted(values)):
        ns[name] = ns["__members__"][name] = value_cls(qualname.split(".")[-1], name, i)
    return type(qualname.split(".")[-1], (), ns)


def recording(env: FakeEnv, cls_name: str, member: str, fn: Any) -> Any:
    deprecated = f"{cls_name}.{member}" in env.warn_on_call

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        env.calls.append((cls_name, member, args, kwargs))
        if deprecated:
            warnings.warn(f"{cls_name}.{member} is deprecated", DeprecationWarning, stacklevel=2)
        return fn(self, *args, **kwargs)

    call.__name__ = member
    return call


def recording_property(env: FakeEnv, cls_name: str, member: str, prop: property) -> property:
    deprecated = f"{cls_name}.{member}" in env.warn_on_call

    def get(self: Any) -> Any:
        env.calls.append((cls_name, member, ("get",), {}))
        if deprecated:
            warnings.warn(f"{cls_name}.{member} is deprecated", DeprecationWarning, stacklevel=2)
        return prop.fget(self)

    def put(self: Any, value: Any) -> None:
        env.calls.append((cls_name, member, ("set", value), {}))
        if deprecated:
            warnings.warn(f"{cls_name}.{member} is deprecated", DeprecationWarning, stacklevel=2)
        if prop.fset is None:
            raise AttributeError(f"{cls_name}.{member} is read-only")
        prop.fset(self, value)

    return property(get, put)


# -- behaviour of the modelled members (the fake's self is the FakeObject instance) -------------
class MILogger:
    def __init__(self, *args: Any) -> None:
        self._initialised = True  # a Python subclass that skips this crashes the real bindings

    def log(self, severity: Any, msg: str) -> None:
        pass


class MLogger:
    def __init__(self, min_severity: Any = None) -> None:
        self._min = min_severity


class MDims:
    def __len__(self) -> int:
        return len(self._d)

    def __getitem__(self, i: int) -> int:
        return self._d[i]

    def __eq__(self, other: object) -> bool:
        return tuple(self._d) == tuple(other)

    def __repr__(self) -> str:
        return f"Dims{tuple(self._d)}"

    __str__ = __repr__


class MTensor:
    name = property(lambda self: self._name)
    shape = property(lambda self: self._env.dims(self._shape))


class MParserError:
    def code(self) -> Any:
        return self._env.trt.ErrorCode.UNSUPPORTED_NODE

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._node_name

    def node_operator(self) -> str:
        return self._op

    def file(self) -> str:
        return "ModelImporter.cpp"

    def line(self) -> int:
        return 1

    def func(self) -> str:
        return "parseGraph"


class MNetwork:
    num_inputs = property(lambda self: len(self._inputs))
    num_outputs = property(lambda self: len(self._outputs))

    def get_input(self, i: int) -> Any:
        return self._inputs[i]

    def get_output(self, i: int) -> Any:
        return self._outputs[i]


class MParser:
    def __init__(self, network: Any, logger: Any) -> None:
        self._env.take_logger(logger)
        self._network = network
        self._errors: list[Any] = []

    num_errors = property(lambda self: len(self._errors))

    def get_error(self, i: int) -> Any:
        return self._errors[i]

    def clear_errors(self) -> None:
        self._errors = []

    def parse_from_file(self, path: str) -> bool:
        env = self._env
        net = self._network
        env.parsed.append(Path(path).name)
        if env.major < 10 and "EXPLICIT_BATCH" not in net._flags:
            self._errors.append(env.new("ParserError", _desc="network must have an explicit batch dimension",
                                        _node=-1, _node_name="", _op=""))
            return False
        model = onnx.load(path)
        supported = env.onnx_ops()
        for index, node in enumerate(model.graph.node):
            if node.op_type not in supported:
                self._errors.append(env.new("ParserError", _desc=f"No importer registered for op: {node.op_type}",
                                            _node=index, _node_name=node.name, _op=node.op_type))
        initializers = {t.name for t in model.graph.initializer}

        def tensors(values: Any) -> list[Any]:
            out = []
            for v in values:
                if v.name in initializers:
                    continue
                dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim)
                dtype = getattr(env.trt.DataType, ONNX_TO_TRT[v.type.tensor_type.elem_type])
                out.append(env.new("ITensor", _name=v.name, _shape=dims, _dtype=dtype))
            return out

        net._inputs, net._outputs = tensors(model.graph.input), tensors(model.graph.output)
        net._ops = {n.op_type for n in model.graph.node}
        return not self._errors


class MProfile:
    def set_shape(self, name: str, min: Any, opt: Any, max: Any) -> None:  # noqa: A002 - TensorRT's names
        self._shapes[name] = tuple(tuple(int(d) for d in s) for s in (min, opt, max))

    def _valid(self) -> bool:
        return bool(self._shapes) and all(
            len(low) == len(opt) == len(high) and all(a <= b <= c for a, b, c in zip(low, opt, high))
            for low, opt, high in self._shapes.values())

    def get_shape(self, name: str) -> list[Any]:
        return [self._env.dims(s) for s in self._shapes[name]]


class MTimingCache:
    def serialize(self) -> Any:
        data = json.dumps({"label": self._env.label, "cc": self._env.gpu.cc, "entries": self._entries}).encode()
        return self._env.host_memory(b"FAKETIMING" + data)

    def combine(self, other: Any, ignore_mismatch: bool) -> bool:
        self._entries += other._entries
        return True

    def reset(self) -> bool:
        self._entries = 0
        return True


class MHostMemory:
    nbytes = property(lambda self: len(self))


class MConfig:
    def set_flag(self, flag: Any) -> None:
        self._flags.add(flag.name)

    def get_flag(self, flag: Any) -> bool:
        return flag.name in self._flags

    def clear_flag(self, flag: Any) -> None:
        self._flags.discard(flag.name)

    def set_memory_pool_limit(self, pool: Any, size: int) -> None:
        self._pools[pool.name] = int(size)

    def add_optimization_profile(self, profile: Any) -> int:
        if not profile._valid():
            return -1  # TensorRT: "the index ... if the input is valid, or -1 if the input is not valid"
        self._profiles.append(profile)
        return len(self._profiles) - 1

    def set_calibration_profile(self, profile: Any) -> bool:
        if not profile._valid():
            return False
        self._calib_profile = profile
        return True

    def _get_calibrator(self) -> Any:
        return self._calibrator

    def _set_calibrator(self, value: Any) -> None:
        self._calibrator = value

    int8_calibrator = property(_get_calibrator, _set_calibrator)

    def _set_workspace(self, value: int) -> None:
        self._max_workspace = value

    max_workspace_size = property(lambda self: self._max_workspace, _set_workspace)

    def _set_device_type(self, value: Any) -> None:
        self._device_type = value

    default_device_type = property(lambda self: self._device_type, _set_device_type)

    def _set_dla(self, value: int) -> None:
        self._dla_core = value

    DLA_core = property(lambda self: self._dla_core, _set_dla)

    def create_timing_cache(self, data: bytes) -> Any:
        data = bytes(data)
        cache = self._env.new("ITimingCache", _entries=0, _mismatch=False)
        if data:
            assert data.startswith(b"FAKETIMING"), "not a timing cache"
            saved = json.loads(data[len(b"FAKETIMING"):])
            cache._entries = saved["entries"]
            cache._mismatch = (saved["label"], saved["cc"]) != (self._env.label, self._env.gpu.cc)
        return cache

    def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
        if cache._mismatch and not ignore_mismatch:
            return False
        self._timing_cache = cache
        return True

    def get_timing_cache(self) -> Any:
        return self._timing_cache


def _check_initialised(obj: Any) -> None:
    if getattr(type(obj), "_f_user", False):
        assert getattr(obj, "_initialised", False), f"{type(obj).__name__} did not call its TensorRT base __init__"


class MBuilder:
    def __init__(self, logger: Any) -> None:
        _check_initialised(logger)
        self._env.take_logger(logger)
        self._logger = logger

    num_DLA_cores = property(lambda self: self._env.gpu.dla_cores)

    def create_network(self, flags: int = 0) -> Any:
        enum = self._env.trt.NetworkDefinitionCreationFlag
        names = {name for name, value in enum.__members__.items() if int(flags) & (1 << int(value))}
        return self._env.new("INetworkDefinition", _flags=names, _inputs=[], _outputs=[], _ops=set())

    def create_builder_config(self) -> Any:
        return self._env.new("IBuilderConfig", _flags=set(), _pools={}, _profiles=[], _calib_profile=None,
                             _calibrator=None, _max_workspace=0, _device_type=None, _dla_core=0, _timing_cache=None)

    def create_optimization_profile(self) -> Any:
        return self._env.new("IOptimizationProfile", _shapes={})

    def build_serialized_network(self, network: Any, config: Any) -> Any:
        self._env.require_context("Builder.build_serialized_network")
        return self._env.build(network, config)


class MRuntime:
    def __init__(self, logger: Any) -> None:
        _check_initialised(logger)
        self._env.take_logger(logger)
        self._logger = logger
        self._dla = 0

    def _set_dla(self, value: int) -> None:
        self._dla = value

    DLA_core = property(lambda self: self._dla, _set_dla)

    def deserialize_cuda_engine(self, data: Any) -> Any:
        env = self._env
        env.require_context("Runtime.deserialize_cuda_engine")
        data = bytes(data)
        if not data.startswith(b"FAKEPLAN"):
            return None
        plan = json.loads(data[len(b"FAKEPLAN"):])
        if plan["version"] != env.version or plan["cc"] != env.gpu.cc:
            return None  # TensorRT logs an error and returns None
        return env.new("ICudaEngine", _plan=plan, _io=plan["inputs"] + plan["outputs"], _n_in=len(plan["inputs"]))


class MEngine:
    # TensorRT 8 binding API
    num_bindings = property(lambda self: len(self._io))

    def binding_is_input(self, i: int) -> bool:
        return i < self._n_in

    def get_binding_name(self, i: int) -> str:
        return self._io[i]["name"]

    def get_binding_shape(self, i: int) -> Any:
        return self._env.dims(self._io[i]["shape"])

    def get_binding_dtype(self, i: int) -> Any:
        return getattr(self._env.trt.DataType, self._io[i]["dtype"])

    def get_profile_shape(self, profile_index: int, binding: Any) -> list[Any]:
        name = binding if isinstance(binding, str) else self._io[binding]["name"]
        return [self._env.dims(s) for s in self._plan["profile"][name]]

    # TensorRT 10 tensor API (8.5+)
    num_io_tensors = property(lambda self: len(self._io))
    num_optimization_profiles = property(lambda self: 1)

    def _named(self, name: str) -> dict[str, Any]:
        return next(t for t in self._io if t["name"] == name)

    def get_tensor_name(self, i: int) -> str:
        return self._io[i]["name"]

    def get_tensor_mode(self, name: str) -> Any:
        mode = self._env.trt.TensorIOMode
        return mode.INPUT if self._io.index(self._named(name)) < self._n_in else mode.OUTPUT

    def get_tensor_shape(self, name: str) -> Any:
        return self._env.dims(self._named(name)["shape"])

    def get_tensor_dtype(self, name: str) -> Any:
        return getattr(self._env.trt.DataType, self._named(name)["dtype"])

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[Any]:
        return [self._env.dims(s) for s in self._plan["profile"][name]]

    def create_execution_context(self) -> Any:
        self._env.require_context("ICudaEngine.create_execution_context")
        return self._env.new("IExecutionContext", _engine=self, _shapes={}, _addresses={})


class MContext:
    def _input_shape(self, name: str, shape: Any) -> bool:
        low, _, high = self._engine._plan["profile"][name]
        shape = tuple(int(d) for d in shape)
        if len(shape) != len(low) or any(not lo <= d <= hi for d, lo, hi in zip(shape, low, high)):
            return False
        self._shapes[name] = shape
        return True

    def _shape_of(self, t: dict[str, Any]) -> tuple[int, ...]:
        if t["name"] in self._shapes:
            return self._shapes[t["name"]]
        batch = next(iter(self._shapes.values()), (-1,))[0]
        return tuple(batch if d < 0 else d for d in t["shape"])

    def _run(self, addresses: dict[str, int]) -> bool:
        self._env.require_context("IExecutionContext.execute")
        engine, mem = self._engine, self._env.memory
        io, n_in = engine._io, engine._n_in
        if set(self._shapes) != {t["name"] for t in io[:n_in]}:
            return False  # TensorRT: not all input shapes specified
        inputs = [mem.read(addresses[t["name"]], self._shapes[t["name"]], NUMPY[t["dtype"]]) for t in io[:n_in]]
        for t in io[n_in:]:
            shape = self._shape_of(t)
            mem.write(addresses[t["name"]], fake_engine_output(inputs, shape, NUMPY[t["dtype"]]))
        self._env.executions += 1
        return True

    # TensorRT 8
    def set_binding_shape(self, i: int, shape: Any) -> bool:
        return self._input_shape(self._engine._io[i]["name"], shape)

    def get_binding_shape(self, i: int) -> Any:
        return self._env.dims(self._shape_of(self._engine._io[i]))

    def execute_async_v2(self, bindings: list[int], stream_handle: int) -> bool:
        assert isinstance(stream_handle, int)
        return self._run({t["name"]: int(p) for t, p in zip(self._engine._io, bindings)})

    # TensorRT 10 (8.5+)
    def set_input_shape(self, name: str, shape: Any) -> bool:
        return self._input_shape(name, shape)

    def get_tensor_shape(self, name: str) -> Any:
        return self._env.dims(self._shape_of(self._engine._named(name)))

    def set_tensor_address(self, name: str, address: int) -> bool:
        self._addresses[name] = int(address)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        assert isinstance(stream_handle, int)
        if set(self._addresses) != {t["name"] for t in self._engine._io}:
            return False
        return self._run(self._addresses)


class MCalibrator:
    def __init__(self) -> None:
        self._initialised = True  # a Python subclass that skips this crashes the real bindings


MODELS = {
    "ILogger": MILogger, "Logger": MLogger, "Dims": MDims, "ITensor": MTensor, "ParserError": MParserError,
    "INetworkDefinition": MNetwork, "OnnxParser": MParser, "IOptimizationProfile": MProfile,
    "ITimingCache": MTimingCache, "IHostMemory": MHostMemory, "IBuilderConfig": MConfig, "Builder": MBuilder,
    "Runtime": MRuntime, "ICudaEngine": MEngine, "IExecutionContext": MContext,
    "IInt8EntropyCalibrator2": MCalibrator, "IInt8Calibrator": MCalibrator,
}


def fake_engine_output(inputs: list[np.ndarray], shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """What every fake engine computes: per sample, the sum of the inputs' means plus the element index."""
    batch = shape[0]
    base = sum(x.reshape(batch, -1).astype(np.float64).mean(axis=1) for x in inputs)
    per_sample = int(np.prod(shape[1:]))
    return (base[:, None] + np.arange(per_sample)[None, :]).reshape(shape).astype(dtype)


@dataclass
class FakeGPU:
    name: str = "Orin"
    cc: str = "8.7"
    dla_cores: int = 2
    present: bool = True
    integrated: bool = False  # a Jetson: GPU and CPU share memory


class FakeMemory:
    """The fake GPU's memory: allocations are bytearrays at made-up addresses."""

    def __init__(self) -> None:
        self.blocks: dict[int, bytearray] = {}
        self.next = 0x10000
        self.freed: list[int] = []

    def alloc(self, nbytes: int, block: bytearray | None = None) -> int:
        """A new allocation (``block``: host memory mapped into the device's address space)."""
        address = self.next
        self.blocks[address] = bytearray(int(nbytes)) if block is None else block
        self.next += int(nbytes) + 256
        return address

    def free(self, address: int) -> None:
        del self.blocks[address]
        self.freed.append(address)

    def _block(self, address: int, nbytes: int) -> tuple[bytearray, int]:
        for start, block in self.blocks.items():
            if start <= address and address + nbytes <= start + len(block):
                return block, address - start
        raise AssertionError(f"access of {nbytes} bytes at {address:#x} outside any live allocation")

    def write(self, address: int, array: np.ndarray) -> None:
        assert array.flags.c_contiguous
        data = array.tobytes()
        block, offset = self._block(address, len(data))
        block[offset:offset + len(data)] = data

    def read(self, address: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        block, offset = self._block(address, nbytes)
        return np.frombuffer(bytes(block[offset:offset + nbytes]), dtype=dtype).reshape(shape)


@dataclass
class FakeEnv:
    """One fake TensorRT version plus a fake pycuda, with the calls they recorded."""

    label: str
    gpu: FakeGPU = field(default_factory=FakeGPU)
    calls: list[tuple[str, str, tuple, dict]] = field(default_factory=list)
    parsed: list[str] = field(default_factory=list)
    calib_batches: list[dict[str, np.ndarray]] = field(default_factory=list)
    pagelocked: list[tuple[Any, Any]] = field(default_factory=list)
    cuda_calls: list[tuple[str, Any]] = field(default_factory=list)
    executions: int = 0
    memory: FakeMemory = field(default_factory=FakeMemory)
    cache_writes: int = 0  # write_calibration_cache calls after TensorRT took a cache
    loggers: list[Any] = field(default_factory=list)  # every logger handed to a builder, parser or runtime
    logger_warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.threads = threading.local()  # per thread: its stack of current CUDA contexts
        self.api = API["versions"][self.label]
        self.version = FULL_VERSION[self.label]
        self.major = int(self.label.split(".")[0])
        deprecated = API["deprecated"].get(self.label, {})
        self.warn_on_call = {k for k, why in deprecated.items() if "utils::deprecate" in why}
        self.classes: dict[str, type] = {}
        self.trt = self._module()
        self.cuda_modules = self._pycuda()

    # -- the tensorrt module --------------------------------------------------------------------
    def _module(self) -> types.ModuleType:
        module = types.ModuleType("tensorrt")
        self.trt = module
        for name in self.api["tensorrt"]:
            if name == "__version__":
                module.__version__ = self.version
            elif name in self.api and (name in ENUMS):
                setattr(module, name, make_enum(self, name, self.api[name]))
            elif name in self.api:
                setattr(module, name, self._class(name))
            elif name in DTYPE_ALIASES:
                continue  # after DataType exists
            elif name == "nptype":
                module.nptype = lambda dt: NUMPY[dt.name]
            elif name == "volume":
                module.volume = lambda shape: int(np.prod(tuple(shape)))
            else:
                module.__dict__[name] = _unmodelled_function(name)
        for alias, target in DTYPE_ALIASES.items():
            if alias in self.api["tensorrt"]:
                setattr(module, alias, getattr(module.DataType, target))
        return module

    def _class(self, name: str) -> type:
        members = self.api[name]
        model = MODELS.get(name)
        ns: dict[str, Any] = {"_f_fake": True, "_f_cls": name, "_f_allowed": frozenset(members), "_f_env": self,
                              "_env": self}
        if model is not None and "__init__" in model.__dict__:
            ns["__init__"] = model.__dict__["__init__"]
        for member in members:
            nested = f"{name}.{member}"
            if nested in self.api:
                ns[member] = make_enum(self, nested, self.api[nested])
            elif member in ("__enter__",):
                ns[member] = lambda self: self
            elif member in ("__exit__",):
                ns[member] = lambda self, *exc: None
            elif member == "__del__":
                ns[member] = lambda self: None
            elif model is not None and member in model.__dict__:
                attr = model.__dict__[member]
                ns[member] = (recording_property(self, name, member, attr) if isinstance(attr, property)
                              else recording(self, name, member, attr))
            elif member.startswith("__"):
                continue  # python protocol members the fake leaves to object
            else:
                ns[member] = Unmodelled(name, member)
        # ILogger exports its Severity values at class level.
        for member in members:
            severity = f"{name}.Severity"
            if severity in self.api and member in self.api[severity] and member != "Severity":
                ns[member] = getattr(ns["Severity"], member)
        if model is not None:  # private helpers of the model
            for key, value in model.__dict__.items():
                if key.startswith("_") and not key.startswith("__") and key not in ns:
                    ns[key] = value
        bases = (FakeObject, bytes) if name == "IHostMemory" else (FakeObject,)
        cls = type(name, bases, ns)
        self.classes[name] = cls
        return cls

    def new(self, name: str, **state: Any) -> Any:
        cls = getattr(self.trt, name)
        obj = object.__new__(cls)
        for key, value in state.items():
            object.__setattr__(obj, key, value)
        return obj

    def dims(self, shape: Any) -> Any:
        return self.new("Dims", _d=tuple(int(d) for d in shape))

    def host_memory(self, data: bytes) -> Any:
        return self.trt.IHostMemory(data)

    def onnx_ops(self) -> set[str]:
        table = operator_table()["versions"]

        def key(v: str) -> tuple[int, ...]:
            return tuple(int(p) for p in v.split("."))

        usable = [v for v in table if key(v) <= key(self.label)]
        return set(table[max(usable, key=key)]["supported"])

    # -- what build_serialized_network does -----------------------------------------------------
    def build(self, network: Any, config: Any) -> Any:
        profile = config._profiles[0]._shapes if config._profiles else {}
        for t in network._inputs:
            if -1 in t._shape and t._name not in profile:
                return None  # TensorRT: dynamic input without a profile
            if t._name in profile and any(d >= 0 and not lo == d == hi for d, lo, hi
                                          in zip(t._shape, profile[t._name][0], profile[t._name][2])):
                return None  # TensorRT: the profile's dimensions conflict with the network's static ones
        strongly_typed = self.major >= 11 or "STRONGLY_TYPED" in network._flags
        if strongly_typed and {"FP16", "INT8", "BF16", "FP8"} & config._flags:
            return None  # TensorRT: precision flags are not allowed on a strongly typed network
        has_qdq = "QuantizeLinear" in network._ops
        if "INT8" in config._flags and not has_qdq:
            if not self._calibrate(network, config):
                return None
        on_dla = config._device_type is not None and config._device_type.name == "DLA"
        # Layers no INT8 covers run in FP16 only with the FP16 flag (weakly typed) or an fp16 model
        # (strongly typed); FP32 layers cannot run on DLA and go to the GPU (GPU_FALLBACK) or fail.
        fp32_layers = (not strongly_typed and "FP16" not in config._flags) or (strongly_typed and "Cast" not in network._ops)
        qdq_on_gpu = on_dla and has_qdq and self.major < 10  # TensorRT 8.5/8.6: no Q/DQ on DLA
        gpu_layers = on_dla and (fp32_layers or qdq_on_gpu)
        if gpu_layers and "GPU_FALLBACK" not in config._flags:
            return None
        if config._timing_cache is not None:
            config._timing_cache._entries += 1
        plan = {
            "version": self.version, "cc": self.gpu.cc, "gpu": self.gpu.name,
            "flags": sorted(config._flags), "qdq": has_qdq,
            "inputs": [{"name": t._name, "shape": list(t._shape), "dtype": t._dtype.name} for t in network._inputs],
            "outputs": [{"name": t._name, "shape": list(t._shape), "dtype": t._dtype.name} for t in network._outputs],
            "profile": {name: [list(s) for s in shapes] for name, shapes in profile.items()},
            "dla_core": config._dla_core if on_dla else None,
            "fp32_layers": fp32_layers, "gpu_layers": gpu_layers,
        }
        return self.host_memory(b"FAKEPLAN" + json.dumps(plan).encode())

    def _calibrate(self, network: Any, config: Any) -> bool:
        """TensorRT's side of implicit INT8: the calibrator methods it calls, in its order."""
        calibrator = config._calibrator
        if calibrator is None or config._calib_profile is None:
            return False
        _check_initialised(calibrator)
        cache = calibrator.read_calibration_cache()
        wanted = f"TRT-{header_version(self.version)}-EntropyCalibration2\n".encode()
        if cache and bytes(cache).startswith(wanted):
            # TensorRT takes the scales, then hands its own serialization of them to the calibrator
            # (here: the cache's lines plus one per network output it derived).
            extra = "".join(f"{t._name}: 3c800000\n" for t in network._outputs)
            self.cache_writes += 1
            calibrator.write_calibration_cache(memoryview(bytes(cache) + extra.encode()))
            return True  # a cache of another version or algorithm is ignored: TensorRT calibrates
        calibrator.get_batch_size()
        names = [t._name for t in network._inputs]
        shapes = config._calib_profile._shapes
        while True:
            pointers = calibrator.get_batch(names)
            if not pointers:
                break
            assert len(pointers) == len(names)
            self.calib_batches.append({
                t._name: self.memory.read(int(p), shapes[t._name][1], NUMPY[t._dtype.name])
                for t, p in zip(network._inputs, pointers)
            })
        if not self.calib_batches:
            return False
        table = f"TRT-{header_version(self.version)}-EntropyCalibration2\nimages: 3c010a14\n".encode()
        calibrator.write_calibration_cache(memoryview(table))
        return True

    # -- CUDA contexts and loggers ---------------------------------------------------------------
    def context_stack(self) -> list[Any]:
        if not hasattr(self.threads, "stack"):
            self.threads.stack = []
        return self.threads.stack

    def require_context(self, what: str) -> None:
        if not self.context_stack():
            raise self.cuda_modules["pycuda.driver"].LogicError(
                f"{what} failed: invalid device context - no currently active context?")

    def take_logger(self, logger: Any) -> None:
        """TensorRT keeps the first logger it is given and warns about any other."""
        if self.loggers and logger is not self.loggers[0]:
            self.logger_warnings.append("The logger passed into createInferRuntime differs from one already provided")
        self.loggers.append(logger)

    # -- pycuda -------------------------------------------------------------------------------
    def _pycuda(self) -> dict[str, types.ModuleType]:
        env = self
        driver = types.ModuleType("pycuda.driver")

        class Error(Exception):
            pass

        class LogicError(Error):
            pass

        class CudaRuntimeError(Error):
            pass

        class device_attribute:  # noqa: N801 - pycuda's name
            INTEGRATED = "INTEGRATED"
            CAN_MAP_HOST_MEMORY = "CAN_MAP_HOST_MEMORY"

        class host_alloc_flags:  # noqa: N801 - pycuda's name
            PORTABLE, DEVICEMAP, WRITECOMBINED = 1, 2, 4

        class Context:
            def __init__(self, kind: str) -> None:
                self.kind = kind

            def push(self) -> None:
                env.cuda_calls.append(("push", self.kind))
                env.context_stack().append(self)

            @staticmethod
            def pop() -> None:
                stack = env.context_stack()
                if not stack:
                    raise LogicError("cuCtxPopCurrent failed: invalid device context")
                env.cuda_calls.append(("pop", stack.pop().kind))

        primary = Context("primary")

        class Device:
            def __init__(self, index: int) -> None:
                self.index = index

            @staticmethod
            def count() -> int:
                return 1 if env.gpu.present else 0

            def name(self) -> str:
                return env.gpu.name

            def compute_capability(self) -> tuple[int, int]:
                major, minor = env.gpu.cc.split(".")
                return int(major), int(minor)

            def get_attribute(self, attribute: str) -> int:
                return {"INTEGRATED": int(env.gpu.integrated), "CAN_MAP_HOST_MEMORY": 1}[attribute]

            def retain_primary_context(self) -> Context:
                return primary  # not made current: its users push it

        class DeviceAllocation:
            def __init__(self, nbytes: int) -> None:
                self.address = env.memory.alloc(nbytes)
                self.nbytes = nbytes

            def __int__(self) -> int:
                return self.address

            __index__ = __int__

            def free(self) -> None:
                env.require_context("cuMemFree")
                env.memory.free(self.address)

        class PagelockedHostAllocation(bytearray):
            """The ``base`` of a page-locked array; mapped ones live in the device's address space too."""

            address: int | None = None

            def get_device_pointer(self) -> int:
                if self.address is None:
                    raise LogicError("cuMemHostGetDevicePointer failed: invalid value (not allocated with DEVICEMAP)")
                return self.address

            def free(self) -> None:
                env.require_context("cuMemFreeHost")
                if self.address is not None:
                    env.memory.free(self.address)
                    self.address = None

        class Stream:
            def __init__(self) -> None:
                env.require_context("cuStreamCreate")
                self.handle = 0xABC0 + len(env.cuda_calls)

            def synchronize(self) -> None:
                env.require_context("cuStreamSynchronize")
                env.cuda_calls.append(("synchronize", self))

        def init() -> None:
            if not env.gpu.present:
                raise CudaRuntimeError("cuInit failed: no CUDA-capable device is detected")

        def mem_alloc(nbytes: int) -> DeviceAllocation:
            env.require_context("cuMemAlloc")
            env.cuda_calls.append(("mem_alloc", nbytes))
            return DeviceAllocation(nbytes)

        def pagelocked_empty(shape: Any, dtype: Any, order: str = "C", mem_flags: int = 0) -> np.ndarray:
            env.require_context("cuMemHostAlloc")
            env.pagelocked.append((shape, np.dtype(dtype), mem_flags))
            count = int(np.prod(shape))
            block = PagelockedHostAllocation(max(count * np.dtype(dtype).itemsize, 1))
            if mem_flags & host_alloc_flags.DEVICEMAP:
                block.address = env.memory.alloc(len(block), block)
            return np.ndarray(shape, dtype, buffer=block, order=order)

        def memcpy_htod(dest: Any, src: np.ndarray) -> None:
            env.require_context("cuMemcpyHtoD")
            env.cuda_calls.append(("memcpy_htod", None))
            env.memory.write(int(dest), src)

        def memcpy_htod_async(dest: Any, src: np.ndarray, stream: Any = None) -> None:
            env.require_context("cuMemcpyHtoDAsync")
            env.cuda_calls.append(("memcpy_htod_async", stream))
            env.memory.write(int(dest), src)

        def memcpy_dtoh_async(dest: np.ndarray, src: Any, stream: Any = None) -> None:
            env.require_context("cuMemcpyDtoHAsync")
            env.cuda_calls.append(("memcpy_dtoh_async", stream))
            assert dest.flags.c_contiguous and dest.flags.writeable
            dest[...] = env.memory.read(int(src), dest.shape, dest.dtype)

        for name, value in dict(
            Error=Error, LogicError=LogicError, RuntimeError=CudaRuntimeError, Device=Device, Context=Context,
            device_attribute=device_attribute, host_alloc_flags=host_alloc_flags,
            DeviceAllocation=DeviceAllocation, PagelockedHostAllocation=PagelockedHostAllocation, Stream=Stream,
            init=init, mem_alloc=mem_alloc, pagelocked_empty=pagelocked_empty, memcpy_htod=memcpy_htod,
            memcpy_htod_async=memcpy_htod_async, memcpy_dtoh_async=memcpy_dtoh_async,
        ).items():
            setattr(driver, name, value)

        autoinit = types.ModuleType("pycuda.autoinit")
        own = Context("autoinit")  # make_default_context: a new context, current in the importing thread

        def autoinit_attribute(name: str) -> Any:
            if name not in ("device", "context"):
                raise AttributeError(name)
            if not getattr(env.threads, "autoinit", False):
                env.threads.autoinit = True
                own.push()
            return Device(0) if name == "device" else own

        autoinit.__getattr__ = autoinit_attribute
        package = types.ModuleType("pycuda")
        package.__path__ = []
        package.driver, package.autoinit = driver, autoinit
        return {"pycuda": package, "pycuda.driver": driver, "pycuda.autoinit": autoinit}

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeEnv:
        monkeypatch.setitem(sys.modules, "tensorrt", self.trt)
        for name, module in self.cuda_modules.items():
            monkeypatch.setitem(sys.modules, name, module)
        return self

    # -- queries for the tests ------------------------------------------------------------------
    def called(self, qualname: str) -> list[tuple[tuple, dict]]:
        return [(args, kwargs) for cls, member, args, kwargs in self.calls if f"{cls}.{member}" == qualname]

    def used(self) -> set[str]:
        return {f"{cls}.{member}" for cls, member, _, _ in self.calls}


def _unmodelled_function(name: str) -> Any:
    def function(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"fake tensorrt does not model tensorrt.{name}")

    return function


@pytest.fixture(params=LABELS)
def fake(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> FakeEnv:
    return FakeEnv(request.param).install(monkeypatch)


def fake_for(label: str, monkeypatch: pytest.MonkeyPatch, **gpu: Any) -> FakeEnv:
    return FakeEnv(label, FakeGPU(**gpu)).install(monkeypatch)


# ==============================================================================================
# A tiny export folder (ONNX models written with onnx.helper, no checkpoint)
# ==============================================================================================
IMAGES = TensorSpec("images", ("batch", HEIGHT, WIDTH, 3), "float32")
OUTPUTS = (TensorSpec("features", ("batch", 3), "float32"), TensorSpec("appearance", ("batch", HEIGHT * WIDTH * 3), "float32"))


def _model(extra_nodes: str = "", batch: int | str = "batch") -> onnx.ModelProto:
    """images (batch, H, W, 3) -> features (batch, 3) = channel means, appearance = flattened image."""
    nodes = []
    source = "images"
    if extra_nodes == "fp16":
        nodes += [helper.make_node("Cast", ["images"], ["half"], to=TensorProto.FLOAT16, name="to_half"),
                  helper.make_node("Cast", ["half"], ["x"], to=TensorProto.FLOAT, name="to_float")]
        source = "x"
    elif extra_nodes == "qdq":
        nodes += [helper.make_node("QuantizeLinear", ["images", "scale", "zero"], ["q"], name="quant"),
                  helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["x"], name="dequant")]
        source = "x"
    nodes += [helper.make_node("ReduceMean", [source], ["mean"], axes=[1, 2], keepdims=1, name="pool"),
              helper.make_node("Flatten", ["mean"], ["features"], axis=1, name="flatten_mean"),
              helper.make_node("Flatten", [source], ["appearance"], axis=1, name="flatten_image")]
    if extra_nodes == "bad":
        nodes.insert(2, helper.make_node("Det", ["mean"], ["det"], name="bad_det"))
    inits = []
    if extra_nodes == "qdq":
        inits = [helper.make_tensor("scale", TensorProto.FLOAT, [], [2.0]), helper.make_tensor("zero", TensorProto.INT8, [], [0])]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, HEIGHT, WIDTH, 3])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [batch, 3]),
         helper.make_tensor_value_info("appearance", TensorProto.FLOAT, [batch, HEIGHT * WIDTH * 3])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def write_export(folder: Path, variants: tuple[str, ...] = ("fp32", "fp16", "int8-qdq"), bad: bool = False,
                 batch: int | str = "batch") -> Path:
    """An export of the tiny model; ``batch``: the ONNX models' batch dimension (the manifest keeps "batch")."""
    folder.mkdir(parents=True, exist_ok=True)
    models = []
    for precision in variants:
        file = "embedder.onnx" if precision == "fp32" else f"embedder.{precision}.onnx"
        kind = {"fp32": "bad" if bad else "", "fp16": "fp16", "int8-qdq": "qdq"}[precision]
        onnx.save(_model(kind, batch), folder / file)
        models.append(ModelEntry("embedder", precision, file, sha256_of(folder / file), (IMAGES,), OUTPUTS, 17))
    caches = []
    for label in IMPLICIT_INT8:  # as the export's INT8 step lists them
        version = short_version(label)
        file = cache_file(label)
        header = f"TRT-{header_version(version)}-EntropyCalibration2"
        (folder / file).write_text(f"{header}\nimages: 3c010a14\n")
        caches.append({"file": file, "role": "embedder", "tensorrt": version, "header": header,
                       "sha256": sha256_of(folder / file)})
    manifest = Manifest(
        input=InputFormat(HEIGHT, WIDTH, dtype="float32"), profile=PROFILE, feature_dim=3, heads=1, code_dim=96,
        flip=False, source={"checkpoint": "none"}, models=tuple(models), calibration={"caches": caches},
    )
    manifest.save(folder)
    return folder


@pytest.fixture
def export(tmp_path: Path) -> Path:
    return write_export(tmp_path / "export")


@pytest.fixture
def calib_images(tmp_path: Path) -> Path:
    folder = tmp_path / "calib_images" / "cam1"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(10):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 256, (16 + i, 8 + i, 3), dtype=np.uint8))
    return folder.parent


def short_version(label: str) -> str:
    return ".".join(FULL_VERSION[label].split(".")[:3])


def cache_file(label: str) -> str:
    return f"embedder.trt-{header_version(short_version(label))}.cache"


def expected_engine(label: str, precision: str, dla: str = "") -> str:
    return f"engines/embedder.{precision}.sm87{dla}.trt{short_version(label)}.engine"


def flag_names(env: FakeEnv) -> set[str]:
    return {args[0].name for args, _ in env.called("IBuilderConfig.set_flag")}


def deprecations(caught: list[warnings.WarningMessage]) -> set[str]:
    return {str(w.message).split(" ")[0] for w in caught if issubclass(w.category, DeprecationWarning)}


# ==============================================================================================
# The fake itself follows the record
# ==============================================================================================
def test_fake_has_exactly_the_recorded_members(fake: FakeEnv) -> None:
    trt = fake.trt
    assert trt.__version__ == FULL_VERSION[fake.label]
    builder = trt.Builder(trt.Logger())
    config = builder.create_builder_config()
    with pytest.raises(AttributeError):
        config.not_a_member  # noqa: B018
    with pytest.raises(AttributeError):
        config.not_a_member = 1
    assert hasattr(trt.IBuilderConfig, "max_workspace_size") == (fake.major < 10)
    assert hasattr(trt.BuilderFlag, "FP16") == (fake.major < 11)
    assert hasattr(trt, "IInt8EntropyCalibrator2") == (fake.major < 11)
    with pytest.raises(NotImplementedError if fake.major < 11 else AttributeError):
        builder.platform_has_tf32  # noqa: B018 - recorded on 8.x/10.x but not modelled; absent on 11
    assert int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED if fake.major >= 10 else 0) >= 0


# ==============================================================================================
# Building engines, per version
# ==============================================================================================
BUILDS = [("fp32", "qdq"), ("fp16", "qdq"), ("int8", "qdq"), ("int8", "cache"), ("int8", "calibrate")]


@pytest.mark.parametrize(("precision", "source"), BUILDS, ids=[f"{p}-{s}" if p == "int8" else p for p, s in BUILDS])
def test_build_calls_the_version_appropriate_api(fake: FakeEnv, export: Path, calib_images: Path,
                                                 precision: str, source: str) -> None:
    options = BuildOptions(precision, int8_source=source, calib_data=calib_images if source == "calibrate" else None,
                           calib_batch=CALIB_BATCH, workspace_mb=64)
    implicit = precision == "int8" and source in ("cache", "calibrate")
    if implicit and fake.major >= 11:
        with pytest.raises(UsageError, match="removed implicit INT8"):
            build_engine(export, "embedder", options)
        assert "Builder.create_network" not in fake.used()
        return

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = build_engine(export, "embedder", options)

    # strongly typed: always on 11; on 10.12+ (precision flags deprecated) unless implicit INT8 needs the flags
    strongly_typed = fake.major >= 11 or (fake.label == "10.13" and not implicit)

    # network: EXPLICIT_BATCH on 8 only (ignored in 10, absent in 11); STRONGLY_TYPED on 10.x (11 ignores it)
    (flags,), _ = fake.called("Builder.create_network")[0]
    enum = fake.trt.NetworkDefinitionCreationFlag
    set_names = {name for name, value in enum.__members__.items() if flags & (1 << int(value))}
    assert set_names == ({"EXPLICIT_BATCH"} if fake.major < 10 else {"STRONGLY_TYPED"} if strongly_typed and fake.major == 10
                         else set())

    # which ONNX model was parsed
    model_file = {"fp32": "embedder.onnx", "fp16": "embedder.onnx", "int8": "embedder.onnx"}[precision]
    if precision == "fp16" and strongly_typed:
        model_file = "embedder.fp16.onnx"
    if precision == "int8" and source == "qdq":
        model_file = "embedder.int8-qdq.onnx"
    assert fake.parsed == [model_file]

    # precision flags on weakly typed networks only; INT8 always with FP16 (layers left out of INT8 run FP16)
    expected_flags = set()
    if not strongly_typed:
        expected_flags = {"fp32": set(), "fp16": {"FP16"}, "int8": {"INT8", "FP16"}}[precision]
    assert flag_names(fake) == expected_flags
    assert json.loads(result.path.read_bytes()[len(b"FAKEPLAN"):])["fp32_layers"] == (precision == "fp32" or (
        strongly_typed and model_file != "embedder.fp16.onnx"))

    # workspace through the memory pools; max_workspace_size never touched
    (pool, size), _ = fake.called("IBuilderConfig.set_memory_pool_limit")[0]
    assert pool.name == "WORKSPACE" and size == 64 << 20
    assert "IBuilderConfig.max_workspace_size" not in fake.used()

    # profile from the manifest: batch min/opt/max, the other dims from the model entry
    (name, low, opt, high), _ = fake.called("IOptimizationProfile.set_shape")[0]
    assert (name, low, opt, high) == ("images", (1, HEIGHT, WIDTH, 3), (4, HEIGHT, WIDTH, 3), (16, HEIGHT, WIDTH, 3))
    assert len(fake.called("IBuilderConfig.add_optimization_profile")) == 1

    # implicit INT8: calibrator + calibration profile; nothing of it otherwise
    if implicit:
        assert fake.called("IBuilderConfig.int8_calibrator")[0][0][0] == "set"
        assert len(fake.called("IBuilderConfig.set_calibration_profile")) == 1
        calib_shapes = [args for args, _ in fake.called("IOptimizationProfile.set_shape")][1]
        assert calib_shapes[1:] == ((CALIB_BATCH, HEIGHT, WIDTH, 3),) * 3
    else:
        assert not {"IBuilderConfig.int8_calibrator", "IBuilderConfig.set_calibration_profile"} & fake.used()
    if source == "cache" and precision == "int8":
        assert fake.calib_batches == []  # the cache was read, no batch asked for
        assert result.details["calibration_cache"] == cache_file(fake.label)
        assert "calibration_cache_restamped" not in result.details
    if source == "calibrate" and precision == "int8":
        from dgnet_edge.data.images import load_images

        files = sorted((calib_images / "cam1").glob("*.png"))[:8]  # two whole batches of 4
        pixels = load_images(files, HEIGHT, WIDTH).pixels.astype(np.float32)
        got = np.concatenate([b["images"] for b in fake.calib_batches])
        np.testing.assert_array_equal(got, pixels)
        assert result.details["calibration_batches"] == 2
        cache = export / result.details["calibration_cache"]
        assert cache.read_text().startswith(f"TRT-{header_version(fake.version)}-EntropyCalibration2")

    # timing cache: created (empty the first time), set, saved
    (data,), _ = fake.called("IBuilderConfig.create_timing_cache")[0]
    assert data == b""
    assert fake.called("IBuilderConfig.set_timing_cache")[0][0][1] is False
    assert (export / "engines" / f"timing.sm87.trt{'.'.join(fake.version.split('.')[:3])}.cache").is_file()

    # deprecated calls: only the implicit-INT8 ones that 10.x deprecated and nothing else
    allowed = {"IBuilderConfig.int8_calibrator", "IBuilderConfig.set_calibration_profile"} if implicit and fake.major == 10 else set()
    assert deprecations(caught) == allowed

    # engine file and manifest entry
    entry = result.entry
    assert entry.file == expected_engine(fake.label, precision)
    manifest = load_manifest(export)
    assert manifest.engines == (entry,)
    assert (entry.gpu, entry.compute_capability, entry.tensorrt, entry.precision) == ("Orin", "8.7", fake.version, precision)
    assert entry.sha256 == sha256_of(export / entry.file) and entry.profile == PROFILE
    assert entry.source == {"embedder.onnx": "embedder:fp32", "embedder.fp16.onnx": "embedder:fp16",
                            "embedder.int8-qdq.onnx": "embedder:int8-qdq"}[model_file]
    assert entry.details["strongly_typed"] == strongly_typed
    assert not list(export.glob("**/*.tmp"))


def test_second_build_reuses_the_timing_cache_and_keeps_other_engines(monkeypatch: pytest.MonkeyPatch, export: Path) -> None:
    env = fake_for("10.3", monkeypatch)
    build_engine(export, "embedder", BuildOptions("fp32"))
    build_engine(export, "embedder", BuildOptions("fp16"))
    loaded = [args[0] for args, _ in env.called("IBuilderConfig.create_timing_cache")]
    assert loaded[0] == b"" and loaded[1].startswith(b"FAKETIMING")
    assert [e.precision for e in load_manifest(export).engines] == ["fp32", "fp16"]
    # a rebuild replaces its entry instead of adding one
    build_engine(export, "embedder", BuildOptions("fp16"))
    assert [e.precision for e in load_manifest(export).engines] == ["fp32", "fp16"]


def test_timing_cache_of_another_device_is_replaced(monkeypatch: pytest.MonkeyPatch, export: Path, tmp_path: Path) -> None:
    cache = tmp_path / "timing.cache"
    fake_for("8.6", monkeypatch, cc="7.2", name="Xavier")
    build_engine(export, "embedder", BuildOptions("fp32", timing_cache=cache))
    env = fake_for("8.6", monkeypatch)
    build_engine(export, "embedder", BuildOptions("fp32", timing_cache=cache))
    assert [args[0] for args, _ in env.called("IBuilderConfig.create_timing_cache")][-1] == b""
    assert json.loads(cache.read_bytes()[len(b"FAKETIMING"):])["cc"] == "8.7"


def test_workspace_falls_back_to_max_workspace_size_only_without_memory_pools(monkeypatch: pytest.MonkeyPatch, export: Path) -> None:
    env = fake_for("8.5", monkeypatch)
    delattr(env.trt.IBuilderConfig, "set_memory_pool_limit")  # as before TensorRT 8.4
    env.trt.IBuilderConfig._f_allowed = env.trt.IBuilderConfig._f_allowed - {"set_memory_pool_limit"}
    with pytest.warns(DeprecationWarning, match="max_workspace_size"):
        build_engine(export, "embedder", BuildOptions("fp16", workspace_mb=32))
    assert env.called("IBuilderConfig.max_workspace_size") == [(("set", 32 << 20), {})]


def test_tensorrt_11_needs_the_fp16_model_and_the_qdq_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_for("11", monkeypatch)
    folder = write_export(tmp_path / "fp32_only", variants=("fp32",))
    with pytest.raises(ExportError, match="fp16 ONNX model.*re-export with --fp16"):
        build_engine(folder, "embedder", BuildOptions("fp16"))
    with pytest.raises(ExportError, match="no embedder Q/DQ model"):
        build_engine(folder, "embedder", BuildOptions("int8"))


@pytest.mark.filterwarnings("ignore:IBuilderConfig.*deprecated:DeprecationWarning")  # implicit INT8 on 10.x
def test_cache_of_another_version_is_restamped(monkeypatch: pytest.MonkeyPatch, export: Path) -> None:
    env = fake_for("10.13", monkeypatch)
    manifest = load_manifest(export)
    only_86 = [c for c in manifest.calibration["caches"] if c["tensorrt"] == "8.6.1"]
    replace(manifest, calibration={"caches": only_86}).save(export)
    result = build_engine(export, "embedder", BuildOptions("int8", int8_source="cache"))
    restamped = export / result.details["calibration_cache_restamped"]
    assert result.details["calibration_cache"] == cache_file("8.6")
    assert restamped.read_text() == "TRT-101303-EntropyCalibration2\nimages: 3c010a14\n"
    assert env.calib_batches == [] and result.entry.precision == "int8"  # TensorRT took the cache


def test_cache_source_errors(monkeypatch: pytest.MonkeyPatch, export: Path) -> None:
    env = fake_for("10.3", monkeypatch)
    (export / cache_file("10.3")).write_text("TRT-100300-EntropyCalibration2\nimages: 3c000000\n")
    with pytest.raises(ExportError, match="sha256 mismatch"):
        build_engine(export, "embedder", BuildOptions("int8", int8_source="cache"))
    replace(load_manifest(export), calibration=None).save(export)
    with pytest.raises(ExportError, match="no TensorRT calibration cache for embedder"):
        build_engine(export, "embedder", BuildOptions("int8", int8_source="cache"))
    assert "Builder.create_network" not in env.used()


@pytest.mark.parametrize("label", ["8.5", "10.3", "11"])
def test_parser_errors_name_every_failing_node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, label: str) -> None:
    fake_for(label, monkeypatch)
    folder = write_export(tmp_path / "bad", variants=("fp32",), bad=True)
    with pytest.raises(ExportError, match=r"cannot parse embedder\.onnx:\n  node 2 'bad_det' \(Det\): No importer"):
        build_engine(folder, "embedder", BuildOptions("fp32"))
    assert not (folder / "engines").exists() or not list((folder / "engines").glob("*.engine"))


@pytest.mark.parametrize("label", ["8.5", "8.6", "10.3", "10.13", "11"])
def test_dla_build(monkeypatch: pytest.MonkeyPatch, export: Path, label: str) -> None:
    env = fake_for(label, monkeypatch)
    result = build_engine(export, "embedder", BuildOptions("fp16", dla_core=1))
    assert env.called("IBuilderConfig.default_device_type")[0][0][1].name == "DLA"
    assert env.called("IBuilderConfig.DLA_core") == [(("set", 1), {})]
    assert "GPU_FALLBACK" in flag_names(env)
    assert result.entry.file == expected_engine(label, "fp16", ".dla1") and result.entry.details["dla_core"] == 1
    # DLA layers take no dynamic dimension: a static batch at the profile's opt
    (_, *shapes), _ = env.called("IOptimizationProfile.set_shape")[0]
    assert shapes == [(4, HEIGHT, WIDTH, 3)] * 3 and result.entry.profile == BatchProfile(4, 4, 4)
    with pytest.raises(BackendUnavailableError, match="DLA core 2 .* 2 DLA core"):
        build_engine(export, "embedder", BuildOptions("fp16", dla_core=2))
    with pytest.raises(UsageError, match="DLA runs FP16 or INT8"):
        BuildOptions("fp32", dla_core=0)


def test_build_all_roles_builds_what_the_export_has(monkeypatch: pytest.MonkeyPatch, export: Path) -> None:
    fake_for("10.3", monkeypatch)
    results = build_engines(export, "all", BuildOptions("fp32"))
    assert [r.entry.role for r in results] == ["embedder"]
    with pytest.raises(ExportError, match="no structure model"):
        build_engines(export, "structure", BuildOptions("fp32"))


def test_plan_is_a_pure_function_of_manifest_options_and_features(export: Path) -> None:
    manifest = load_manifest(export)
    v8 = TensorRTFeatures("8.6.1.6", True, True, True, True)
    v11 = TensorRTFeatures("11.0.0.11", False, False, False, True)
    assert plan_build(manifest, "embedder", BuildOptions("fp16"), v8).flags == ("FP16",)
    plan = plan_build(manifest, "embedder", BuildOptions("fp16"), v11)
    assert (plan.model.precision, plan.flags, plan.strongly_typed, plan.network_flags) == ("fp16", (), True, ())
    assert plan_build(manifest, "embedder", BuildOptions("int8"), v8).network_flags == ("EXPLICIT_BATCH",)


def plan_of(result: Any) -> dict[str, Any]:
    """What the fake TensorRT put in the engine it built."""
    return json.loads(result.path.read_bytes()[len(b"FAKEPLAN"):])


@pytest.mark.filterwarnings("ignore:IBuilderConfig.*deprecated:DeprecationWarning")  # implicit INT8 on 10.x
@pytest.mark.parametrize(("label", "source", "dla"), [("8.5", "qdq", None), ("8.6", "cache", None), ("10.3", "qdq", None),
                                                      ("10.3", "calibrate", 0), ("10.13", "cache", None),
                                                      ("10.13", "qdq", 1)])
def test_int8_sets_fp16_too_so_no_layer_falls_back_to_fp32(monkeypatch: pytest.MonkeyPatch, export: Path,
                                                            calib_images: Path, label: str, source: str,
                                                            dla: int | None) -> None:
    env = fake_for(label, monkeypatch)
    options = BuildOptions("int8", int8_source=source, calib_data=calib_images if source == "calibrate" else None,
                           calib_batch=CALIB_BATCH, dla_core=dla)
    result = build_engine(export, "embedder", options)
    assert {"INT8", "FP16"} <= flag_names(env)
    assert not plan_of(result)["fp32_layers"]  # layers INT8 leaves out run in FP16
    if dla is not None:
        assert not plan_of(result)["gpu_layers"]  # ... so on DLA, none of them has to go to the GPU


def test_tensorrt_10_12_prefers_strong_typing_with_the_flags_as_fallback(
        monkeypatch: pytest.MonkeyPatch, export: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = fake_for("10.13", monkeypatch)
    features = TensorRTFeatures.of(env.trt)
    assert features.strongly_typed_flag and features.precision_flags_deprecated
    assert not TensorRTFeatures.of(FakeEnv("10.3").trt).precision_flags_deprecated
    assert not TensorRTFeatures.of(FakeEnv("11").trt).strongly_typed_flag  # 11 ignores the flag: never set

    def build(folder: Path, options: BuildOptions) -> tuple[set[str], dict[str, Any]]:
        env.calls.clear()
        env.parsed.clear()
        result = build_engine(folder, "embedder", options)
        (bits,), _ = env.called("Builder.create_network")[0]
        enum = env.trt.NetworkDefinitionCreationFlag
        network = {name for name, value in enum.__members__.items() if bits & (1 << int(value))}
        return network, {**result.details, "set": flag_names(env), "parsed": env.parsed[:]}

    network, got = build(export, BuildOptions("fp16"))
    assert network == {"STRONGLY_TYPED"} and got["set"] == set() and got["parsed"] == ["embedder.fp16.onnx"]
    network, got = build(export, BuildOptions("int8"))
    assert network == {"STRONGLY_TYPED"} and got["set"] == set() and got["parsed"] == ["embedder.int8-qdq.onnx"]
    # DLA: strong typing would keep the Q/DQ model's float layers in FP32, which DLA cannot run
    network, got = build(export, BuildOptions("int8", dla_core=0))
    assert network == set() and got["set"] == {"INT8", "FP16", "GPU_FALLBACK"} and not got["strongly_typed"]
    # fallbacks: no fp16 model -> the (deprecated) FP16 flag; implicit INT8 -> flags and calibrator
    fp32_only = write_export(tmp_path / "fp32_only", variants=("fp32",))
    caplog.set_level("WARNING")
    network, got = build(fp32_only, BuildOptions("fp16"))
    assert network == set() and got["set"] == {"FP16"} and got["parsed"] == ["embedder.onnx"]
    assert "re-export with --fp16 for the strongly typed build" in caplog.text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        network, got = build(export, BuildOptions("int8", int8_source="cache"))
    assert network == set() and got["set"] == {"INT8", "FP16"} and "deprecated implicit INT8" in caplog.text


def test_one_tensorrt_logger_for_every_builder_parser_and_runtime(monkeypatch: pytest.MonkeyPatch, export: Path) -> None:
    env = fake_for("8.6", monkeypatch)
    build_engine(export, "embedder", BuildOptions("fp32"))
    build_engine(export, "embedder", BuildOptions("fp16"))
    with TensorRTRunner(EngineFromExport(export, "embedder", "fp16")) as runner:
        runner.infer(_feed(1))
    EngineFromExport(export, "embedder", "fp32")()
    assert len(env.loggers) == 6  # two builders, two parsers, two runtimes
    assert all(logger is env.loggers[0] for logger in env.loggers) and env.logger_warnings == []


def test_rejected_profiles_are_errors(monkeypatch: pytest.MonkeyPatch, export: Path) -> None:
    env = fake_for("10.3", monkeypatch)
    monkeypatch.setattr(env.trt.IBuilderConfig, "add_optimization_profile", lambda self, profile: -1)
    with pytest.raises(ExportError, match=r"TensorRT rejected the optimisation profile .*embedder\.onnx"):
        build_engine(export, "embedder", BuildOptions("fp16"))
    monkeypatch.undo()
    env = fake_for("8.5", monkeypatch)
    monkeypatch.setattr(env.trt.IBuilderConfig, "set_calibration_profile", lambda self, profile: False)
    with pytest.raises(ExportError, match="TensorRT rejected the calibration profile .*--calib-batch"):
        build_engine(export, "embedder", BuildOptions("int8", int8_source="cache"))
    assert "Builder.build_serialized_network" not in env.used()


@pytest.mark.filterwarnings("ignore:IBuilderConfig.*deprecated:DeprecationWarning")  # implicit INT8 on 10.x
@pytest.mark.parametrize("label", ["8.5", "10.3", "11"])
def test_static_batch_model_is_refused_with_a_clear_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                            label: str) -> None:
    env = fake_for(label, monkeypatch)
    folder = write_export(tmp_path / "static", batch=1)
    with pytest.raises(ExportError, match=r"embedder\.onnx: input 'images' has a static batch dimension of 1, so "
                                          r"TensorRT cannot take batch 1\.\.16 of the export's profile; re-export"):
        build_engine(folder, "embedder", BuildOptions("fp32"))
    assert "Builder.build_serialized_network" not in env.used()
    # a static batch the profile matches is fine: DLA's static batch is the profile's opt (4)
    folder = write_export(tmp_path / "static4", batch=4)
    assert build_engine(folder, "embedder", BuildOptions("fp16", dla_core=0)).entry.profile == BatchProfile(4, 4, 4)
    if env.major < 11:  # ... but not a calibration batch of another size
        with pytest.raises(ExportError, match="cannot take batch 8 of the calibration profile .*--calib-batch"):
            build_engine(folder, "embedder", BuildOptions("int8", int8_source="cache", calib_batch=8, dla_core=0))


@pytest.mark.parametrize("label", ["8.5", "8.6"])
def test_dla_qdq_on_tensorrt_8_says_its_int8_layers_run_on_the_gpu(
        monkeypatch: pytest.MonkeyPatch, export: Path, caplog: pytest.LogCaptureFixture, label: str) -> None:
    env = fake_for(label, monkeypatch)
    caplog.set_level("WARNING")
    result = build_engine(export, "embedder", BuildOptions("int8", dla_core=0))
    assert "does not run Q/DQ (explicit INT8) layers on DLA" in caplog.text and "--int8-source cache" in caplog.text
    assert "run on the GPU" in result.details["dla_fallback"] and plan_of(result)["gpu_layers"]
    # DLA INT8 from the export's calibration cache: nothing left for the GPU
    caplog.clear()
    result = build_engine(export, "embedder", BuildOptions("int8", int8_source="cache", dla_core=0))
    assert flag_names(env) >= {"INT8", "FP16", "GPU_FALLBACK"} and not plan_of(result)["gpu_layers"]
    assert "dla_fallback" not in result.details and "Q/DQ" not in caplog.text


def test_dla_qdq_on_tensorrt_10_runs_on_dla(monkeypatch: pytest.MonkeyPatch, export: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    fake_for("10.3", monkeypatch)
    caplog.set_level("WARNING")
    result = build_engine(export, "embedder", BuildOptions("int8", dla_core=0))
    assert "dla_fallback" not in result.details and not plan_of(result)["gpu_layers"] and "Q/DQ" not in caplog.text


# ==============================================================================================
# The calibrator
# ==============================================================================================
@pytest.mark.parametrize("label", IMPLICIT_INT8)
def test_calibrator_defines_exactly_what_tensorrt_calls(monkeypatch: pytest.MonkeyPatch, label: str, tmp_path: Path) -> None:
    fake_for(label, monkeypatch)
    calibrator = make_entropy_calibrator([], tmp_path / "c.cache")
    defined = {name for name in type(calibrator).__dict__ if not name.startswith("_")}
    assert defined == set(API["python_overridable"][label]["IInt8EntropyCalibrator2"])
    assert isinstance(calibrator, sys.modules["tensorrt"].IInt8EntropyCalibrator2)


def test_no_calibrator_on_tensorrt_11(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_for("11", monkeypatch)
    with pytest.raises(BackendUnavailableError, match="removed implicit INT8"):
        make_entropy_calibrator([], tmp_path / "c.cache")


@pytest.mark.parametrize("label", ["8.5", "10.3"])
def test_calibrator_copies_each_batch_in_the_order_asked(monkeypatch: pytest.MonkeyPatch, label: str, tmp_path: Path) -> None:
    env = fake_for(label, monkeypatch)
    rng = np.random.default_rng(1)
    batches = [{"a": rng.random((2, 3), dtype=np.float32), "b": rng.integers(0, 9, (2, 5)).astype(np.int32)} for _ in range(2)]
    cache = tmp_path / "sub" / "c.cache"
    calibrator = make_entropy_calibrator(batches, cache, batch_size=2)
    assert calibrator.get_batch_size() == 2
    assert calibrator.read_calibration_cache() is None
    for batch in batches:
        pb, pa = calibrator.get_batch(["b", "a"])
        np.testing.assert_array_equal(env.memory.read(pb, (2, 5), np.int32), batch["b"])
        np.testing.assert_array_equal(env.memory.read(pa, (2, 3), np.float32), batch["a"])
    assert [c for c, _ in env.cuda_calls].count("mem_alloc") == 2  # buffers reused across batches
    assert calibrator.get_batch(["b", "a"]) is None
    assert env.memory.blocks == {}  # freed at the end of the data
    calibrator.write_calibration_cache(memoryview(b"TRT-8502-EntropyCalibration2\nx: 3c010a14\n"))
    assert cache.read_bytes().startswith(b"TRT-8502") and calibration_state(calibrator).cache_written
    assert calibrator.read_calibration_cache() == cache.read_bytes()
    assert calibration_state(calibrator).batches == 2


def test_calibrator_reports_bad_batches_instead_of_raising(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_for("8.6", monkeypatch)
    calibrator = make_entropy_calibrator([{"a": np.zeros((1, 2), np.float32)}], None)
    assert calibrator.get_batch(["images"]) is None
    assert "no input ['images']" in str(calibration_state(calibrator).error)


def test_cache_lookup_matches_the_running_version() -> None:
    calibration = {"caches": [
        {"file": "embedder.trt-8602.cache", "role": "embedder", "tensorrt": "8.6.2"},
        {"file": "embedder.trt-10.cache", "tensorrt": "10"},
        {"file": "embedder.trt-100300.cache", "role": "embedder", "tensorrt": "10.3.0"},
        {"file": "structure.trt-100300.cache", "role": "structure", "tensorrt": "10.3.0"},
    ]}

    def file(role: str, version: str) -> str | None:
        entry = cache_for_tensorrt(calibration, role, version)
        return None if entry is None else entry["file"]

    assert file("embedder", "8.6.2.3") == "embedder.trt-8602.cache"
    assert file("embedder", "10.3.0.30") == "embedder.trt-100300.cache"
    assert file("embedder", "10.13.3.9") == "embedder.trt-10.cache"
    assert file("structure", "10.3.0") == "structure.trt-100300.cache"
    assert file("embedder", "8.6.1.6") is None and file("embedder", "8.5.2") is None
    assert cache_for_tensorrt(None, "embedder", "8.6") is None
    assert (header_version("8.6.1.6"), header_version("10.3.0.30"), header_version("10.13.3")) == (8601, 100300, 101303)
    assert restamp("TRT-8602-EntropyCalibration2\na: 3c010a14\n", "10.3.0.30") == "TRT-100300-EntropyCalibration2\na: 3c010a14\n"


def test_cache_file_check(tmp_path: Path) -> None:
    good = tmp_path / "good.cache"
    good.write_text("TRT-8601-EntropyCalibration2\nimages: 3c010a14\n")
    assert check_cache_file(good) == "TRT-8601-EntropyCalibration2"
    bad = tmp_path / "bad.cache"
    bad.write_text("TRT-8601-MinMaxCalibration\n")
    with pytest.raises(ExportError, match="not a TensorRT EntropyCalibration2 cache"):
        check_cache_file(bad)

@pytest.mark.filterwarnings("ignore:IBuilderConfig.*deprecated:DeprecationWarning")  # implicit INT8 on 10.x
@pytest.mark.parametrize("label", ["8.6", "10.3"])
def test_cache_builds_leave_the_exports_cache_as_it_is(monkeypatch: pytest.MonkeyPatch, export: Path,
                                                       calib_images: Path, label: str) -> None:
    env = fake_for(label, monkeypatch)
    cache = export / cache_file(label)
    before = cache.read_bytes()
    build_engine(export, "embedder", BuildOptions("int8", int8_source="cache"))
    assert env.cache_writes == 1  # TensorRT handed its copy of the scales back ...
    assert cache.read_bytes() == before  # ... which the calibrator did not put in the export's file
    build_engine(export, "embedder", BuildOptions("int8", int8_source="cache"))  # the sha256 still matches
    # live calibration writes its own file, never one the manifest lists
    result = build_engine(export, "embedder", BuildOptions("int8", int8_source="calibrate", calib_data=calib_images,
                                                           calib_batch=CALIB_BATCH))
    assert result.details["calibration_cache"].startswith("engines/") and cache.read_bytes() == before


def test_calibrator_that_read_a_cache_writes_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_for("10.3", monkeypatch)
    cache = tmp_path / "c.cache"
    cache.write_bytes(b"TRT-100300-EntropyCalibration2\nimages: 3c010a14\n")
    calibrator = make_entropy_calibrator([], cache)
    assert calibrator.read_calibration_cache() == cache.read_bytes()
    calibrator.write_calibration_cache(memoryview(b"TRT-100300-EntropyCalibration2\nimages: 3c010a14\nout: 3c800000\n"))
    assert cache.read_bytes() == b"TRT-100300-EntropyCalibration2\nimages: 3c010a14\n"
    assert not calibration_state(calibrator).cache_written


@pytest.mark.filterwarnings("ignore:IBuilderConfig.*deprecated:DeprecationWarning")  # implicit INT8 on 10.x
def test_zero_ranges_are_left_out_of_caches(monkeypatch: pytest.MonkeyPatch, export: Path) -> None:
    text = cache_text({"images": 1.27, "dead": 0.0, "tiny": 1e-45, "broken": float("nan")}, "10.3.0")
    assert text == "TRT-100300-EntropyCalibration2\nimages: 3c23d70a\n" and set(parse_cache(text).scales) == {"images"}
    # a cache an older export wrote with a scale of 0: the calibrator gets a copy without that line
    fake_for("10.3", monkeypatch)
    manifest = load_manifest(export)
    file = cache_file("10.3")
    (export / file).write_text("TRT-100300-EntropyCalibration2\nimages: 3c010a14\ndead: 00000000\n")
    caches = [dict(c, sha256=sha256_of(export / file)) if c["file"] == file else c for c in manifest.calibration["caches"]]
    replace(manifest, calibration={"caches": caches}).save(export)
    result = build_engine(export, "embedder", BuildOptions("int8", int8_source="cache"))
    read = export / result.details["calibration_cache_restamped"]
    assert read.read_text() == "TRT-100300-EntropyCalibration2\nimages: 3c010a14\n"
    assert (export / file).read_text().endswith("dead: 00000000\n")  # the export's file is untouched


# ==============================================================================================
# The runner
# ==============================================================================================
def _feed(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    return {"images": np.random.default_rng(seed).uniform(0, 255, (batch, HEIGHT, WIDTH, 3)).astype(np.float32)}


def _reference(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = len(feed["images"])
    return {o.name: fake_engine_output([feed["images"]], (n, *o.shape[1:]), np.float32) for o in OUTPUTS}


def test_runner_per_version(fake: FakeEnv, export: Path) -> None:
    build_engine(export, "embedder", BuildOptions("fp32"))
    fake.calls.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with TensorRTRunner(EngineFromExport(export, "embedder", "fp32")) as runner:
            assert runner.input_metadata() == [TensorSpec("images", ("batch", HEIGHT, WIDTH, 3), "float32")]
            assert [s.name for s in runner.output_metadata()] == ["features", "appearance"]
            assert runner.profile["images"][2] == (16, HEIGHT, WIDTH, 3)
            for n in (3, 1, 16):
                feed = _feed(n, seed=n)
                out = runner.infer(feed)
                for name, want in _reference(feed).items():
                    np.testing.assert_allclose(out[name], want, rtol=1e-6)
            with pytest.raises(ValueError, match="outside the engine's profile.*chunks of at most 16"):
                runner.infer(_feed(17))
            with pytest.raises(ValueError, match="must be float32"):
                runner.infer({"images": np.zeros((1, HEIGHT, WIDTH, 3), np.uint8)})
            assert runner.inference_time is not None
    # the tensor-name API on every version (it exists from 8.5): no deprecated binding call, no warning
    used = fake.used()
    assert {"ICudaEngine.num_io_tensors", "ICudaEngine.get_tensor_name", "ICudaEngine.get_tensor_mode",
            "IExecutionContext.set_input_shape", "IExecutionContext.set_tensor_address",
            "IExecutionContext.execute_async_v3"} <= used
    assert not any("binding" in u or u.endswith("execute_async_v2") for u in used)
    assert deprecations(caught) == set()
    assert fake.executions == 3
    # page-locked host buffers sized for the profile maximum, one per I/O tensor (not mapped: a discrete GPU)
    assert sorted(count for count, _, _ in fake.pagelocked) == sorted([16 * HEIGHT * WIDTH * 3, 16 * 3, 16 * HEIGHT * WIDTH * 3])
    assert {flags for _, _, flags in fake.pagelocked} == {0}
    # copies in, execution and copies out on one stream, then one synchronize per batch
    streams = {s for c, s in fake.cuda_calls if c.endswith("_async")}
    assert len(streams) == 1 and None not in streams
    syncs = [c for c, _ in fake.cuda_calls if c == "synchronize"]
    assert len(syncs) == 3
    assert fake.memory.blocks == {}  # device buffers freed at deactivation
    assert fake.context_stack() == []  # the primary context pushed around each use, popped after


@pytest.mark.parametrize("label", ["8.5", "8.6"])
def test_binding_api_only_when_asked_or_for_engines_without_names(monkeypatch: pytest.MonkeyPatch, export: Path,
                                                                  label: str) -> None:
    env = fake_for(label, monkeypatch)
    build_engine(export, "embedder", BuildOptions("fp16"))
    env.calls.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with TensorRTRunner(EngineFromExport(export, "embedder", "fp16"), api="bindings") as runner:
            feed = _feed(2)
            np.testing.assert_allclose(runner.infer(feed)["features"], _reference(feed)["features"], rtol=1e-6)
    assert "IExecutionContext.execute_async_v2" in env.used() and "IExecutionContext.execute_async_v3" not in env.used()
    assert "IExecutionContext.set_binding_shape" in deprecations(caught)  # what auto avoids
    # an engine whose context has no name API (before 8.5): auto takes the bindings
    context = env.trt.IExecutionContext
    context._f_allowed = context._f_allowed - {"execute_async_v3"}
    delattr(context, "execute_async_v3")
    env.calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with TensorRTRunner(EngineFromExport(export, "embedder", "fp16")) as runner:
            runner.infer(_feed(1))
    assert "IExecutionContext.execute_async_v2" in env.used()


def test_dla_engine_runs_on_its_core(monkeypatch: pytest.MonkeyPatch, export: Path) -> None:
    env = fake_for("10.3", monkeypatch)
    build_engine(export, "embedder", BuildOptions("int8", dla_core=1))
    with TensorRTRunner(EngineFromExport(export, "embedder", "int8", dla_core=1)) as runner:
        feed = _feed(4)
        np.testing.assert_allclose(runner.infer(feed)["features"], _reference(feed)["features"], rtol=1e-6)
        with pytest.raises(ValueError, match="batches of exactly 4: pad or split"):
            runner.infer(_feed(2))
    assert env.called("Runtime.DLA_core") == [(("set", 1), {})]
    with pytest.raises(ExportError, match="no int8 embedder engine"):
        EngineFromExport(export, "embedder", "int8")()  # the GPU engine was not built


@pytest.mark.parametrize("label", ["8.6", "10.3", "11"])
def test_runner_on_an_integrated_gpu_binds_mapped_host_memory(monkeypatch: pytest.MonkeyPatch, export: Path,
                                                              label: str) -> None:
    env = fake_for(label, monkeypatch, integrated=True)  # a Jetson: GPU and CPU share memory
    build_engine(export, "embedder", BuildOptions("fp16"))
    env.cuda_calls.clear()
    with TensorRTRunner(EngineFromExport(export, "embedder", "fp16")) as runner:
        for n in (2, 5):
            feed = _feed(n, seed=n)
            out = runner.infer(feed)
            for name, want in _reference(feed).items():
                np.testing.assert_allclose(out[name], want, rtol=1e-6)
        bound = set(runner.context._addresses.values())
    calls = [c for c, _ in env.cuda_calls]
    assert "mem_alloc" not in calls and not any(c.startswith("memcpy") for c in calls)  # zero-copy
    assert {flags for _, _, flags in env.pagelocked} == {env.cuda_modules["pycuda.driver"].host_alloc_flags.DEVICEMAP}
    assert len(bound) == 3 and env.memory.blocks == {}  # three mapped buffers bound, all freed at deactivation
    # copies can still be asked for
    with TensorRTRunner(EngineFromExport(export, "embedder", "fp16"), zero_copy=False) as runner:
        runner.infer(_feed(1))
    assert "memcpy_htod_async" in [c for c, _ in env.cuda_calls]


def test_runner_works_from_other_threads(monkeypatch: pytest.MonkeyPatch, export: Path) -> None:
    env = fake_for("10.3", monkeypatch)
    build_engine(export, "embedder", BuildOptions("fp32"))
    outputs: dict[int, Any] = {}

    def work(n: int) -> None:
        try:
            feed = _feed(n, seed=n)
            got = runner.infer(feed)["features"]
            outputs[n] = np.allclose(got, _reference(feed)["features"], rtol=1e-6) and env.context_stack() == []
        except Exception as e:  # noqa: BLE001 - reported below
            outputs[n] = e

    with TensorRTRunner(EngineFromExport(export, "embedder", "fp32")) as runner:
        assert env.context_stack() == []  # activation pushed and popped the primary context
        threads = [threading.Thread(target=work, args=(n,)) for n in (1, 2, 3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert outputs == {1: True, 2: True, 3: True}
    assert {kind for c, kind in env.cuda_calls if c == "push"} == {"primary"}  # never pycuda.autoinit's context


def test_engine_io_is_checked_against_the_manifest_at_load(monkeypatch: pytest.MonkeyPatch, export: Path) -> None:
    env = fake_for("10.3", monkeypatch)
    build_engine(export, "embedder", BuildOptions("fp32"))
    manifest = load_manifest(export)
    model = manifest.model("embedder", "fp32")
    uint8 = replace(model, inputs=(replace(IMAGES, dtype="uint8"),), outputs=model.outputs[:1])
    manifest.with_model(uint8).save(export)
    runner = TensorRTRunner(EngineFromExport(export, "embedder", "fp32"))
    with pytest.raises(ExportError, match=r"embedder\.fp32\.sm87\.trt10\.3\.0\.engine does not match the manifest's "
                                          r"embedder:fp32 model \(embedder\.onnx\): input 'images' is float32 in the "
                                          r"engine, uint8 in the manifest; the engine has output 'appearance', which "
                                          r"the model does not; rebuild it .*dgnet-edge build"):
        runner.activate()
    assert not runner.is_active and env.memory.blocks == {} and env.context_stack() == []


def test_engine_for_another_gpu_is_refused_before_deserializing(monkeypatch: pytest.MonkeyPatch, export: Path) -> None:
    fake_for("10.3", monkeypatch, cc="7.2", name="Xavier")
    build_engine(export, "embedder", BuildOptions("fp16"))
    env = fake_for("10.3", monkeypatch)  # an Orin (8.7) now
    with pytest.raises(BackendUnavailableError, match=r"built for Xavier with compute capability 7\.2.*dgnet-edge build .* --precision fp16"):
        TensorRTRunner(EngineFromExport(export, "embedder", "fp16")).activate()
    assert "Runtime.deserialize_cuda_engine" not in env.used()


def test_engine_for_another_tensorrt_is_refused_before_deserializing(monkeypatch: pytest.MonkeyPatch, export: Path) -> None:
    fake_for("10.3", monkeypatch)
    build_engine(export, "embedder", BuildOptions("fp32"))
    env = fake_for("10.13", monkeypatch)
    with pytest.raises(BackendUnavailableError, match=r"TensorRT 10\.3\.0\.30 \(installed: 10\.13\.3\.9\).*dgnet-edge build"):
        EngineFromExport(export, "embedder", "fp32")()
    assert "Runtime.deserialize_cuda_engine" not in env.used()


def test_deserialization_failure_says_to_rebuild(monkeypatch: pytest.MonkeyPatch, export: Path) -> None:
    fake_for("8.6", monkeypatch, cc="7.2")
    path = build_engine(export, "embedder", BuildOptions("fp32")).path
    env = fake_for("8.6", monkeypatch)
    with pytest.raises(BackendUnavailableError, match="cannot deserialize .*dgnet-edge build"):
        EngineFromPath(path)()  # no manifest entry to check first: TensorRT itself refuses
    assert "Runtime.deserialize_cuda_engine" in env.used()


def test_missing_tensorrt_pycuda_or_gpu(monkeypatch: pytest.MonkeyPatch, export: Path) -> None:
    env = fake_for("10.3", monkeypatch)
    build_engine(export, "embedder", BuildOptions("fp32"))
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with pytest.raises(BackendUnavailableError, match="TensorRT: pycuda not installed"):
        TensorRTRunner(EngineFromExport(export, "embedder", "fp32")).activate()
    monkeypatch.setitem(sys.modules, "pycuda.driver", env.cuda_modules["pycuda.driver"])
    env.gpu.present = False
    with pytest.raises(BackendUnavailableError, match="TensorRT: no CUDA GPU"):
        TensorRTRunner(EngineFromExport(export, "embedder", "fp32")).activate()
    with pytest.raises(BackendUnavailableError, match="TensorRT: no CUDA GPU"):
        build_engine(export, "embedder", BuildOptions("fp16"))
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendUnavailableError, match="TensorRT: not installed"):
        import_tensorrt()
    with pytest.raises(BackendUnavailableError, match="TensorRT: not installed"):
        build_engine(export, "embedder", BuildOptions("fp16"))


def test_importing_the_modules_needs_neither_tensorrt_nor_pycuda_nor_torch() -> None:
    code = (
        "import sys\n"
        "import dgnet_edge.runtime.tensorrt, dgnet_edge.calib.tensorrt_calibrator, dgnet_edge.export.tensorrt_build\n"
        "import dgnet_edge.cli.build\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorrt', 'pycuda', 'torch'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ==============================================================================================
# The command
# ==============================================================================================
def _fail(argv: list[str], capsys: pytest.CaptureFixture[str], code: int = 1) -> str:
    from dgnet_edge.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == code
    return capsys.readouterr().err.replace("\n", " ")


def test_cli_build_without_tensorrt_exits_1(export: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as on this machine, whatever is installed
    message = _fail(["build", str(export), "--precision", "fp16"], capsys)
    assert "TensorRT: not installed" in message and "Traceback" not in message


def test_cli_build_usage_errors(export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "--int8-source applies to --precision int8" in _fail(
        ["build", str(export), "--precision", "fp16", "--int8-source", "cache"], capsys, 2)
    assert "--calib-data is used with --int8-source calibrate" in _fail(
        ["build", str(export), "--precision", "int8", "--calib-data", str(export)], capsys, 2)
    assert "DLA runs FP16 or INT8" in _fail(["build", str(export), "--precision", "fp32", "--dla", "0"], capsys, 2)
    missing = _fail(["build", str(export / "nope"), "--precision", "fp32"], capsys)
    assert "nope" in missing and ("no manifest.json" in missing or "does not exist" in missing)


@pytest.mark.filterwarnings("ignore:IBuilderConfig.*deprecated:DeprecationWarning")  # implicit INT8 on 10.x
def test_cli_build_with_fake_tensorrt(monkeypatch: pytest.MonkeyPatch, export: Path, calib_images: Path) -> None:
    from dgnet_edge.cli.main import app

    fake_for("10.3", monkeypatch)
    args = ["build", str(export), "--precision", "int8", "--int8-source", "calibrate", "--calib-data", str(calib_images),
            "--calib-batch", "4", "--workspace-mb", "128", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["engines"]
    assert row["file"] == expected_engine("10.3", "int8") and row["compute_capability"] == "8.7"
    table = CliRunner().invoke(app, ["build", str(export), "--precision", "fp16"])
    assert table.exit_code == 0 and "fp16" in table.stdout
    assert CliRunner().invoke(app, ["build", "--help"]).exit_code == 0


# ==============================================================================================
# Real TensorRT on a GPU (skipped without one)
# ==============================================================================================
@pytest.fixture(scope="session")
def real_tensorrt() -> Any:
    try:
        trt = import_tensorrt()
        cuda_device()
    except BackendUnavailableError as e:
        pytest.skip(str(e))
    return trt


@pytest.fixture(scope="session")
def real_export(real_tensorrt: Any, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dgnet_edge.export.pipeline import ExportOptions, export_checkpoint

    out = tmp_path_factory.mktemp("trt_exports") / "tiny"
    export_checkpoint(tiny_checkpoint, out, ExportOptions(fp16=True))
    return out


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize(("precision", "atol", "cosine"), [("fp32", 1e-3, 0.9999), ("fp16", None, 0.999)])
def test_real_engine_matches_onnxruntime(real_export: Path, precision: str, atol: float | None, cosine: float) -> None:
    from dgnet_edge.export.pipeline import parity_feeds
    from dgnet_edge.runtime.compare import compare_runners
    from dgnet_edge.runtime.onnxrt import OnnxRuntimeRunner, SessionFromOnnx

    result = build_engine(real_export, "embedder", BuildOptions(precision))
    manifest = load_manifest(real_export)
    assert result.entry in manifest.engines
    feeds = parity_feeds("images", manifest.input, None)
    with OnnxRuntimeRunner(SessionFromOnnx(real_export / "embedder.onnx", device="cpu")) as reference, \
            TensorRTRunner(EngineFromExport(real_export, "embedder", precision)) as candidate:
        comparison = compare_runners(reference, candidate, feeds, atol, cosine)
    assert comparison, comparison.describe()
