"""ONNX Runtime backend: a session loader and a runner (CPU; CUDA where onnxruntime-gpu is installed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from dgnet_edge.runtime.base import Runner, TensorSpec, invoke_if_callable, unavailable

_ORT_TYPES = {
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
}


def import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise unavailable("onnxruntime", "not installed (pip install onnxruntime, or onnxruntime-gpu on a GPU machine)") from None
    return onnxruntime


def available_providers(device: str = "auto") -> list[str]:
    """Execution providers for ``device``: auto = CUDA when onnxruntime has it, else CPU."""
    have = import_ort().get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device in ("cuda", "auto") and "CUDAExecutionProvider" in have:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise unavailable("onnxruntime", "CUDA asked for, but this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
    return ["CPUExecutionProvider"]


class SessionFromOnnx:
    """Loader: an ``InferenceSession`` for an ONNX file, made when called.

    Args:
        path: the ONNX file.
        device: auto | cpu | cuda.
        threads: intra-op threads (default: all cores).
        profile_prefix: write an ONNX Runtime profile (JSON) with this prefix.
        memory_arena: keep freed CPU buffers in ONNX Runtime's arena for the next run (faster
            allocation); off, each run's buffers go back to the system, so a process holds only
            what its current run needs.
        spinning: intra-op threads busy-wait for the next run after one ends (lower latency for
            back-to-back runs); off, they sleep, and leave the cores to the rest of the process.
    """

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None, profile_prefix: str | None = None,
                 memory_arena: bool = True, spinning: bool = True):
        self.path = Path(path)
        self.device = device
        self.threads = threads
        self.profile_prefix = profile_prefix
        self.memory_arena = memory_arena
        self.spinning = spinning

    def __call__(self) -> Any:
        ort = import_ort()
        if not self.path.is_file():
            raise unavailable("onnxruntime", f"model file {self.path} not found")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads or os.cpu_count() or 1
        options.enable_cpu_mem_arena = self.memory_arena
        if not self.spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = self.profile_prefix
        try:
            return ort.InferenceSession(str(self.path), options, providers=available_providers(self.device))
        except Exception as e:  # onnxruntime raises its own exception types for bad models
            raise unavailable("onnxruntime", f"cannot load {self.path}: {e}") from None


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"

    def __init__(self, session: Any, name: str | None = None):
        super().__init__(name or "onnxruntime")
        self._source = session
        self.session: Any = None

    def activate_impl(self) -> None:
        self.session = invoke_if_callable(self._source)

    def deactivate_impl(self) -> None:
        self.session = None

    @property
    def on_cpu(self) -> bool:
        """Whether the session runs on ONNX Runtime's CPU provider (active runners only)."""
        return self.session is not None and self.session.get_providers()[0] == "CPUExecutionProvider"

    @staticmethod
    def _specs(args: list[Any]) -> list[TensorSpec]:
        return [
            TensorSpec(a.name, tuple(d if isinstance(d, int) else str(d) for d in a.shape), _ORT_TYPES.get(a.type, a.type))
            for a in args
        ]

    def input_metadata_impl(self) -> list[TensorSpec]:
        return self._specs(self.session.get_inputs())

    def output_metadata_impl(self) -> list[TensorSpec]:
        return self._specs(self.session.get_outputs())

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, feed)))
