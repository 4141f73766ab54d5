"""The one small interface every runtime backend implements.

A backend has two roles, as in Polygraphy: a *loader* builds or deserializes the heavy object
(an ONNX Runtime session, a TensorRT engine, a torch module) lazily when called, and a *runner*
holds it live and runs inference. :class:`Runner` is a template: the public methods check state
and inputs and time the backend call; a backend overrides only the ``*_impl`` hooks.

Inputs and outputs are dicts of numpy arrays keyed by tensor name, so the same feed runs on
every backend and results compare directly (:mod:`dgnet_edge.runtime.compare`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from dgnet_edge.errors import BackendUnavailableError

T = TypeVar("T")


def invoke_if_callable(value: T | Callable[[], T]) -> T:
    """Loaders chain: a runner accepts either the object or a loader that makes it."""
    return value() if callable(value) else value


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (str for a dynamic dimension, e.g. "batch") and numpy dtype name of a tensor."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str

    def check(self, array: np.ndarray, runner: str) -> None:
        if array.dtype != np.dtype(self.dtype):
            raise ValueError(f"{runner}: input {self.name!r} must be {self.dtype}, got {array.dtype}")
        if array.ndim != len(self.shape):
            raise ValueError(f"{runner}: input {self.name!r} must have shape {self.shape}, got {array.shape}")
        for want, got in zip(self.shape, array.shape):
            if isinstance(want, int) and want != got:
                raise ValueError(f"{runner}: input {self.name!r} must have shape {self.shape}, got {array.shape}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(data["name"], tuple(data["shape"]), data["dtype"])


class Runner:
    """Base of the backend runners; use as a context manager or call activate/deactivate."""

    backend = "base"

    def __init__(self, name: str):
        self.name = name
        self.is_active = False
        self.inference_time: float | None = None  # seconds of the last backend call

    @property
    def on_cpu(self) -> bool:
        """Whether the model runs on the host CPU (a backend that can says so)."""
        return False

    # -- hooks a backend implements ------------------------------------------------------------
    def activate_impl(self) -> None:
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        raise NotImplementedError

    def input_metadata_impl(self) -> list[TensorSpec]:
        raise NotImplementedError

    def output_metadata_impl(self) -> list[TensorSpec]:
        raise NotImplementedError

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    # -- the public interface --------------------------------------------------------------------
    def activate(self) -> Runner:
        if not self.is_active:
            self.activate_impl()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def _require_active(self) -> None:
        if not self.is_active:
            raise RuntimeError(f"{self.name}: activate the runner (or use it in a with block) before use")

    def input_metadata(self) -> list[TensorSpec]:
        self._require_active()
        return self.input_metadata_impl()

    def output_metadata(self) -> list[TensorSpec]:
        self._require_active()
        return self.output_metadata_impl()

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; checks names, dtypes and static dimensions of the inputs first."""
        self._require_active()
        specs = {s.name: s for s in self.input_metadata_impl()}
        if set(feed) != set(specs):
            raise ValueError(f"{self.name}: expected inputs {sorted(specs)}, got {sorted(feed)}")
        for key, array in feed.items():
            specs[key].check(array, self.name)
        start = time.perf_counter()
        outputs = self.infer_impl(feed)
        self.inference_time = time.perf_counter() - start
        return outputs


def unavailable(backend: str, reason: str) -> BackendUnavailableError:
    return BackendUnavailableError(f"{backend}: {reason}")
