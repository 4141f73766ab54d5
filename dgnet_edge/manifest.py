"""The export folder's ``manifest.json``: what every downstream reader checks before it runs.

An export folder holds ONNX models (and, once built on a device, TensorRT engines) for three
roles — ``embedder`` (image -> re-id feature [+ appearance code]), ``structure`` (image ->
structure code) and ``decoder`` (structure code + appearance code -> image) — in several
precisions (``fp32``, ``fp16``, ``int8-qdq`` for TensorRT, ``int8-cpu`` for ONNX Runtime). The
manifest records for each file its sha256, inputs and outputs, opset and precision; for the
folder the input format (size, layout, colour order, dtype, normalisation), the batch profile,
the feature size, the source checkpoint and the toolkit version. Readers refuse a manifest of
another schema version, a file whose hash differs, and inputs that do not match.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from dgnet_edge import __version__
from dgnet_edge.atomic import write_atomic
from dgnet_edge.errors import ExportError
from dgnet_edge.runtime.base import TensorSpec

SCHEMA = "dgnet-edge-export"
SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
ROLES = ("embedder", "structure", "decoder")
PRECISIONS = ("fp32", "fp16", "int8-qdq", "int8-cpu")


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class InputFormat:
    """What the graphs take: images at the network size, normalised inside the graph."""

    height: int
    width: int
    layout: str = "NHWC"
    colour: str = "RGB"
    dtype: str = "uint8"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


MAX_BATCH = 4096  # 4096 crops of 256x128 are 1.6 GB of float32 input: far past any device's useful batch


@dataclass(frozen=True)
class BatchProfile:
    """TensorRT optimisation profile of the batch dimension (and the largest batch any backend runs)."""

    min: int = 1
    opt: int = 8
    max: int = 32

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max <= MAX_BATCH:
            raise ExportError(f"batch profile must satisfy 1 <= min <= opt <= max <= {MAX_BATCH}, got {self.min}/{self.opt}/{self.max}")


@dataclass(frozen=True)
class ModelEntry:
    role: str
    precision: str
    file: str
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opset: int
    details: dict[str, Any] = field(default_factory=dict)  # e.g. calibration method, excluded layers

    @property
    def key(self) -> str:
        return f"{self.role}:{self.precision}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["inputs"] = [s.to_dict() for s in self.inputs]
        d["outputs"] = [s.to_dict() for s in self.outputs]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelEntry:
        return cls(
            d["role"], d["precision"], d["file"], d["sha256"],
            tuple(TensorSpec.from_dict(s) for s in d["inputs"]),
            tuple(TensorSpec.from_dict(s) for s in d["outputs"]),
            d["opset"], d.get("details", {}),
        )


@dataclass(frozen=True)
class EngineEntry:
    """A TensorRT engine built on a device from one of the ONNX models."""

    role: str
    precision: str
    file: str
    sha256: str
    source: str  # key of the ModelEntry it was built from
    gpu: str
    compute_capability: str
    tensorrt: str
    profile: BatchProfile
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    input: InputFormat
    profile: BatchProfile
    feature_dim: int
    heads: int
    code_dim: int
    flip: bool
    source: dict[str, Any]  # checkpoint path, sha256, kind, toolkit version that trained it
    models: tuple[ModelEntry, ...] = ()
    engines: tuple[EngineEntry, ...] = ()
    calibration: dict[str, Any] | None = None
    toolkit_version: str = __version__

    # -- lookup --------------------------------------------------------------------------------
    def model(self, role: str, precision: str = "fp32") -> ModelEntry:
        for entry in self.models:
            if entry.role == role and entry.precision == precision:
                return entry
        have = ", ".join(e.key for e in self.models) or "none"
        raise ExportError(f"the export has no {role} model in {precision} (it has: {have}); re-export with the matching option")

    def has_model(self, role: str, precision: str = "fp32") -> bool:
        return any(e.role == role and e.precision == precision for e in self.models)

    def with_model(self, entry: ModelEntry) -> Manifest:
        kept = tuple(e for e in self.models if e.key != entry.key)
        return replace(self, models=(*kept, entry))

    def with_engine(self, entry: EngineEntry) -> Manifest:
        kept = tuple(e for e in self.engines if e.file != entry.file)
        return replace(self, engines=(*kept, entry))

    # -- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "toolkit_version": self.toolkit_version,
            "input": asdict(self.input),
            "profile": asdict(self.profile),
            "feature_dim": self.feature_dim,
            "heads": self.heads,
            "code_dim": self.code_dim,
            "flip": self.flip,
            "source": self.source,
            "models": [m.to_dict() for m in self.models],
            "engines": [asdict(e) for e in self.engines],
            "calibration": self.calibration,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "manifest") -> Manifest:
        if d.get("schema") != SCHEMA:
            raise ExportError(f"{where}: not a dgnet-edge export manifest")
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ExportError(
                f"{where}: manifest schema version {d.get('schema_version')} is not supported by this "
                f"dgnet-edge ({__version__}, schema {SCHEMA_VERSION}); re-export with this version"
            )
        try:
            inp = d["input"]
            return cls(
                input=InputFormat(**{**inp, "mean": tuple(inp["mean"]), "std": tuple(inp["std"])}),
                profile=BatchProfile(**d["profile"]),
                feature_dim=d["feature_dim"],
                heads=d["heads"],
                code_dim=d["code_dim"],
                flip=d["flip"],
                source=d["source"],
                models=tuple(ModelEntry.from_dict(m) for m in d["models"]),
                engines=tuple(
                    EngineEntry(**{**e, "profile": BatchProfile(**e["profile"])}) for e in d.get("engines", [])
                ),
                calibration=d.get("calibration"),
                toolkit_version=d["toolkit_version"],
            )
        except (KeyError, TypeError) as e:
            raise ExportError(f"{where}: malformed manifest ({type(e).__name__}: {e})") from None

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / MANIFEST_NAME
        write_atomic(path, (json.dumps(self.to_dict(), indent=2) + "\n").encode())
        return path


def load_manifest(folder: str | Path) -> Manifest:
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise ExportError(f"{folder}: no {MANIFEST_NAME}; is this an export folder written by `dgnet-edge export`?")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ExportError(f"{path}: not valid JSON ({e})") from None
    return Manifest.from_dict(data, str(path))


def verified_path(folder: str | Path, entry: ModelEntry | EngineEntry) -> Path:
    """The file of ``entry``, after checking it exists and its sha256 matches the manifest."""
    path = Path(folder) / entry.file
    if not path.is_file():
        raise ExportError(f"{path}: listed in the manifest but missing")
    if sha256_of(path) != entry.sha256:
        raise ExportError(f"{path}: contents differ from the manifest (sha256 mismatch); re-export or rebuild it")
    return path


def read_export_file(path: Path, fmt: str, version: int, what: str, hint: str) -> dict[str, Any] | None:
    """The body of a versioned JSON file an export folder holds beside its manifest (a calibrated
    threshold, a site's colour), None when there is none; an ExportError ending with ``hint`` when
    it is unreadable or of another format. Faults in its fields are the caller's to report, with
    :func:`unreadable_export_file`."""
    if not path.is_file():
        return None
    try:
        body = json.loads(path.read_text())
        if not isinstance(body, dict) or body.get("format") != fmt or body.get("version") != version:
            found = (body.get("format"), body.get("version")) if isinstance(body, dict) else (type(body).__name__, None)
            raise ValueError(f"format {found[0]!r} version {found[1]!r}")
    except (OSError, ValueError) as e:
        raise unreadable_export_file(path, what, hint, e) from None
    return body


def unreadable_export_file(path: Path, what: str, hint: str, error: Exception) -> ExportError:
    return ExportError(f"{path} is not a readable {what} file ({error}): {hint}")
