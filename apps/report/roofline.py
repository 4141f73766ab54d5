"""The machine's sustained matrix-multiply rates, measured with the runtime the models use.

ONNX Runtime runs three one-node graphs of square size n (A: n x n input, B: n x n constant
weights, so ORT pre-packs B as it does a model's weights):

- ``fp32``: MatMul in float32 (MLAS SGEMM);
- ``int8-u8s8``: DequantizeLinear(uint8 A) x DequantizeLinear(int8 per-column B) -> QuantizeLinear,
  which ORT's QDQ optimiser fuses into one QLinearMatMul: the U8S8 kernels that run the CPU int8
  model (uint8 activations, int8 weights);
- ``int8-s8s8``: the same with int8 activations, as the TensorRT Q/DQ model runs under ORT.

Each is timed single-threaded and with all threads at several sizes; the peak is the best rate
(MACs per second of the fastest run) over sizes. The best run rather than the median: the peak is
what the kernels can reach on this machine, and on a shared machine the median mostly measures the
neighbours.

A row's *fraction of peak* is ``2 * MACs / latency / (2 * peak MAC/s)``: the share of the matching
peak its graph's counted MACs reach at the measured latency. fp32 rows match the fp32 peak, and so
do fp16 rows (ORT's CPU provider computes fp16 convolutions in fp32 behind casts); int8 rows match
the *int8 peak*, the best of the two int8 kernel families: the machine's int8 capability through
ORT, whichever activation type a model uses (on x86 with VNNI U8S8 is the fast one, and an S8S8
model such as the TensorRT Q/DQ one shows a low fraction because ORT runs it on slower kernels). Pre-processing, normalisation and element-wise ops are in the
latency but not in the MACs, so the fraction is a lower bound on the GEMM efficiency.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

KINDS = ("fp32", "int8-u8s8", "int8-s8s8")
INT8_KINDS = ("int8-u8s8", "int8-s8s8")
DEFAULT_SIZES = (256, 512, 1024)


@dataclass(frozen=True)
class PeakMeasurement:
    kind: str
    threads: int
    size: int
    best_ms: float
    median_ms: float
    runs: int

    @property
    def macs(self) -> int:
        return self.size**3

    @property
    def gmacs(self) -> float:
        """Best rate, in 10^9 MACs per second."""
        return self.macs / (self.best_ms / 1000) / 1e9

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "macs": self.macs, "gmacs": self.gmacs}


@dataclass
class Roofline:
    measurements: list[PeakMeasurement]
    threads_all: int

    def peak(self, kind: str, threads: int | None = None) -> float | None:
        """Best rate in MAC/s for ``kind`` (or ``"int8"``: the best int8 kind) at ``threads``
        (default: all threads)."""
        threads = threads or self.threads_all
        kinds = INT8_KINDS if kind == "int8" else (kind,)
        rates = [m.gmacs * 1e9 for m in self.measurements if m.kind in kinds and m.threads == threads]
        return max(rates) if rates else None

    def to_dict(self) -> dict[str, Any]:
        kinds = [k for k in KINDS if any(m.kind == k for m in self.measurements)]
        if any(k in INT8_KINDS for k in kinds):
            kinds.append("int8")
        peaks = {
            kind: {"single_thread_gmacs": (self.peak(kind, 1) or 0) / 1e9, "all_threads_gmacs": (self.peak(kind) or 0) / 1e9}
            for kind in kinds
        }
        return {"runtime": "onnxruntime", "threads_all": self.threads_all, "peaks": peaks,
                "measurements": [m.to_dict() for m in self.measurements]}


def _graph(kind: str, n: int, seed: int = 0) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    opset = [helper.make_opsetid("", 17)]
    if kind == "fp32":
        b = numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "B")
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["A", "B"], ["C"])], "fp32_matmul",
            [helper.make_tensor_value_info("A", TensorProto.FLOAT, [n, n])],
            [helper.make_tensor_value_info("C", TensorProto.FLOAT, [n, n])], [b],
        )
        return helper.make_model(graph, opset_imports=opset)
    act_type, act_np, zero = (TensorProto.UINT8, np.uint8, 128) if kind == "int8-u8s8" else (TensorProto.INT8, np.int8, 0)
    inits = [
        numpy_helper.from_array(rng.integers(-127, 128, (n, n)).astype(np.int8), "W"),
        numpy_helper.from_array(np.array(0.02, np.float32), "a_scale"),
        numpy_helper.from_array(np.array(zero, act_np), "a_zero"),
        numpy_helper.from_array(np.full(n, 0.01, np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(n, np.int8), "w_zero"),
        numpy_helper.from_array(np.array(0.5, np.float32), "c_scale"),
        numpy_helper.from_array(np.array(zero, act_np), "c_zero"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["A", "a_scale", "a_zero"], ["A_f"]),
        helper.make_node("DequantizeLinear", ["W", "w_scale", "w_zero"], ["W_f"], axis=1),
        helper.make_node("MatMul", ["A_f", "W_f"], ["C_f"]),
        helper.make_node("QuantizeLinear", ["C_f", "c_scale", "c_zero"], ["C"]),
    ]
    graph = helper.make_graph(nodes, f"{kind}_matmul", [helper.make_tensor_value_info("A", act_type, [n, n])],
                              [helper.make_tensor_value_info("C", act_type, [n, n])], inits)
    return helper.make_model(graph, opset_imports=opset)


def _input(kind: str, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "fp32":
        return rng.standard_normal((n, n)).astype(np.float32)
    if kind == "int8-u8s8":
        return rng.integers(0, 256, (n, n)).astype(np.uint8)
    return rng.integers(-128, 128, (n, n)).astype(np.int8)


def _session(model: Any, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def measure_one(kind: str, n: int, threads: int, runs: int = 8, warmup: int = 2) -> PeakMeasurement:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    session = _session(_graph(kind, n), threads)
    feed = {"A": _input(kind, n)}
    for _ in range(warmup):
        session.run(None, feed)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        seconds.append(time.perf_counter() - start)
    return PeakMeasurement(kind, threads, n, 1000 * min(seconds), 1000 * float(np.median(seconds)), runs)


def measure_roofline(
    kinds: Sequence[str] = KINDS,
    sizes: Sequence[int] = DEFAULT_SIZES,
    threads: Sequence[int] | None = None,
    runs: int = 8,
    warmup: int = 2,
    on_step: Any = None,
) -> Roofline:
    """Peaks of ``kinds`` at ``sizes`` with 1 thread and with all threads (ORT's default)."""
    all_threads = os.cpu_count() or 1
    thread_counts = list(threads) if threads else sorted({1, all_threads})
    steps = [(k, t, n) for k in kinds for t in thread_counts for n in sizes]
    measurements = []
    for i, (kind, t, n) in enumerate(steps):
        measurements.append(measure_one(kind, n, t, runs, warmup))
        if on_step is not None:
            on_step(i + 1, len(steps))
    return Roofline(measurements, max(thread_counts))


def peak_kind(backend: str, precision: str) -> str | None:
    """The roofline peak a row is measured against (fp32 | int8), or None (TensorRT runs on the GPU)."""
    if backend == "tensorrt":
        return None
    if precision in ("fp32", "fp16"):
        return "fp32"
    if precision.startswith("int8"):
        return "int8"
    return None


def fraction_of_peak(macs: int, seconds: float, peak_macs_per_s: float | None) -> float | None:
    """(2 * macs / seconds) / (2 * peak): the share of the peak a call reaches."""
    if not peak_macs_per_s or seconds <= 0 or macs <= 0:
        return None
    return macs / seconds / peak_macs_per_s
