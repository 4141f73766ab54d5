"""TensorRT's implicit-INT8 calibrator (TensorRT 8.5-10.x), fed by any iterable of input dicts.

While it builds an INT8 engine from a network without Q/DQ nodes, TensorRT calls four methods
on the calibrator: ``get_batch_size``, ``get_batch`` (device pointers of the next batch, in the
order of the input names it passes, or None when the data runs out), ``read_calibration_cache``
(the cache bytes, or None to calibrate) and ``write_calibration_cache``. When
``read_calibration_cache`` returns a cache, TensorRT takes the scales from it and asks for no
batch at all.

TensorRT also calls ``write_calibration_cache`` after it took the scales from a cache, with its
own serialization of them; a calibrator that handed out a cache writes nothing, so the export's
cache (whose sha256 the manifest records) is never rewritten. Only calibrating writes a cache.

The class has to subclass ``tensorrt.IInt8EntropyCalibrator2``, so it is made inside
:func:`make_entropy_calibrator`: importing this module needs neither tensorrt nor pycuda, and
pycuda is imported only when the first batch is uploaded (with the primary CUDA context pushed,
so TensorRT may call from any thread). TensorRT 11 removed the calibrators with implicit INT8;
there, INT8 engines are built from the Q/DQ model.

A cache file is text: a first line ``TRT-<version>-EntropyCalibration2`` (``<version>`` is
TensorRT's integer version, e.g. 8601 or 100300), then one ``tensor_name: <8 hex digits>`` line
per tensor, the big-endian float32 scale (amax / 127). Caches are specific to the TensorRT
version; :func:`cache_for_tensorrt` picks the one of the running version from the manifest.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dgnet_edge.errors import BackendUnavailableError, ExportError
from dgnet_edge.manifest import write_atomic
from dgnet_edge.runtime.tensorrt import cuda_device

log = logging.getLogger(__name__)

ALGORITHM = "EntropyCalibration2"


# -- cache files ---------------------------------------------------------------------------------
def _numbers(version: str) -> tuple[int, ...]:
    out = []
    for piece in str(version).split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def caches_for_role(calibration: Mapping[str, Any] | None, role: str) -> list[Mapping[str, Any]]:
    """``Manifest.calibration["caches"]`` entries of ``role`` (entries without a role are the embedder's).

    The export writes ``{"file": ..., "role": "embedder", "tensorrt": "10.3.0", "header": ...,
    "sha256": ...}``, one per TensorRT release of the JetPack lines.
    """
    return [e for e in (calibration or {}).get("caches") or ()
            if e.get("role", "embedder") == role and "file" in e and _numbers(e.get("tensorrt", ""))]


def cache_for_tensorrt(calibration: Mapping[str, Any] | None, role: str, tensorrt_version: str) -> Mapping[str, Any] | None:
    """The manifest's cache entry for ``role`` made for the running TensorRT, or None.

    An entry matches when its version numbers are a prefix of the running version's ("8.6.2"
    matches 8.6.2.3; "8.6" matches any 8.6); the most specific match wins. TensorRT ignores a
    cache whose header names another version, so nothing else matches.
    """
    running = _numbers(tensorrt_version)
    best: tuple[int, Mapping[str, Any]] | None = None
    for entry in caches_for_role(calibration, role):
        recorded = _numbers(entry["tensorrt"])
        if running[: len(recorded)] == recorded and (best is None or len(recorded) > best[0]):
            best = (len(recorded), entry)
    return best[1] if best else None


def cache_versions(calibration: Mapping[str, Any] | None, role: str) -> list[str]:
    """TensorRT versions the manifest has caches for (for messages)."""
    return sorted({str(e["tensorrt"]) for e in caches_for_role(calibration, role)}, key=_numbers)


def restamp(text: str, tensorrt_version: str) -> str:
    """The same cache with the header of another TensorRT version (the scales do not depend on it)."""
    first, _, rest = text.partition("\n")
    algorithm = first.rsplit("-", 1)[-1]
    return f"TRT-{header_version(tensorrt_version)}-{algorithm}\n{rest}"


def check_cache_file(path: str | Path) -> str:
    """The header line of a TensorRT entropy calibration cache; ExportError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: calibration cache listed in the manifest but missing")
    with open(path, "rb") as f:
        first = f.readline().decode("ascii", errors="replace").strip()
    if not (first.startswith("TRT-") and first.endswith(f"-{ALGORITHM}")):
        raise ExportError(f"{path}: not a TensorRT {ALGORITHM} cache (first line {first[:60]!r})")
    return first


def header_version(tensorrt_version: str) -> int:
    """TensorRT's integer version as cache headers carry it (8.6.1 -> 8601, 10.3.0 -> 100300)."""
    major, minor, patch = (_numbers(tensorrt_version) + (0, 0, 0))[:3]
    return major * (1000 if major < 10 else 10000) + minor * 100 + patch


# -- the calibrator ------------------------------------------------------------------------------
@dataclass
class CalibrationState:
    """What happened during calibration, readable after the build."""

    batches: int = 0
    cache_read: bool = False
    cache_written: bool = False
    error: Exception | None = None


def make_entropy_calibrator(
    batches: Iterable[Mapping[str, np.ndarray]],
    cache_path: str | Path | None,
    batch_size: int = 1,
    reuse_cache: bool = True,
    trt: Any | None = None,
) -> Any:
    """A ``tensorrt.IInt8EntropyCalibrator2`` fed by ``batches`` and backed by ``cache_path``.

    Args:
        batches: any iterable of dicts mapping input names to numpy arrays; each array is one
            batch of that input (shape and dtype as the calibration profile expects).
        cache_path: the cache to read when it exists and ``reuse_cache`` (TensorRT then skips
            calibration, and the file is left as it is); otherwise where the cache is written
            after calibrating. None: no cache file.
        batch_size: the batch dimension of the arrays; explicit-batch networks take the real
            shapes from the calibration profile.
        reuse_cache: read an existing cache instead of calibrating.
        trt: the tensorrt module (default: imported here).

    The state of the run is :func:`calibration_state` of the returned object.
    """
    if trt is None:
        try:
            trt = importlib.import_module("tensorrt")
        except ImportError as e:
            raise BackendUnavailableError(f"TensorRT: not installed ({e})") from None
    base = getattr(trt, "IInt8EntropyCalibrator2", None)
    if base is None:
        raise BackendUnavailableError(
            f"TensorRT {trt.__version__} has no calibrators (TensorRT 11 removed implicit INT8): "
            "build INT8 engines from the Q/DQ model"
        )
    path = Path(cache_path) if cache_path is not None else None
    state = CalibrationState()

    class EntropyCalibrator(base):
        def __init__(self) -> None:
            base.__init__(self)  # trampoline classes must run their base initialiser
            self._batches = iter(batches)
            self._buffers: dict[str, tuple[Any, int]] = {}
            self._state = state

        def get_batch_size(self) -> int:
            return int(batch_size)

        def get_batch(self, names: Sequence[str]) -> list[int] | None:
            try:
                batch = next(self._batches, None)
                if batch is None:
                    _free(self)
                    return None
                missing = [n for n in names if n not in batch]
                if missing:
                    raise ExportError(f"calibration batch {state.batches + 1} has no input {missing} (it has {sorted(batch)})")
                pointers = [_upload(self, name, batch[name]) for name in names]
                state.batches += 1
                return pointers
            except Exception as e:  # TensorRT calls this from C++: report through the state, stop the data
                state.error = e
                log.error("calibration stopped: %s", e)
                _free(self)
                return None

        def read_calibration_cache(self) -> bytes | None:
            if path is None or not reuse_cache or not path.is_file() or path.stat().st_size == 0:
                return None
            state.cache_read = True
            log.info("INT8 scales from the calibration cache %s", path)
            return path.read_bytes()

        def write_calibration_cache(self, cache: Any) -> None:
            if path is None or state.cache_read:  # TensorRT's copy of the scales it was given
                return
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, bytes(cache))
                state.cache_written = True
                log.info("calibration cache written to %s", path)
            except OSError as e:
                state.error = e
                log.error("cannot write the calibration cache %s: %s", path, e)

    return EntropyCalibrator()


def calibration_state(calibrator: Any) -> CalibrationState:
    """Batches fed, cache read or written, and the error that stopped the data, if any."""
    return calibrator._state


def _upload(calibrator: Any, name: str, array: np.ndarray) -> int:
    """Copy one input of a batch into its device buffer (grown when needed); its address."""
    array = np.ascontiguousarray(array)
    with cuda_device().current() as cuda:
        held = calibrator._buffers.get(name)
        if held is None or held[1] < array.nbytes:
            if held is not None:
                held[0].free()
            held = (cuda.mem_alloc(max(array.nbytes, 1)), array.nbytes)
            calibrator._buffers[name] = held
        cuda.memcpy_htod(held[0], array)
    return int(held[0])


def _free(calibrator: Any) -> None:
    if not calibrator._buffers:
        return
    with cuda_device().current():
        for allocation, _ in calibrator._buffers.values():
            allocation.free()
    calibrator._buffers.clear()
