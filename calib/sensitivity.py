"""Per-layer INT8 sensitivity: which quantized layers cost the feature the most.

Two ways of asking, both measured as the cosine of the embedding to the fp32 one on a handful of
calibration images (ONNX Runtime, the ranges of ``calibration.json``):

- ``single``: quantize one layer alone; its cost is ``1 - cosine``. Finds the layers that are
  fragile on their own (typically the first convolution, which sees raw pixel statistics).
- ``all-but-one``: quantize every layer except one; its gain is how much the cosine rises over
  the fully quantized model. Finds the layers whose exclusion (``--exclude``) helps most.

``sensitivity.json``::

    {"format": "dgnet-edge-sensitivity", "version": 1, "mode": "single", "flavour": "tensorrt",
     "images": 32, "method": "entropy",
     "baseline": {"cosine_mean": 0.9986, "cosine_min": 0.981},   # every layer quantized
     "layers": [{"node": "/backbone/conv1/Conv", "op_type": "Conv", "cosine_mean": 0.9991,
                 "cosine_min": 0.99, "cost": 0.0009}, ...]}      # most costly first

``cost`` is ``1 - cosine_mean`` (single) or ``cosine_mean - baseline`` (all-but-one): larger
means the layer matters more.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from dgnet_edge.atomic import write_atomic
from dgnet_edge.calib.accuracy import feature_cosine, features_on
from dgnet_edge.calib.qdq import quantizable_nodes, with_node_names, settings_for, write_int8_model
from dgnet_edge.calib.ranges import CalibrationRanges

FORMAT = "dgnet-edge-sensitivity"
VERSION = 1
FILE_NAME = "sensitivity.json"
MODES = ("single", "all-but-one")


@dataclass
class LayerCost:
    node: str
    op_type: str
    cosine_mean: float
    cosine_min: float
    cost: float


@dataclass
class SensitivityReport:
    mode: str
    flavour: str
    images: int
    method: str
    baseline: dict[str, float]
    layers: list[LayerCost] = field(default_factory=list)

    def top(self, n: int) -> list[LayerCost]:
        return self.layers[:n]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, **asdict(self)}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        write_atomic(path, (json.dumps(self.to_dict(), indent=1) + "\n").encode())
        return path


def layer_sensitivity(
    fp32: str | Path,
    ranges: CalibrationRanges,
    feeds: Sequence[dict[str, np.ndarray]],
    mode: str = "single",
    flavour: str = "tensorrt",
    exclude: Sequence[str] = (),
    layers: Sequence[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> SensitivityReport:
    """Cost of each quantizable layer (see the module docstring), most costly first.

    Args:
        fp32: the fp32 embedder.
        ranges: calibration ranges.
        feeds: image batches (input dicts) to compare on.
        mode: single | all-but-one.
        flavour: tensorrt (symmetric int8, the TensorRT Q/DQ model) | cpu (the ONNX Runtime model).
        exclude: nodes kept float throughout (as in the export).
        layers: measure only these nodes (default: every quantized node).
        progress: called with ("sensitivity", done, total).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    fp32 = Path(fp32)
    model = with_node_names(onnx.load(str(fp32)))
    settings = settings_for(flavour)
    candidates = quantizable_nodes(model, "tensorrt")  # in the cpu flavour ReLUs follow their producer
    op_types = {n.name: n.op_type for n in model.graph.node}
    reference = features_on(fp32, feeds)
    images = sum(len(next(iter(f.values()))) for f in feeds)
    with tempfile.TemporaryDirectory(prefix="dgnet-sensitivity-") as tmp:
        path = Path(tmp) / "q.onnx"
        _, done = write_int8_model(model, ranges, path, settings, exclude)
        kept = [n for n in candidates if n not in done.excluded]
        measured = kept if layers is None else [n for n in kept if n in set(layers)]
        base_mean, base_min = feature_cosine(reference, features_on(path, feeds))
        layers = []
        for i, node in enumerate(measured):
            if progress is not None:
                progress("sensitivity", i, len(measured))
            if mode == "single":
                write_int8_model(model, ranges, path, settings, only=[node])
            else:
                write_int8_model(model, ranges, path, settings, only=[n for n in kept if n != node])
            mean, low = feature_cosine(reference, features_on(path, feeds))
            cost = 1.0 - mean if mode == "single" else mean - base_mean
            layers.append(LayerCost(node, op_types[node], mean, low, cost))
        if progress is not None:
            progress("sensitivity", len(measured), len(measured))
    layers.sort(key=lambda c: c.cost, reverse=True)
    return SensitivityReport(mode, flavour, images, ranges.method, {"cosine_mean": base_mean, "cosine_min": base_min}, layers)
