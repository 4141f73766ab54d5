"""The rows of a report: every (backend, precision) an export could run as, and why one cannot.

Rows, in order: torch fp32 eager (the export's source checkpoint, the baseline a user would
otherwise run), ONNX Runtime in each precision of the export's embedder models (fp32, fp16,
int8-cpu, int8-qdq — the TensorRT Q/DQ model run by ORT — then any other precision the manifest
lists), TensorRT fp32/fp16/int8 engines. A row that cannot run here keeps its place with the
reason ("TensorRT: not installed", "no int8-cpu model in the export: export with --int8"). These
checks are cheap and import nothing heavy; the worker finds the rest (no GPU, an engine built for
another device) and reports it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import util
from pathlib import Path
from typing import Any

from dgnet_edge.manifest import PRECISIONS, Manifest, sha256_of

BACKENDS = ("torch", "onnxruntime", "tensorrt")
ORT_ORDER = ("fp32", "fp16", "int8-cpu", "int8-qdq")
TRT_PRECISIONS = ("fp32", "fp16", "int8")
SHORT = {"torch": "torch", "onnxruntime": "ORT", "tensorrt": "TRT"}
_EXPORT_HINT = {"fp16": "export with --fp16", "int8-cpu": "export with --int8", "int8-qdq": "export with --int8"}


@dataclass(frozen=True)
class RowSpec:
    """One row: a backend and a precision, the files it runs and, if it cannot run, why."""

    backend: str
    precision: str
    files: tuple[str, ...] = ()  # model files relative to the export (the checkpoint's path for torch)
    reason: str | None = None
    onnx_file: str | None = None  # the ONNX graph whose MACs the row computes
    activation_type: str | None = None  # int8 rows: uint8 | int8 activations

    @property
    def key(self) -> str:
        return f"{self.backend}:{self.precision}"

    @property
    def label(self) -> str:
        return "torch fp32 (eager)" if self.backend == "torch" else f"{self.backend} {self.precision}"

    @property
    def short_label(self) -> str:
        return f"{SHORT.get(self.backend, self.backend)} {self.precision}"

    @property
    def available(self) -> bool:
        return self.reason is None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "backend": self.backend, "precision": self.precision,
                "files": list(self.files), "onnx_file": self.onnx_file, "activation_type": self.activation_type}


def _torch_row(manifest: Manifest) -> RowSpec:
    checkpoint = manifest.source.get("checkpoint")
    fp32 = manifest.model("embedder", "fp32").file if manifest.has_model("embedder", "fp32") else None
    files = (str(checkpoint),) if checkpoint else ()
    if util.find_spec("torch") is None:
        return RowSpec("torch", "fp32", files, "torch: not installed (the torch row runs the source checkpoint)", fp32)
    if not checkpoint:
        return RowSpec("torch", "fp32", files, "the manifest records no source checkpoint", fp32)
    path = Path(checkpoint)
    if not path.is_file():
        return RowSpec("torch", "fp32", files, f"source checkpoint {path} not found (the manifest records it; copy it back to run the torch row)", fp32)
    expected = manifest.source.get("sha256")
    if expected and sha256_of(path) != expected:
        return RowSpec("torch", "fp32", files, f"source checkpoint {path} changed since the export (sha256 differs)", fp32)
    return RowSpec("torch", "fp32", files, None, fp32)


def _ort_rows(manifest: Manifest) -> list[RowSpec]:
    have = {e.precision: e for e in manifest.models if e.role == "embedder"}
    order = list(ORT_ORDER) + [p for p in PRECISIONS if p not in ORT_ORDER] + sorted(p for p in have if p not in PRECISIONS)
    installed = util.find_spec("onnxruntime") is not None
    rows = []
    for precision in order:
        entry = have.get(precision)
        if entry is None:
            if precision not in ORT_ORDER:
                continue
            hint = _EXPORT_HINT.get(precision, "re-export with the matching option")
            rows.append(RowSpec("onnxruntime", precision, (), f"no {precision} embedder model in the export: {hint}"))
            continue
        reason = None if installed else "onnxruntime: not installed (pip install onnxruntime)"
        rows.append(RowSpec("onnxruntime", precision, (entry.file,), reason, entry.file, entry.details.get("activation_type")))
    return rows


def _trt_rows(manifest: Manifest) -> list[RowSpec]:
    installed = util.find_spec("tensorrt") is not None
    rows = []
    for precision in TRT_PRECISIONS:
        engines = [e for e in manifest.engines if e.role == "embedder" and e.precision == precision]
        source = engines[0].source.split(":", 1)[1] if engines and ":" in engines[0].source else None
        onnx_file = manifest.model("embedder", source).file if source and manifest.has_model("embedder", source) else None
        files = tuple(e.file for e in engines)
        if not installed:
            reason = "TensorRT: not installed"
        elif not engines:
            reason = f"no TensorRT {precision} engine in the export: build one on this device with `dgnet-edge build`"
        else:
            reason = None
        rows.append(RowSpec("tensorrt", precision, files, reason, onnx_file))
    return rows


def plan_rows(manifest: Manifest, backends: tuple[str, ...] = BACKENDS) -> list[RowSpec]:
    """Every row of ``backends`` for this export, runnable or with the reason it is not."""
    rows: list[RowSpec] = []
    if "torch" in backends:
        rows.append(_torch_row(manifest))
    if "onnxruntime" in backends:
        rows.extend(_ort_rows(manifest))
    if "tensorrt" in backends:
        rows.extend(_trt_rows(manifest))
    return rows
