"""The two INT8 models, written by ONNX Runtime's quantizer from precomputed ranges.

Both are made from the fp32 ``embedder.onnx`` and the ranges of ``calibration.json``; neither runs
a second calibration pass: the ranges are handed to ``quantize_static`` as its calibration cache
(``calibration_cache_path``, a file in ONNX Runtime's own ``save_tensors_data`` format holding
[low, high] per tensor), which makes it skip its calibration and use them as they are.

Which nodes are quantized (:func:`quantizable_nodes`): convolutions and Gemm/MatMul with constant
weights, pooling of trunk activations, residual additions (both inputs from the trunk) and, for
the CPU model, the ReLUs after them. The preprocessing (transpose, normalisation, the flip), the
L2 normalisation and flip-sum of the feature and the appearance-code pooling stay float:
they are cheap and carry the output's precision. ``exclude`` keeps more nodes float.

``tensorrt`` (``embedder.int8-qdq.onnx``): TensorRT explicit quantization, as NVIDIA's Model
Optimizer drives ORT: Q/DQ format, symmetric int8 activations and weights (zero point 0), per-channel
weights for Conv (axis 0) and ConvTranspose (axis 1), per-tensor for Gemm (which every TensorRT
version from 8.5 parses), bias not quantized, weights kept float behind a Q/DQ pair, and Q/DQ only
on the *inputs* of quantized ops (no output quantization: TensorRT's recommended placement, it
fuses the rest). Activation scales are exactly ``amax / 127``.

``cpu`` (``embedder.int8-cpu.onnx``): the format ONNX Runtime runs fastest on a CPU. On x86, uint8
activations (asymmetric, range [max(min, -amax), min(max, amax)]) and int8 per-channel weights (U8S8),
with 7-bit weights (``reduce_range``) on x86 CPUs without VNNI, whose U8S8 kernels can saturate; on
ARM, int8 activations (symmetric) and weights. Conv/Add outputs are quantized so ONNX Runtime fuses
whole QLinear chains; ReLUs fold into the preceding op's range; Gemm outputs stay float (the
embedding). The format is :data:`CPU_FORMAT` (QDQ), the faster of QDQ and QOperator as measured
with ``dgnet-edge calib bench`` (figures beside the constant).
"""

from __future__ import annotations

import contextlib
import fnmatch
import inspect
import logging
import platform
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from dgnet_edge.calib.collect import constant_tensors, load_model
from dgnet_edge.calib.ranges import CalibrationRanges, nonnegative_tensors
from dgnet_edge.errors import ExportError, UsageError
from dgnet_edge.export.trt_ops import check_tensorrt_compatible

log = logging.getLogger(__name__)

FLAVOURS = ("tensorrt", "cpu")
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
POOL_OPS = ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool")
# Ops whose outputs count as trunk activations when deciding about pools and residual additions.
_TRUNK_OPS = {"Conv", "ConvTranspose", "Relu", "Add", "BatchNormalization", *POOL_OPS}
# QDQ is the faster CPU format. `dgnet-edge calib bench` on the synth_small ResNet-18 embedder
# (128x64, flip in the graph), ONNX Runtime 1.32, 2-core AMD EPYC with AVX-512 VNNI, medians of 100
# interleaved batch-1 runs on 1 thread: fp32 16.4 ms, U8S8 QDQ 4.9 ms, U8S8 QOperator 5.3 ms; batch 8
# on 2 threads: fp32 180 ms, QDQ 81 ms, QOperator 98 ms.
CPU_FORMAT = "QDQ"


@dataclass(frozen=True)
class QuantSettings:
    """What one INT8 model is: recorded in the manifest entry's details."""

    flavour: str
    activation_type: str  # int8 | uint8
    weight_type: str  # int8
    symmetric_activations: bool
    per_channel: bool
    reduce_range: bool
    format: str  # QDQ | QOperator
    arch: str
    excluded: tuple[str, ...] = ()
    quantized_nodes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def details(self) -> dict[str, Any]:
        return {
            "activation_type": self.activation_type,
            "weight_type": self.weight_type,
            "symmetric_activations": self.symmetric_activations,
            "per_channel_weights": self.per_channel,
            "reduce_range": self.reduce_range,
            "format": self.format,
            "arch": self.arch,
            "excluded_nodes": list(self.excluded),
            "quantized_nodes": self.quantized_nodes,
            **self.extra,
        }


# -- which nodes -------------------------------------------------------------------------------
def with_node_names(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every node named (the quantizer selects nodes by name)."""
    if all(n.name for n in model.graph.node):
        return model
    named = onnx.ModelProto()
    named.CopyFrom(model)
    for i, node in enumerate(named.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    return named


def quantizable_nodes(model: onnx.ModelProto, flavour: str = "tensorrt") -> list[str]:
    """Names of the nodes the INT8 models quantize (before exclusions), in graph order."""
    graph = model.graph
    constant = constant_tensors(graph)
    producer = {o: n for n in graph.node for o in n.output}

    def from_trunk(name: str) -> bool:
        node = producer.get(name)
        return node is not None and node.op_type in _TRUNK_OPS

    chosen: list[str] = []
    for node in graph.node:
        op = node.op_type
        if op in WEIGHTED_OPS:
            ok = len(node.input) > 1 and node.input[1] in constant and node.input[0] not in constant
        elif op in POOL_OPS:
            ok = from_trunk(node.input[0])
        elif op == "Add":
            ok = len(node.input) == 2 and all(i not in constant and from_trunk(i) for i in node.input)
        elif op == "Relu" and flavour == "cpu":
            ok = producer.get(node.input[0]) is not None and producer[node.input[0]].name in set(chosen)
        else:
            ok = False
        if ok:
            chosen.append(node.name)
    return chosen


def resolve_excludes(model: onnx.ModelProto, patterns: Sequence[str], flavour: str = "tensorrt") -> list[str]:
    """Node names matched by ``patterns`` (node or output names, shell wildcards allowed).

    UsageError if a pattern matches none of the quantizable nodes (listing some that exist).
    """
    model = with_node_names(model)
    candidates = quantizable_nodes(model, flavour)
    outputs = {n.name: list(n.output) for n in model.graph.node}
    excluded: list[str] = []
    for pattern in patterns:
        hits = [name for name in candidates if fnmatch.fnmatchcase(name, pattern)
                or any(fnmatch.fnmatchcase(o, pattern) for o in outputs[name])]
        if not hits:
            sample = ", ".join(candidates[:6])
            raise UsageError(
                f"--exclude {pattern!r} matches no quantized node; names look like {sample}, ... "
                f"(`dgnet-edge calib sensitivity` lists them all)"
            )
        excluded.extend(h for h in hits if h not in excluded)
    return excluded


def int8_tensors(model: onnx.ModelProto, exclude: Sequence[str] = ()) -> list[str]:
    """The activations of the quantized region, in graph order: inputs and outputs of the nodes the
    INT8 models quantize (ReLUs included), except Gemm/MatMul outputs (the embedding stays float).

    These are the tensors a TensorRT calibration cache lists: TensorRT gives the others no INT8
    range and keeps their layers in FP16/FP32, the same split as the Q/DQ model.
    """
    model = with_node_names(model)
    excluded = set(resolve_excludes(model, exclude, "cpu")) if exclude else set()
    producer = {o: n for n in model.graph.node for o in n.output}
    chosen = [n for n in quantizable_nodes(model, "cpu") if n not in excluded]
    constant = constant_tensors(model.graph)
    tensors: set[str] = set()
    for node in model.graph.node:
        if node.name not in chosen:
            continue
        if node.op_type == "Relu" and producer[node.input[0]].name not in chosen:
            continue  # a ReLU follows the op it folds into
        names = [node.input[0]] if node.op_type in WEIGHTED_OPS else list(node.input)
        if node.op_type not in ("Gemm", "MatMul"):
            names.extend(node.output[:1])
        tensors.update(n for n in names if n and n not in constant)
    order = [t for n in model.graph.input for t in [n.name]] + [o for n in model.graph.node for o in n.output]
    return [t for t in order if t in tensors]


# -- settings ------------------------------------------------------------------------------------
def has_vnni() -> bool:
    """Whether this x86 CPU has VNNI (AVX512-VNNI or AVX-VNNI); False when it cannot be told."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def cpu_arch(machine: str | None = None) -> str:
    machine = (machine or platform.machine()).lower()
    return "arm" if machine.startswith(("arm", "aarch64")) else "x86"


def settings_for(flavour: str, arch: str | None = None, cpu_format: str = CPU_FORMAT, vnni: bool | None = None) -> QuantSettings:
    if flavour == "tensorrt":
        return QuantSettings("tensorrt", "int8", "int8", True, True, False, "QDQ", "any")
    if flavour != "cpu":
        raise ValueError(f"flavour must be one of {FLAVOURS}, got {flavour!r}")
    arch = arch or cpu_arch()
    if arch == "arm":
        return QuantSettings("cpu", "int8", "int8", True, True, False, cpu_format, "arm")
    vnni = has_vnni() if vnni is None else vnni
    return QuantSettings("cpu", "uint8", "int8", False, True, not vnni, cpu_format, "x86", extra={"vnni": vnni})


# -- writing -----------------------------------------------------------------------------------
class _DropQuantizerNoise(logging.Filter):
    """The quantizer logs advice about its own pre-processing tool, and each copy it makes of a bias
    shared by several convolutions, on the root logger; not ours."""

    NOISE = ("pre-process", "out-of-range for weight", "Created a copy of bias input")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(n in message for n in self.NOISE)


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    root = logging.getLogger()
    noise = _DropQuantizerNoise()
    handlers = list(root.handlers)
    root.addFilter(noise)
    for h in handlers:
        h.addFilter(noise)
    try:
        yield
    finally:
        root.removeFilter(noise)
        for h in handlers:
            h.removeFilter(noise)


def _ort_quantization() -> Any:
    try:
        from onnxruntime import quantization
    except ImportError:
        raise ExportError("INT8 export needs onnxruntime (pip install onnxruntime)") from None
    if "calibration_cache_path" not in inspect.signature(quantization.quantize_static).parameters:
        import onnxruntime

        raise ExportError(
            f"INT8 export needs an onnxruntime whose quantize_static takes precomputed ranges "
            f"(calibration_cache_path, e.g. 1.32); this one is {onnxruntime.__version__}: pip install -U onnxruntime"
        )
    return quantization


def _write_range_cache(path: Path, ranges: CalibrationRanges, model: onnx.ModelProto, settings: QuantSettings) -> None:
    """The ranges in ONNX Runtime's calibration-cache format, [low, high] per tensor."""
    q = _ort_quantization()
    nonneg = nonnegative_tensors(model)
    data = {}
    for name, r in ranges.tensors.items():
        if settings.symmetric_activations:
            low, high = -r.amax, r.amax
        else:
            low, high = r.asymmetric(nonnegative=name in nonneg)
        data[name] = q.TensorData(lowest=np.array(low, np.float32), highest=np.array(high, np.float32))
    q.save_tensors_data(q.TensorsData(q.CalibrationMethod.MinMax, data), path)


def check_coverage(model: onnx.ModelProto, ranges: CalibrationRanges, nodes: Sequence[str]) -> None:
    """ExportError if an activation the quantized nodes read or write has no range."""
    graph = model.graph
    constant = constant_tensors(graph)
    wanted = set(nodes)
    needed = []
    for node in graph.node:
        if node.name in wanted:
            outputs = () if node.op_type in ("Gemm", "MatMul") else node.output[:1]  # the embedding stays float
            for name in (*node.input[:1], *(node.input if node.op_type == "Add" else ()), *outputs):
                if name and name not in constant and name not in ranges.tensors and name not in needed:
                    needed.append(name)
    if needed:
        raise ExportError(
            f"the calibration ranges have no entry for {len(needed)} tensor(s) of this model (e.g. {', '.join(needed[:3])}); "
            "they were made for another model: calibrate again (drop --calib-cache)"
        )


def write_int8_model(
    fp32: str | Path | onnx.ModelProto,
    ranges: CalibrationRanges,
    out_path: str | Path,
    settings: QuantSettings,
    exclude: Sequence[str] = (),
    only: Sequence[str] | None = None,
) -> tuple[onnx.ModelProto, QuantSettings]:
    """Quantize ``fp32`` with ``ranges`` into ``out_path``; returns the model and the settings
    (with the excluded and quantized node lists filled in).

    ``exclude`` are patterns (see :func:`resolve_excludes`); ``only`` restricts quantization to
    these exact node names (per-layer sensitivity).
    """
    q = _ort_quantization()
    model = with_node_names(load_model(fp32))
    excluded = resolve_excludes(model, exclude, settings.flavour) if exclude else []
    nodes = [n for n in quantizable_nodes(model, settings.flavour) if n not in excluded]
    if settings.flavour == "cpu":
        # A ReLU folds into the range of the op before it, so it follows that op's fate.
        producer = {o: n for n in model.graph.node for o in n.output}
        relus = {n.name: producer[n.input[0]].name for n in model.graph.node if n.op_type == "Relu" and n.input[0] in producer}
        if only is not None:
            only = [*only, *(r for r, p in relus.items() if p in only)]
        nodes = [n for n in nodes if relus.get(n, n) in nodes]
    if only is not None:
        nodes = [n for n in nodes if n in set(only)]
    if not nodes:  # the quantizer reads an empty selection as "everything"
        raise UsageError("every quantizable node is excluded: nothing left to quantize")
    check_coverage(model, ranges, nodes)
    op_types = sorted({n.op_type for n in model.graph.node if n.name in set(nodes)})
    node_types = {n.name: n.op_type for n in model.graph.node}
    extra: dict[str, Any] = {
        "ActivationSymmetric": settings.symmetric_activations,
        "WeightSymmetric": True,
        "QuantizeBias": False,
        "ForceQuantizeNoInputCheck": True,
        "DedicatedQDQPair": False,
        "QDQOpTypePerChannelSupportToAxis": {"Conv": 0, "ConvTranspose": 1},
    }
    if settings.flavour == "tensorrt":
        extra["AddQDQPairToWeight"] = True
        extra["OpTypesToExcludeOutputQuantization"] = op_types
        gemm_weights = [n.input[1] for n in model.graph.node if n.name in set(nodes) and n.op_type in ("Gemm", "MatMul")]
        extra["TensorQuantOverrides"] = {w: [{"symmetric": True}] for w in gemm_weights}  # per-tensor
    else:
        extra["OpTypesToExcludeOutputQuantization"] = ["Gemm", "MatMul"]
    qtype = {"int8": q.QuantType.QInt8, "uint8": q.QuantType.QUInt8}
    quant_format = q.QuantFormat.QDQ if settings.format == "QDQ" else q.QuantFormat.QOperator
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="dgnet-calib-") as tmp:
        cache = Path(tmp) / "ranges.json"
        _write_range_cache(cache, ranges, model, settings)
        source = Path(tmp) / "fp32.onnx"
        onnx.save(model, str(source))
        with _quiet_quantizer():
            q.quantize_static(
                str(source),
                str(out_path),
                calibration_data_reader=None,
                quant_format=quant_format,
                op_types_to_quantize=op_types,
                per_channel=settings.per_channel,
                reduce_range=settings.reduce_range,
                activation_type=qtype[settings.activation_type],
                weight_type=qtype[settings.weight_type],
                nodes_to_quantize=nodes,
                calibrate_method=q.CalibrationMethod.MinMax,
                extra_options=extra,
                calibration_cache_path=str(cache),
            )
    written = onnx.load(str(out_path))
    try:
        onnx.checker.check_model(written)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"{out_path.name}: the quantized graph does not validate: {e}") from None
    if settings.flavour == "tensorrt":
        check_tensorrt_compatible(written, out_path.name)
    by_type: dict[str, int] = {}
    for name in nodes:
        by_type[node_types[name]] = by_type.get(node_types[name], 0) + 1
    done = QuantSettings(
        settings.flavour, settings.activation_type, settings.weight_type, settings.symmetric_activations,
        settings.per_channel, settings.reduce_range, settings.format, settings.arch, tuple(excluded), len(nodes),
        {**settings.extra, "quantized_ops": dict(sorted(by_type.items()))},
    )
    return written, done
