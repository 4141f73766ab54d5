"""The calibration pass: run the fp32 model once over the calibration batches and histogram every
activation.

Every float tensor the graph computes (not weights, not shape arithmetic) is added as an extra
graph output of an in-memory copy of the model, and one ONNX Runtime session runs the batches.
After each batch the outputs are folded into one :class:`~dgnet_edge.calib.histogram.AbsHistogram`
per tensor and dropped, so memory holds one batch's activations plus the histograms. The batch
size for a memory budget follows from the activation sizes that shape inference gives
(:func:`batch_size_for`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import onnx

from dgnet_edge.calib.histogram import AbsHistogram
from dgnet_edge.runtime.onnxrt import import_ort

log = logging.getLogger(__name__)

_FLOATS = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes of activations per calibration batch


def load_model(model: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))


def constant_tensors(graph: onnx.GraphProto) -> set[str]:
    """Tensors computed from initializers and Constant nodes only (weights, shapes, indices)."""
    constant = {t.name for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" or (node.input and all(not name or name in constant for name in node.input)):
            constant.update(node.output)
    return constant


def activation_tensors(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """Float tensors the graph computes from its inputs, in graph order, with their value info.

    The graph inputs that are float count (their range is the image range); outputs of nodes fed
    only by constants do not.
    """
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    infos = {v.name: v for v in (*graph.value_info, *graph.output, *graph.input)}
    constant = constant_tensors(graph)
    names: list[str] = [v.name for v in graph.input if v.name not in constant]
    for node in graph.node:
        names.extend(o for o in node.output if o and o not in constant)
    result = {}
    for name in names:
        info = infos.get(name)
        if info is not None and info.type.tensor_type.elem_type in _FLOATS:
            result[name] = info
    return result


def per_sample_bytes(model: onnx.ModelProto) -> int:
    """Bytes of all activation tensors of one input sample (batch dimension taken as 1)."""
    total = 0
    for info in activation_tensors(model).values():
        dims = info.type.tensor_type.shape.dim
        size = 1
        for i, d in enumerate(dims):
            if i == 0:
                continue
            size *= d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
        total += 4 * size
    return total


def batch_size_for(model: onnx.ModelProto, budget: int = DEFAULT_MEMORY_BUDGET, largest: int = 32) -> int:
    """The largest batch (<= ``largest``) whose activations fit in ``budget`` bytes."""
    # Tensors after the flip's concatenation hold two rows per image; counting them once per
    # input sample is what shape inference can see, so halve the budget to stay on the safe side.
    return max(1, min(largest, int(budget // 2 // max(1, per_sample_bytes(model)))))


def collect_histograms(
    model: str | Path | onnx.ModelProto,
    feeds: Iterable[dict[str, np.ndarray]],
    tensors: Iterable[str] | None = None,
    on_batch: Callable[[int], None] | None = None,
    threads: int | None = None,
) -> dict[str, AbsHistogram]:
    """One pass of the fp32 ``model`` over ``feeds`` (any iterable of input dicts).

    Args:
        model: the fp32 ONNX model (path or proto); it is not modified.
        feeds: batches, each a dict of input name -> array.
        tensors: tensors to histogram (default: :func:`activation_tensors`).
        on_batch: called with the number of samples after each batch (progress).
        threads: ONNX Runtime intra-op threads (default: all cores).

    Returns:
        tensor name -> histogram, in graph order.
    """
    proto = load_model(model)
    available = activation_tensors(proto)
    wanted = list(available) if tensors is None else list(tensors)
    missing = [t for t in wanted if t not in available]
    if missing:
        raise ValueError(f"not float activations of the model: {', '.join(missing[:5])}")
    augmented = onnx.ModelProto()
    augmented.CopyFrom(proto)
    outputs = {o.name for o in augmented.graph.output}
    for name in wanted:
        if name not in outputs:
            augmented.graph.output.append(available[name])
    ort = import_ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(augmented.SerializeToString(), options, providers=["CPUExecutionProvider"])
    histograms = {name: AbsHistogram() for name in wanted}
    batches = 0
    for feed in feeds:
        values = session.run(wanted, feed)
        for name, value in zip(wanted, values):
            histograms[name].update(value)
        del values
        batches += 1
        if on_batch is not None:
            on_batch(len(next(iter(feed.values()))))
    if batches == 0:
        raise ValueError("no calibration batches: the calibration set is empty")
    log.debug("histogrammed %d tensors over %d batches", len(wanted), batches)
    return histograms
