"""Checking an ONNX graph against the operators TensorRT's ONNX parser supports.

``trt_onnx_ops.json`` (beside this file) lists, per TensorRT version, the operators marked
supported in onnx/onnx-tensorrt's docs/operators.md at the commit each TensorRT release pins, with
the parser's restrictions; its ``source`` fields name the commits. No GPU is needed to know
whether an exported graph will parse.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import onnx

from dgnet_edge.errors import ExportError

MIN_TENSORRT = "8.5"
# Highest ONNX opset the parser of each TensorRT version documents.
MAX_OPSET = {"8.5": 17, "8.6": 17}


@lru_cache(maxsize=None)
def operator_table() -> dict[str, Any]:
    return json.loads((Path(__file__).parent / "trt_onnx_ops.json").read_text())  # package data, beside this file


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def tensorrt_versions(minimum: str = MIN_TENSORRT) -> list[str]:
    versions = operator_table()["versions"]
    return sorted((v for v in versions if _version_key(v) >= _version_key(minimum)), key=_version_key)


def graph_ops(model: onnx.ModelProto) -> set[str]:
    """Operator types of the graph, including Q/DQ nodes; an operator of another domain than the
    standard one is named ``domain:op`` (TensorRT's parser knows none of those)."""
    return {n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}" for n in model.graph.node}


def unsupported_ops(model: onnx.ModelProto, minimum: str = MIN_TENSORRT) -> dict[str, list[str]]:
    """Per TensorRT version >= ``minimum``: the graph's operators its parser does not list."""
    ops = graph_ops(model)
    table = operator_table()["versions"]
    return {v: sorted(ops - set(table[v]["supported"])) for v in tensorrt_versions(minimum) if ops - set(table[v]["supported"])}


def check_tensorrt_compatible(model: onnx.ModelProto, what: str, minimum: str = MIN_TENSORRT) -> None:
    """ExportError if any TensorRT version >= ``minimum`` could not parse the graph's operators or opset."""
    problems = [f"TensorRT {v}: {', '.join(ops)}" for v, ops in unsupported_ops(model, minimum).items()]
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    for version, limit in MAX_OPSET.items():
        if _version_key(version) >= _version_key(minimum) and opset > limit:
            problems.append(f"TensorRT {version}: opset {opset} > {limit}")
    if problems:
        raise ExportError(f"{what}: operators TensorRT's ONNX parser does not support: " + "; ".join(problems))
