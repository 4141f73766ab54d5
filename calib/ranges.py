"""Calibration ranges and their file, ``calibration.json``: the one source every INT8 artifact is made from.

``calibration.json`` (UTF-8 JSON, written atomically)::

    {
      "format": "dgnet-edge-calibration",
      "version": 1,
      "method": "entropy",            # entropy | percentile | minmax
      "percentile": null,             # the percentile, for method "percentile"
      "samples": 512,                 # images in the pass (each also flipped inside the graph)
      "source": {                     # provenance of the images
        "kind": "dataset",            # dataset | folder | tensorrt-cache | calibration-json
        "root": "/abs/path", "dataset": "market1501", "split": "train",
        "seed": 0, "available": 12936, "cameras": {"0": 86, "1": 86, ...}
      },
      "model": {"file": "embedder.onnx", "sha256": "..."},     # the fp32 graph that was run
      "input": {"name": "images", "height": 256, "width": 128, "layout": "NHWC", "dtype": "float32"},
      "toolkit_version": "0.1.0",
      "tensors": {                    # every float activation of the fp32 graph, in graph order
        "/backbone/conv1/Conv_output_0": {"amax": 9.8958, "min": -10.692, "max": 9.962},
        ...
      }
    }

``amax`` is the range of symmetric int8 quantization (values clipped to [-amax, amax], scale
``amax / 127``), chosen by ``method``; ``min`` and ``max`` are the extremes seen, which the
uint8 (asymmetric) CPU model uses: its range is [max(min, -amax), min(max, amax)]. Tensor names are
the ONNX value names of the fp32 model, which are also the names TensorRT gives its network tensors.
Ranges read back from a TensorRT cache have no ``min``/``max`` (``null``); tensors that are
non-negative by construction (ReLU outputs and what only pools or reshapes them) then get [0, amax].
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from dgnet_edge import __version__
from dgnet_edge.atomic import write_atomic
from dgnet_edge.calib.histogram import DEFAULT_PERCENTILE, METHODS, AbsHistogram, amax_for
from dgnet_edge.errors import ExportError

FORMAT = "dgnet-edge-calibration"
VERSION = 1
FILE_NAME = "calibration.json"

# Ops whose output is non-negative when their (first) input is.
_SIGN_PRESERVING = {"MaxPool", "GlobalMaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape", "Squeeze",
                    "Unsqueeze", "Transpose", "Slice", "Identity", "Cast", "Concat", "Resize", "Add"}


@dataclass(frozen=True)
class TensorRange:
    """The calibrated range of one tensor."""

    amax: float
    min: float | None = None
    max: float | None = None

    def asymmetric(self, nonnegative: bool = False) -> tuple[float, float]:
        """[low, high] for uint8 quantization: the seen extremes clipped to [-amax, amax]."""
        low = -self.amax if self.min is None else max(self.min, -self.amax)
        high = self.amax if self.max is None else min(self.max, self.amax)
        if nonnegative:
            low = max(low, 0.0)
        return min(low, 0.0), max(high, 0.0)

    def to_dict(self) -> dict[str, float | None]:
        return {"amax": self.amax, "min": self.min, "max": self.max}


@dataclass(frozen=True)
class CalibrationRanges:
    """Per-tensor ranges plus how they were made."""

    method: str
    tensors: dict[str, TensorRange]
    samples: int
    source: dict[str, Any] = field(default_factory=dict)
    percentile: float | None = None
    model: dict[str, Any] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=dict)
    toolkit_version: str = __version__

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ExportError(f"unknown calibration method {self.method!r}: expected one of {', '.join(METHODS)}")

    def amax(self) -> dict[str, float]:
        return {name: r.amax for name, r in self.tensors.items()}

    def scales(self) -> dict[str, np.float32]:
        """Symmetric int8 scale per tensor, amax / 127 in float32 (what the Q/DQ model and the cache hold)."""
        return {name: int8_scale(r.amax) for name, r in self.tensors.items()}

    def with_source(self, **source: Any) -> CalibrationRanges:
        return replace(self, source={**self.source, **source})

    # -- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "method": self.method,
            "percentile": self.percentile,
            "samples": self.samples,
            "source": self.source,
            "model": self.model,
            "input": self.input,
            "toolkit_version": self.toolkit_version,
            "tensors": {name: r.to_dict() for name, r in self.tensors.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = FILE_NAME) -> CalibrationRanges:
        if data.get("format") != FORMAT:
            raise ExportError(f"{where}: not a dgnet-edge calibration file (no \"format\": \"{FORMAT}\")")
        if data.get("version") != VERSION:
            raise ExportError(f"{where}: calibration file version {data.get('version')} is not supported (expected {VERSION})")
        try:
            tensors = {
                name: TensorRange(float(t["amax"]), _optional_float(t.get("min")), _optional_float(t.get("max")))
                for name, t in data["tensors"].items()
            }
            return cls(
                method=data["method"], tensors=tensors, samples=int(data["samples"]), source=dict(data.get("source") or {}),
                percentile=data.get("percentile"), model=dict(data.get("model") or {}), input=dict(data.get("input") or {}),
                toolkit_version=data.get("toolkit_version", ""),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ExportError(f"{where}: malformed calibration file ({type(e).__name__}: {e})") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        write_atomic(path, (json.dumps(self.to_dict(), indent=1) + "\n").encode())
        return path


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def int8_scale(amax: float) -> np.float32:
    """amax / 127 rounded once to float32, the way ONNX Runtime's quantizer rounds it."""
    return np.float32(np.float64(amax) / 127.0)


def load_ranges(path: str | Path) -> CalibrationRanges:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise ExportError(f"{path}: cannot read the calibration file ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path}: not a dgnet-edge calibration file")
    return CalibrationRanges.from_dict(data, str(path))


def ranges_from_histograms(
    histograms: Mapping[str, AbsHistogram],
    method: str,
    samples: int,
    percentile: float = DEFAULT_PERCENTILE,
    **metadata: Any,
) -> CalibrationRanges:
    """Turn the pass's histograms into ranges with ``method``; a tensor that was always 0 gets amax 0."""
    if method not in METHODS:
        raise ExportError(f"unknown calibration method {method!r}: expected one of {', '.join(METHODS)}")
    tensors = {}
    for name, hist in histograms.items():
        amax = float(np.float32(amax_for(hist, method, percentile)))
        low = float(hist.min) if hist.count else 0.0
        high = float(hist.max) if hist.count else 0.0
        tensors[name] = TensorRange(amax, low, high)
    return CalibrationRanges(method, tensors, samples, percentile=percentile if method == "percentile" else None, **metadata)


def nonnegative_tensors(model: onnx.ModelProto) -> set[str]:
    """Tensors that cannot be negative by construction: ReLU outputs and what only pools, reshapes,
    slices, concatenates or adds such tensors."""
    known: set[str] = set()
    for node in model.graph.node:
        inputs = [i for i in node.input if i]
        if node.op_type == "Relu" or (
            node.op_type in _SIGN_PRESERVING
            and inputs
            and (all(i in known for i in inputs) if node.op_type in ("Concat", "Add") else inputs[0] in known)
        ):
            known.update(o for o in node.output if o)
    return known
