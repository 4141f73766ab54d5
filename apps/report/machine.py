"""The machine a report was measured on: CPU (model, SIMD flags that decide which kernels run),
cores, memory, GPU and the versions of the libraries in the measurement.

Nothing heavy is imported: library versions come from the installed distributions' metadata
(``importlib.metadata``), so describing the machine never imports torch or TensorRT.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata, util
from pathlib import Path
from typing import Any

# SIMD features that decide which matrix-multiply kernels ONNX Runtime, oneDNN and OpenCV use:
# x86 (AVX2/FMA for fp32, AVX-512 and VNNI for int8 dot products, AMX) and ARM (NEON, the
# int8 dot product "asimddp", i8mm, half-precision arithmetic "asimdhp").
SIMD_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
    "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
    "asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2",
)

# Distribution names to try per library, first found wins.
LIBRARIES = {
    "numpy": ("numpy",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"),
    "onnx": ("onnx",),
    "torch": ("torch",),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu11", "tensorrt-libs"),
    "opencv": ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless"),
    "pycuda": ("pycuda",),
}
# Import names, to tell "installed without package metadata" (e.g. JetPack's TensorRT) from absent.
MODULES = {"numpy": "numpy", "onnxruntime": "onnxruntime", "onnx": "onnx", "torch": "torch",
           "tensorrt": "tensorrt", "opencv": "cv2", "pycuda": "pycuda"}


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (Linux), else empty."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_info() -> dict[str, Any]:
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    model = info.get("model name") or info.get("Hardware") or info.get("Model") or platform.processor() or platform.machine()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return {
        "model": model,
        "arch": platform.machine(),
        "logical_cpus": os.cpu_count() or 1,
        "usable_cpus": usable,
        "simd": [f for f in SIMD_FLAGS if f in flags],
        "vnni": bool(flags & {"avx512_vnni", "avx_vnni"}),
        "flags_source": "/proc/cpuinfo" if flags else "unknown",
    }


def memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def gpu_info() -> list[dict[str, str]]:
    """GPUs as nvidia-smi lists them, or the Jetson module's name; empty without a GPU."""
    gpus: list[dict[str, str]] = []
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            result = subprocess.run(
                [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10,
            )
            for line in result.stdout.strip().splitlines() if result.returncode == 0 else []:
                name, driver, memory = ([p.strip() for p in line.split(",")] + ["", "", ""])[:3]
                gpus.append({"name": name, "driver": driver, "memory": memory})
        except (OSError, subprocess.SubprocessError):
            pass
    if not gpus:
        try:
            model = Path("/proc/device-tree/model").read_text().strip("\x00\n ")
        except OSError:
            model = ""
        if "jetson" in model.lower() or Path("/etc/nv_tegra_release").is_file():
            gpus.append({"name": model or "NVIDIA Jetson (integrated GPU)", "driver": "", "memory": "shared"})
    return gpus


def library_versions() -> dict[str, str | None]:
    """Installed version of each library (None if absent), read from package metadata."""
    versions: dict[str, str | None] = {}
    for name, distributions in LIBRARIES.items():
        found = None
        for dist in distributions:
            try:
                found = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        if found is None and util.find_spec(MODULES[name]) is not None:
            found = "installed (no package metadata)"
        versions[name] = found
    return versions


def machine_info() -> dict[str, Any]:
    """Everything a reader needs to compare two reports' numbers."""
    return {
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "cpu": cpu_info(),
        "memory_bytes": memory_bytes(),
        "gpus": gpu_info(),
        "libraries": library_versions(),
    }


def describe_cpu(cpu: dict[str, Any]) -> str:
    """One line, e.g. "AMD EPYC (x86_64), 2 CPUs, avx2 fma avx512f ... avx512_vnni"."""
    return f"{cpu['model']} ({cpu['arch']}), {cpu['usable_cpus']} CPUs, {' '.join(cpu['simd']) or 'no SIMD flags read'}"
