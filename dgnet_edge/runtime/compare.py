"""Comparing backends is data: per-output differences and cosine similarity, truthy on pass.

Used by export (ONNX Runtime vs PyTorch parity), INT8 acceptance and reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from dgnet_edge.runtime.base import Runner


@dataclass
class OutputComparison:
    name: str
    max_abs_diff: float
    mean_abs_diff: float
    min_cosine: float  # over rows (samples), flattened per sample
    mean_cosine: float
    atol: float | None
    cosine_floor: float | None

    @property
    def passed(self) -> bool:
        ok_abs = self.atol is None or self.max_abs_diff <= self.atol
        ok_cos = self.cosine_floor is None or self.mean_cosine >= self.cosine_floor
        return ok_abs and ok_cos

    def describe(self) -> str:
        limits = []
        if self.atol is not None:
            limits.append(f"atol {self.atol:g}")
        if self.cosine_floor is not None:
            limits.append(f"mean cosine >= {self.cosine_floor:g}")
        verdict = "ok" if self.passed else "FAILED"
        return (f"{self.name}: max |diff| {self.max_abs_diff:.3g}, mean |diff| {self.mean_abs_diff:.3g}, "
                f"cosine mean {self.mean_cosine:.5f} min {self.min_cosine:.5f} ({', '.join(limits) or 'no limit'}: {verdict})")


@dataclass
class ComparisonResult:
    reference: str
    candidate: str
    outputs: dict[str, OutputComparison] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.outputs) and all(o.passed for o in self.outputs.values())

    def describe(self) -> str:
        return f"{self.candidate} vs {self.reference}:\n  " + "\n  ".join(o.describe() for o in self.outputs.values())


def _row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(denom > 0, (a * b).sum(1) / np.maximum(denom, 1e-30), 1.0)


def _limit(value: float | Mapping[str, float] | None, name: str) -> float | None:
    return value.get(name) if isinstance(value, Mapping) else value


def compare_outputs(
    reference: Iterable[dict[str, np.ndarray]],
    candidate: Iterable[dict[str, np.ndarray]],
    atol: float | Mapping[str, float] | None = None,
    cosine_floor: float | Mapping[str, float] | None = None,
    names: tuple[str, str] = ("reference", "candidate"),
) -> ComparisonResult:
    """Compare matching batches of outputs (same keys, same shapes)."""
    diffs: dict[str, list[np.ndarray]] = {}
    cosines: dict[str, list[np.ndarray]] = {}
    reference, candidate = list(reference), list(candidate)
    if len(reference) != len(candidate):
        raise ValueError(f"{names[0]} has {len(reference)} batches and {names[1]} {len(candidate)}")
    for ref, cand in zip(reference, candidate):
        for key, r in ref.items():
            if key not in cand:
                raise ValueError(f"{names[1]} has no output {key!r}")
            c = cand[key]
            if r.shape != c.shape:
                raise ValueError(f"output {key!r}: shapes differ ({r.shape} vs {c.shape})")
            diffs.setdefault(key, []).append(np.abs(r.astype(np.float64) - c.astype(np.float64)).ravel())
            cosines.setdefault(key, []).append(_row_cosine(r, c))
    result = ComparisonResult(*names)
    for key in diffs:
        d = np.concatenate(diffs[key])
        cos = np.concatenate(cosines[key])
        result.outputs[key] = OutputComparison(
            key, float(d.max()), float(d.mean()), float(cos.min()), float(cos.mean()),
            _limit(atol, key), _limit(cosine_floor, key),
        )
    return result


def compare_runners(
    reference: Runner,
    candidate: Runner,
    feeds: Iterable[dict[str, np.ndarray]],
    atol: float | Mapping[str, float] | None = None,
    cosine_floor: float | Mapping[str, float] | None = None,
) -> ComparisonResult:
    """Run both (active) runners on the same feeds and compare every output."""
    refs, cands = [], []
    for feed in feeds:
        refs.append(reference.infer(feed))
        cands.append(candidate.infer(feed))
    return compare_outputs(refs, cands, atol, cosine_floor, (reference.name, candidate.name))
