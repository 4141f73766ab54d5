"""TensorRT INT8 calibration caches (implicit quantization), written from ``calibration.json``.

A device with TensorRT 8.5-10.x builds an INT8 engine from the fp32 ``embedder.onnx`` and one of
these caches through an ``IInt8EntropyCalibrator2`` whose ``read_calibration_cache`` returns the
file's bytes, so the device never calibrates (TensorRT 11 has no implicit INT8: it uses the Q/DQ
model instead).

Format (ASCII, ``\\n`` line ends, what TensorRT itself writes)::

    TRT-<version>-EntropyCalibration2
    <tensor name>: <scale>
    ...

- ``<version>`` is TensorRT's version integer, ``getInferLibVersion()`` / ``NV_TENSORRT_VERSION``:
  ``major*1000 + minor*100 + patch`` up to 8.x (8.5.2 -> ``8502``, 8.6.2 -> ``8602``) and
  ``major*10000 + minor*100 + patch`` from 10.0 on (10.3.0 -> ``100300``, 10.13.3 -> ``101303``).
  TensorRT ignores a cache whose header names another version or algorithm and then tries to
  calibrate (which fails without data), so a cache only serves the exact TensorRT version it names.
- One line per tensor: the tensor name (TensorRT names network tensors after the ONNX value names),
  ``": "``, and the float32 scale ``amax / 127`` as the 8 lowercase hex digits of its IEEE-754 bits
  (big-endian, i.e. the bits read as an unsigned integer): amax 1.0 -> scale 0.007874016 -> ``3c010204``.

The body does not depend on the version, only the header does: :func:`cache_text` writes a cache for
any version (e.g. ``tensorrt.__version__`` at engine-build time) and :func:`restamp` moves a cache to
another version. The export writes one cache per TensorRT release of the JetPack lines
(:data:`JETPACK_TENSORRT`); the manifest lists each file with its version.

The export's caches list the tensors of the quantized region only
(:func:`dgnet_edge.calib.qdq.int8_tensors`: inputs and outputs of the convolutions, residual
additions, ReLUs and trunk pooling, and the inputs of the heads' Gemm). Tensors without a line get
no INT8 range, so TensorRT keeps the layers around them in FP16/FP32: the preprocessing, the L2
normalisation and flip-sum of the feature, the appearance code and the heads' outputs stay float,
as in the Q/DQ model. A tensor whose range is 0 (it was 0 on every calibration image) gets no line
either: its scale would be 0, which TensorRT divides by. ``calibration.json`` keeps the ranges of
every tensor.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dgnet_edge.calib.ranges import CalibrationRanges, TensorRange, int8_scale
from dgnet_edge.errors import ExportError

ALGORITHM = "EntropyCalibration2"
# TensorRT releases of JetPack: 5.1.x, 6.0, 6.1/6.2, 7.0.
JETPACK_TENSORRT = ("8.5.2", "8.6.2", "10.3.0", "10.13.3")
_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")
_LINE = re.compile(r"^(.+): ([0-9a-fA-F]{1,8})$")


def version_number(version: str) -> int:
    """TensorRT's version integer for ``version`` ("10.3.0", "8.6.2.3"; a 4th build field is ignored)."""
    parts = version.strip().split(".")
    try:
        major, minor, patch = (int(p) for p in (parts + ["0", "0"])[:3])
    except ValueError:
        raise ExportError(f"not a TensorRT version: {version!r} (expected e.g. 8.6.2 or 10.3.0)") from None
    if major < 8:
        raise ExportError(f"TensorRT {version} is not supported (8.5 or newer)")
    if not (0 <= minor < 100 and 0 <= patch < 100):
        raise ExportError(f"not a TensorRT version: {version!r}")
    return major * (1000 if major < 10 else 10000) + minor * 100 + patch


def version_string(number: int) -> str:
    """The inverse of :func:`version_number` ("8602" -> "8.6.2", "100300" -> "10.3.0")."""
    major, rest = (number // 10000, number % 10000) if number >= 100000 else (number // 1000, number % 1000)
    return f"{major}.{rest // 100}.{rest % 100}"


def header(version: str, algorithm: str = ALGORITHM) -> str:
    return f"TRT-{version_number(version)}-{algorithm}"


def scale_hex(scale: float | np.float32) -> str:
    """The float32 bits of ``scale`` as 8 lowercase hex digits (big-endian)."""
    return struct.pack(">f", float(np.float32(scale))).hex()


def hex_scale(text: str) -> np.float32:
    return np.frombuffer(bytes.fromhex(text.rjust(8, "0")), dtype=">f4")[0].astype(np.float32)


def cache_text(ranges: CalibrationRanges | Mapping[str, float], version: str) -> str:
    """The cache for TensorRT ``version``: scales from ``ranges`` (or a name -> amax mapping).

    Tensors whose amax is 0 (or not finite) are left out: TensorRT keeps them float.
    """
    amax = ranges.amax() if isinstance(ranges, CalibrationRanges) else dict(ranges)
    lines = [header(version)]
    for name, value in amax.items():
        if "\n" in name or ": " in name:
            raise ExportError(f"tensor name {name!r} cannot be written to a TensorRT cache")
        scale = int8_scale(value) if math.isfinite(value) else np.float32(0)
        if scale > 0:  # not for amax 0 (or one so small its scale rounds to 0)
            lines.append(f"{name}: {scale_hex(scale)}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class TensorRTCache:
    """A parsed cache."""

    version: int
    algorithm: str
    scales: dict[str, np.float32]

    @property
    def version_string(self) -> str:
        return version_string(self.version)

    def amax(self) -> dict[str, float]:
        return {name: float(np.float64(scale) * 127.0) for name, scale in self.scales.items()}


def parse_cache(text: str, where: str = "calibration cache") -> TensorRTCache:
    lines = text.splitlines()
    match = _HEADER.match(lines[0].strip()) if lines else None
    if match is None:
        raise ExportError(f"{where}: not a TensorRT calibration cache (first line must be TRT-<version>-<algorithm>)")
    scales = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        m = _LINE.match(line.rstrip("\r"))
        if m is None:
            raise ExportError(f"{where}, line {number}: expected '<tensor>: <8 hex digits>', got {line!r}")
        scales[m.group(1)] = hex_scale(m.group(2))
    return TensorRTCache(int(match.group(1)), match.group(2), scales)


def unusable_scales(cache: TensorRTCache) -> list[str]:
    """Tensors of ``cache`` whose scale is 0 or not finite (caches written before such tensors were left out)."""
    return [name for name, scale in cache.scales.items() if not (np.isfinite(scale) and scale > 0)]


def without_tensors(text: str, names: list[str] | set[str]) -> str:
    """The cache ``text`` without the lines of ``names``."""
    drop = set(names)
    first, _, rest = text.partition("\n")
    kept = [line for line in rest.splitlines() if line.strip() and line.rsplit(": ", 1)[0] not in drop]
    return "\n".join([first, *kept]) + "\n"


def read_cache(path: str | Path) -> TensorRTCache:
    path = Path(path)
    try:
        text = path.read_bytes().decode("ascii")
    except OSError as e:
        raise ExportError(f"{path}: cannot read the calibration cache ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise ExportError(f"{path}: not a TensorRT calibration cache (not ASCII text)") from None
    return parse_cache(text, str(path))


def restamp(text: str, version: str) -> str:
    """The same cache for another TensorRT version (only the header changes)."""
    cache = parse_cache(text)
    _, _, rest = text.partition("\n")
    return f"TRT-{version_number(version)}-{cache.algorithm}\n{rest}"


def ranges_from_cache(cache: TensorRTCache, **metadata: object) -> CalibrationRanges:
    """Ranges (amax = scale * 127, no min/max) read back from a cache."""
    tensors = {name: TensorRange(float(np.float32(amax))) for name, amax in cache.amax().items()}
    return CalibrationRanges("entropy" if "Entropy" in cache.algorithm else "minmax", tensors, samples=0, **metadata)


def cache_file_name(version: str, stem: str = "embedder") -> str:
    return f"{stem}.trt-{version_number(version)}.cache"
