"""torch module -> ONNX file with a dynamic batch axis, checked for TensorRT's parser.

The TorchScript-based exporter (``dynamo=False``) is used: for these convolutional graphs it
emits plain, static-rank ONNX that every TensorRT version from 8.5 parses, in well under a second.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import onnx
import torch

from dgnet_edge.errors import ExportError
from dgnet_edge.runtime.base import TensorSpec
from dgnet_edge.export.trt_ops import check_tensorrt_compatible

DEFAULT_OPSET = 17  # the highest TensorRT 8.5/8.6 parse
_ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.INT64: "int64",
}


def graph_specs(values: Sequence[onnx.ValueInfoProto]) -> tuple[TensorSpec, ...]:
    """TensorSpecs of graph inputs or outputs (symbolic dimensions as their names)."""
    specs = []
    for v in values:
        t = v.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim)
        specs.append(TensorSpec(v.name, shape, _ONNX_DTYPES.get(t.elem_type, str(t.elem_type))))
    return tuple(specs)


def _fix_output_dims(model: onnx.ModelProto, module: torch.nn.Module, example_inputs: tuple[torch.Tensor, ...]) -> None:
    """Write the concrete non-batch output sizes into the graph (the exporter leaves some symbolic)."""
    with torch.no_grad():
        out = module(*example_inputs)
    out = out if isinstance(out, (tuple, list)) else (out,)
    for value, tensor in zip(model.graph.output, out):
        dims = value.type.tensor_type.shape.dim
        for axis in range(1, len(dims)):
            dims[axis].Clear()
            dims[axis].dim_value = tensor.shape[axis]


def fold_constants(path: Path) -> None:
    """Fold constant subgraphs into initializers (ONNX Runtime's basic, standard-ops-only level).

    The exporter leaves reflection-pad amounts as small subgraphs and instance-norm scales as
    Constant nodes; TensorRT 8.5's parser wants the latter as initializers.
    """
    import onnxruntime as ort

    folded = path.with_name(path.stem + ".folded.onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(folded)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    folded.replace(path)


def inline_shared_initializers(model: onnx.ModelProto) -> None:
    """Give every Identity of an initializer its own initializer (in place).

    The exporter stores identical constants once and feeds the other uses through Identity nodes
    (at initial weights every folded BatchNorm bias is zero). Quantizers and TensorRT's parser
    want a convolution's weight and bias as initializers, not computed values.
    """
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    inline = [n for n in graph.node if n.op_type == "Identity" and n.input[0] in initializers]
    for node in inline:
        copy = onnx.TensorProto()
        copy.CopyFrom(initializers[node.input[0]])
        copy.name = node.output[0]
        graph.initializer.append(copy)
        graph.node.remove(node)


def export_onnx(
    module: torch.nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    path: str | Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    opset: int = DEFAULT_OPSET,
    fold: bool = False,
) -> onnx.ModelProto:
    """Export ``module`` (eval mode) with axis 0 of every input and output named ``batch``
    (``fold``: then fold constant subgraphs); ExportError if the graph is invalid or uses
    operators TensorRT cannot parse."""
    path = Path(path)
    module = module.eval()
    dynamic_axes = {name: {0: "batch"} for name in (*input_names, *output_names)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter warns about its own deprecation and about tracing
        torch.onnx.export(
            module,
            example_inputs,
            str(path),
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    if fold:
        fold_constants(path)
    model = onnx.load(str(path))
    inline_shared_initializers(model)
    _fix_output_dims(model, module, example_inputs)
    onnx.save(model, str(path))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"{path.name}: the exported graph does not validate: {e}") from None
    check_tensorrt_compatible(model, path.name)
    return model
