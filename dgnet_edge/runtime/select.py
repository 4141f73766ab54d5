"""Choosing a backend and a model file of an export folder for one role, or a runner for one model
file (the camera app's detectors).

``backend``:
  ``auto``         a TensorRT engine when one is usable here (TensorRT and pycuda installed, a GPU,
                   an engine in the manifest built for this GPU and TensorRT version), else
                   ONNX Runtime;
  ``tensorrt``     the engine for ``precision`` (fp32 | fp16 | int8), or an error saying why not;
  ``onnxruntime``  the ONNX model for ``precision``: fp32, fp16, int8 (the CPU int8 model) or
                   int8-qdq (the TensorRT Q/DQ model, run by ONNX Runtime).
``precision="auto"``: TensorRT takes its best engine (int8, then fp16, then fp32); ONNX Runtime
takes the CPU int8 model when the export has one, else fp32.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dgnet_edge.errors import BackendUnavailableError, ExportError, UsageError
from dgnet_edge.manifest import Manifest, verified_path
from dgnet_edge.runtime.base import Runner
from dgnet_edge.runtime.onnxrt import OnnxRuntimeRunner, SessionFromOnnx

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "onnxruntime")
ORT_PRECISIONS = {"fp32": "fp32", "fp16": "fp16", "int8": "int8-cpu", "int8-cpu": "int8-cpu", "int8-qdq": "int8-qdq"}
TRT_PRECISIONS = ("int8", "fp16", "fp32")
PRECISIONS = ("auto", *ORT_PRECISIONS)  # what any backend may be asked for
ENGINE_SUFFIXES = (".engine", ".trt", ".plan")  # TensorRT engine files; anything else is ONNX


def check_precision(precision: str) -> str:
    """``precision`` when some backend has it; a UsageError otherwise (before ``auto`` falls back)."""
    if precision not in PRECISIONS:
        raise UsageError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return precision


def onnxruntime_runner(folder: Path, manifest: Manifest, role: str, precision: str, device: str, memory_arena: bool = True,
                       spinning: bool = True) -> Runner:
    if precision == "auto":
        precision = "int8" if manifest.has_model(role, "int8-cpu") else "fp32"
    if precision not in ORT_PRECISIONS:
        raise UsageError(f"precision {precision!r} for ONNX Runtime: expected auto or one of {', '.join(ORT_PRECISIONS)}")
    entry = manifest.model(role, ORT_PRECISIONS[precision])
    path = verified_path(folder, entry)
    ort_device = "cpu" if device in ("auto", "cpu") and entry.precision == "int8-cpu" else device
    return OnnxRuntimeRunner(SessionFromOnnx(path, device=ort_device, memory_arena=memory_arena, spinning=spinning), name=f"onnxruntime {entry.precision}")


def tensorrt_runner(folder: Path, manifest: Manifest, role: str, precision: str) -> Runner:
    from dgnet_edge.runtime.tensorrt import EngineFromExport, TensorRTRunner, current_device, find_engine, import_tensorrt

    trt = import_tensorrt()
    here = current_device(trt)
    wanted = TRT_PRECISIONS if precision == "auto" else (precision,)
    if precision != "auto" and precision not in TRT_PRECISIONS:
        raise UsageError(f"precision {precision!r} for TensorRT: expected auto or one of {', '.join(TRT_PRECISIONS)}")
    errors = []
    for p in wanted:
        try:
            find_engine(manifest, role, p, here, folder=folder)
        except (ExportError, BackendUnavailableError) as e:
            errors.append(str(e))
            continue
        return TensorRTRunner(EngineFromExport(folder, role, p), name=f"tensorrt {p}")
    raise BackendUnavailableError("TensorRT: " + "; ".join(errors))


_FALLBACKS_TOLD: set[str] = set()


def open_runner(
    folder: str | Path, manifest: Manifest, role: str, backend: str = "auto", precision: str = "auto", device: str = "auto",
    memory_arena: bool = True, spinning: bool = True,
) -> Runner:
    """An inactive runner for ``role`` of the export at ``folder`` (``memory_arena``, ``spinning``: see
    :class:`~dgnet_edge.runtime.onnxrt.SessionFromOnnx`; ONNX Runtime only)."""
    folder = Path(folder)
    if backend not in BACKENDS:
        raise UsageError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    check_precision(precision)
    if backend == "onnxruntime":
        return onnxruntime_runner(folder, manifest, role, precision, device, memory_arena, spinning)
    if backend == "tensorrt":
        return tensorrt_runner(folder, manifest, role, precision)
    try:
        return tensorrt_runner(folder, manifest, role, precision)
    except (BackendUnavailableError, UsageError) as e:
        if str(e) not in _FALLBACKS_TOLD:  # once per process and reason, not once per model opened
            _FALLBACKS_TOLD.add(str(e))
            log.info("using ONNX Runtime: %s", e)
    return onnxruntime_runner(folder, manifest, role, "auto" if precision not in ORT_PRECISIONS else precision, device, memory_arena,
                              spinning)


def open_file_runner(path: Path, device: str = "auto", threads: int | None = None) -> Runner:
    """An inactive runner for one model file: a TensorRT engine (by its suffix) or an ONNX file."""
    if path.suffix.lower() in ENGINE_SUFFIXES:
        from dgnet_edge.runtime.tensorrt import EngineFromPath, TensorRTRunner

        return TensorRTRunner(EngineFromPath(path), name=f"tensorrt {path.name}")
    return OnnxRuntimeRunner(SessionFromOnnx(path, device=device, threads=threads), name=f"onnxruntime {path.name}")
