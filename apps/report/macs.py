"""Multiply-accumulates of an ONNX graph, counted from its operators and inferred shapes.

Counted: Conv, ConvTranspose, Gemm and MatMul, and their integer forms (ConvInteger, QLinearConv,
MatMulInteger, QLinearMatMul, com.microsoft MatMulIntegerToFloat), which hold nearly all of a
CNN's arithmetic. Normalisation, activations, pooling and element-wise ops are left out (they are
memory-bound; a roofline of multiply rates is about the counted ops). One MAC is one multiply and
one add: FLOPs = 2 x MACs.

- Conv: ``prod(output shape) * prod(weight shape[1:])`` = N*C_out*H_out*W_out * (C_in/group)*kH*kW.
- ConvTranspose: ``prod(input shape) * prod(weight shape[1:])`` = N*C_in*H_in*W_in * (C_out/group)*kH*kW.
- Gemm / MatMul: ``prod(output shape) * K``.

Shapes come from ONNX shape inference after the dynamic batch dimension is fixed to ``batch``, so
everything the graph does is counted as it runs: the embedder of a flip export concatenates each
image with its mirror before the trunk, so the trunk and heads run on ``2 * batch`` images and the
count is twice that of one pass (:attr:`MacCount.per_image` is per input image, flip included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# op type -> index of its weight input (None: the second matrix operand, read from shapes).
_CONV_WEIGHT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
_MATMUL_A = {"MatMul": 0, "MatMulInteger": 0, "QLinearMatMul": 0, "MatMulIntegerToFloat": 0, "FusedMatMul": 0}


@dataclass
class MacCount:
    """MACs of one call of a graph at ``batch`` input images."""

    batch: int
    total: int = 0
    by_op: dict[str, int] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)  # counted ops whose shapes stayed unknown

    @property
    def per_image(self) -> float:
        return self.total / self.batch

    def add(self, op: str, macs: int) -> None:
        self.total += macs
        self.by_op[op] = self.by_op.get(op, 0) + macs

    def to_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "total": self.total, "per_image": self.per_image, "by_op": dict(self.by_op),
                "unresolved": list(self.unresolved)}


def _load(model: Any) -> Any:
    import onnx

    if isinstance(model, (str, Path)):
        return onnx.load(str(model))
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _fix_batch(model: Any, batch: int) -> None:
    """Set every symbolic (or unknown) leading input dimension to ``batch``."""
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = batch


def _shapes(model: Any) -> dict[str, tuple[int, ...] | None]:
    """Known shapes by tensor name: inferred values, graph inputs/outputs and initializers."""
    shapes: dict[str, tuple[int, ...] | None] = {}
    for value in (*model.graph.input, *model.graph.value_info, *model.graph.output):
        t = value.type.tensor_type
        if not t.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        shapes[value.name] = None if any(d is None for d in dims) else tuple(dims)
    for tensor in model.graph.initializer:
        shapes[tensor.name] = tuple(tensor.dims)
    for node in model.graph.node:  # Constant nodes (e.g. folded weights)
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = tuple(attr.t.dims)
    return shapes


def _attr(node: Any, name: str, default: int = 0) -> int:
    for attr in node.attribute:
        if attr.name == name:
            return attr.i
    return default


def _node_macs(node: Any, shapes: dict[str, tuple[int, ...] | None]) -> int | None:
    """MACs of one node, 0 for ops that are not counted, None when a needed shape is unknown."""
    op = node.op_type

    def shape(index: int, outputs: bool = False) -> tuple[int, ...] | None:
        names = node.output if outputs else node.input
        return shapes.get(names[index]) if index < len(names) and names[index] else None

    if op in _CONV_WEIGHT:
        out, weight = shape(0, outputs=True), shape(_CONV_WEIGHT[op])
        if out is None or weight is None:
            return None
        return math.prod(out) * math.prod(weight[1:])
    if op == "ConvTranspose":
        x, weight = shape(0), shape(1)
        if x is None or weight is None:
            return None
        return math.prod(x) * math.prod(weight[1:])
    if op == "Gemm":
        a, out = shape(0), shape(0, outputs=True)
        if a is None or out is None:
            return None
        k = a[0] if _attr(node, "transA") else a[-1]
        return math.prod(out) * k
    if op in _MATMUL_A:
        a, out = shape(_MATMUL_A[op]), shape(0, outputs=True)
        if a is None or out is None:
            return None
        k = a[-1]
        return math.prod(out) * k
    return 0


def count_macs(model: Any, batch: int = 1) -> MacCount:
    """MACs of one call of ``model`` (a path or a ModelProto) on ``batch`` inputs."""
    from onnx import shape_inference

    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    proto = _load(model)
    _fix_batch(proto, batch)
    inferred = shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
    shapes = _shapes(inferred)
    count = MacCount(batch)
    for node in inferred.graph.node:
        macs = _node_macs(node, shapes)
        if macs is None:
            count.unresolved.append(node.name or node.op_type)
        elif macs:
            count.add(node.op_type, macs)
    return count
