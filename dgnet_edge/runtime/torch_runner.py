"""PyTorch backend: runs a module (e.g. the embedder of a training checkpoint) through the runner
interface.

torch is imported when a runner is made, not when this module is imported, so walking the runtime
package (or a deployment process that only lists the backends) stays free of torch; making a
:class:`TorchRunner` is what a training-side caller does.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dgnet_edge.runtime.base import Runner, TensorSpec

if TYPE_CHECKING:
    import torch


def import_torch() -> Any:
    return importlib.import_module("torch")


class TorchRunner(Runner):
    """Runs ``module`` in eval mode under ``torch.inference_mode``.

    Args:
        module: the module, or a loader returning it.
        inputs: specs of the positional inputs, in order.
        outputs: names of the outputs (a single tensor or a tuple of them), in order.
        device: where to run.
    """

    backend = "torch"

    def __init__(
        self,
        module: torch.nn.Module | Callable[[], torch.nn.Module],
        inputs: Sequence[TensorSpec],
        outputs: Sequence[str],
        device: str | torch.device = "cpu",
        name: str | None = None,
    ):
        super().__init__(name or "torch")
        self._torch = import_torch()
        self._source = module
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.device = self._torch.device(device)
        self.module: torch.nn.Module | None = None

    def activate_impl(self) -> None:
        # A module is callable itself, so only a non-module source is a loader.
        module = self._source if isinstance(self._source, self._torch.nn.Module) else self._source()
        self.module = module.to(self.device).eval()

    def deactivate_impl(self) -> None:
        self.module = None

    @property
    def on_cpu(self) -> bool:
        return self.device.type == "cpu"

    def input_metadata_impl(self) -> list[TensorSpec]:
        return self.inputs

    def output_metadata_impl(self) -> list[TensorSpec]:
        return [TensorSpec(n, (), "float32") for n in self.outputs]

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(feed[s.name])).to(self.device) for s in self.inputs]
        with torch.inference_mode():
            out = self.module(*args)
            if self.device.type == "cuda":
                torch.cuda.synchronize()  # time the work, not the launch
        out = out if isinstance(out, (tuple, list)) else (out,)
        return {name: t.float().cpu().numpy() for name, t in zip(self.outputs, out)}
