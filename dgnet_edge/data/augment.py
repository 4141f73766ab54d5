"""Training augmentation on whole batches, as the reference pipeline does it per image.

Order as in the official code: (resize, done when loading) -> pad by ``pad`` (zeros as the
reference baseline, or the edge pixels as DG-Net) -> random crop back to H x W -> random
horizontal flip -> normalise -> random erasing (Zhong et al. 2017; area
0.02-0.4 of the image, aspect uniform in 0.3-3.3, filled with 0 = the dataset mean after normalisation).
All randomness comes from one ``torch.Generator`` whose state goes into checkpoints, so a resumed
run draws the same crops as an uninterrupted one.
"""

from __future__ import annotations

import torch


class BatchAugment:
    def __init__(
        self,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        pad: int = 10,
        flip: bool = True,
        erasing_p: float = 0.5,
        generator: torch.Generator | None = None,
        pad_mode: str = "constant",
    ):
        if pad_mode not in ("constant", "replicate"):
            raise ValueError(f"pad_mode must be constant or replicate, got {pad_mode!r}")
        self.pad = pad
        self.pad_mode = pad_mode
        self.flip = flip
        self.erasing_p = erasing_p
        self.generator = generator or torch.Generator()
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator)

    def __call__(self, images: torch.Tensor, erase: bool = True) -> torch.Tensor:
        """(B, H, W, 3) uint8 RGB (any device) -> (B, 3, H, W) float, normalised and augmented
        (random erasing only with ``erase``; :meth:`erase` applies it to a batch later)."""
        x = images.permute(0, 3, 1, 2).float().div_(255)
        b, _, h, w = x.shape
        if self.pad > 0:
            padded = torch.nn.functional.pad(x, (self.pad,) * 4, mode=self.pad_mode)
            offsets = (self._rand(b, 2) * (2 * self.pad + 1)).long().clamp_(max=2 * self.pad)
            x = torch.stack([padded[i, :, oy : oy + h, ox : ox + w] for i, (oy, ox) in enumerate(offsets.tolist())])
        if self.flip:
            mirror = (self._rand(b) < 0.5).to(x.device).view(b, 1, 1, 1)
            x = torch.where(mirror, x.flip(3), x)
        x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        return self.erase(x) if erase else x

    def erase(self, x: torch.Tensor) -> torch.Tensor:
        """Random erasing of a normalised batch (a new tensor; ``x`` is left as it is)."""
        if self.erasing_p <= 0:
            return x
        b, _, h, w = x.shape
        apply = self._rand(b) < self.erasing_p
        # Up to 100 tries per image as the reference; draw them all at once.
        tries = 100
        area = (0.02 + 0.38 * self._rand(b, tries)) * (h * w)
        ratio = 0.3 + (1 / 0.3 - 0.3) * self._rand(b, tries)
        eh = (area * ratio).sqrt().round().long()
        ew = (area / ratio).sqrt().round().long()
        fits = (eh < h) & (ew < w)
        pos = self._rand(b, 2)
        mask = torch.zeros(b, 1, h, w, dtype=torch.bool)
        for i in range(b):
            if not apply[i] or not fits[i].any():
                continue
            t = int(fits[i].nonzero()[0])
            rh, rw = int(eh[i, t]), int(ew[i, t])
            top = int(pos[i, 0] * (h - rh + 1))
            left = int(pos[i, 1] * (w - rw + 1))
            mask[i, :, top : top + rh, left : left + rw] = True
        return x.masked_fill(mask.to(x.device), 0.0)
