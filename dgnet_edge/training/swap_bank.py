"""A bank of DG-Net swaps rendered once by a frozen generator, with the teacher's labels.

With G frozen, feeding E_a swaps rendered on the fly is the same as sampling a large bank rendered
beforehand, and on a CPU the bank is far cheaper: each swap is rendered and labelled once instead of
once per step that uses it. Each entry is x_ba = G(E_s(x_b), E_a(x_a)) for a pair of training images
of different identities, stored as uint8 RGB, with its appearance provider's label, its structure
provider's label, and the teacher's soft label (softmax of the image plus softmax of its mirror,
renormalised; the teacher's BatchNorm on the batch's statistics with ``train_bn``, as the official
code labels generated batches).

The bank is saved beside the run (``swap_bank.pt``) with what it was made from; a run that finds a
bank made from the same generator, teacher, size and seed uses it, any other bank is rendered anew.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dgnet_edge.atomic import atomic_open
from dgnet_edge.data.train_set import TrainImages
from dgnet_edge.models import DGNet, ReidNet
from dgnet_edge.training.frozen import teacher_labels

log = logging.getLogger(__name__)

RENDER_BATCH = 32


@dataclass
class SwapBank:
    pixels: torch.Tensor  # (N, H, W, 3) uint8 RGB
    appearance_labels: torch.Tensor  # (N,) int64: the identity whose appearance code was used
    structure_labels: torch.Tensor  # (N,) int64: the identity whose structure code was used
    teacher_probs: torch.Tensor  # (N, classes) float16, rows sum to 1
    source: dict[str, Any]  # what it was rendered from (generator, teacher, size, seed)

    def __len__(self) -> int:
        return len(self.pixels)

    def save(self, path: Path) -> None:
        with atomic_open(path) as f:
            torch.save({"pixels": self.pixels, "appearance_labels": self.appearance_labels,
                        "structure_labels": self.structure_labels, "teacher_probs": self.teacher_probs,
                        "source": self.source}, f)

    @classmethod
    def load(cls, path: Path) -> SwapBank:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return cls(state["pixels"], state["appearance_labels"], state["structure_labels"], state["teacher_probs"],
                   state["source"])


def _normalise(pixels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (pixels.permute(0, 3, 1, 2).float() / 255 - mean) / std


def draw_pairs(labels: torch.Tensor, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` pairs of image indices (a, b) whose identities differ."""
    if len(torch.unique(labels)) < 2:
        raise ValueError("swaps need a training set with two identities or more")
    a_all, b_all = [], []
    got = 0
    while got < n:
        a = torch.randint(len(labels), (2 * (n - got),), generator=generator)
        b = torch.randint(len(labels), (2 * (n - got),), generator=generator)
        keep = labels[a] != labels[b]
        a_all.append(a[keep][: n - got])
        b_all.append(b[keep][: n - got])
        got += int(a_all[-1].numel())
    return torch.cat(a_all), torch.cat(b_all)


@torch.no_grad()
def render_swap_bank(model: DGNet, teacher: ReidNet, train_set: TrainImages, size: int, *, seed: int,
                     mean: tuple[float, ...], std: tuple[float, ...], device: torch.device, train_bn: bool = True,
                     source: dict[str, Any] | None = None,
                     on_progress: Callable[[int, int], None] | None = None) -> SwapBank:
    """``size`` swaps x_ba of random training pairs (a, b) of different identities (module docstring)."""
    g = torch.Generator().manual_seed(seed)
    ia, ib = draw_pairs(train_set.labels, size, g)
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    model.eval()
    h, w = train_set.pixels.shape[1:3]
    pixels = torch.empty((size, h, w, 3), dtype=torch.uint8)
    probs = torch.empty((size, train_set.num_classes), dtype=torch.float16)
    for start in range(0, size, RENDER_BATCH):
        a, b = ia[start:start + RENDER_BATCH], ib[start:start + RENDER_BATCH]
        x_a = _normalise(train_set.pixels[a].to(device), m, s)
        x_b = _normalise(train_set.pixels[b].to(device), m, s)
        x_ba = model.generate(model.encode_structure(x_b), model.encode_appearance(x_a))
        images = ((x_ba * s + m).clamp(0, 1) * 255).round().to(torch.uint8)
        pixels[start:start + len(a)] = images.permute(0, 2, 3, 1).cpu()
        # The teacher labels what E_a will see: the stored (rounded) image.
        probs[start:start + len(a)] = teacher_labels(teacher, _normalise(images.permute(0, 2, 3, 1), m, s),
                                                     train_bn).half().cpu()
        if on_progress is not None:
            on_progress(min(start + RENDER_BATCH, size), size)
    return SwapBank(pixels, train_set.labels[ia].clone(), train_set.labels[ib].clone(), probs, dict(source or {}))


def load_or_render(path: Path, source: dict[str, Any], render: Callable[[], SwapBank]) -> SwapBank:
    """The bank at ``path`` if it was made from ``source``; else ``render()``, saved there."""
    if path.is_file():
        try:
            bank = SwapBank.load(path)
        except Exception as e:  # a damaged file: render it again
            log.warning("%s: unreadable swap bank (%s); rendering it again", path, e)
        else:
            if bank.source == source:
                log.info("swap bank: %s (%d swaps)", path, len(bank))
                return bank
            log.info("%s was rendered from %s; rendering a bank from %s", path, bank.source, source)
    bank = render()
    bank.save(path)
    return bank
