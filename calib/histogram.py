"""Per-tensor activation statistics and the three ways of turning them into a range (amax).

One :class:`AbsHistogram` per tensor is filled batch by batch during the calibration pass; only the
histogram stays in memory, never the activations. It counts ``|x|`` in bins of a fixed width
(chosen from the first batch so that its largest value spans :data:`NUM_BINS` bins) and keeps the
exact minimum and maximum. When a later batch holds a larger value the histogram grows by bins of
the same width; past :data:`MAX_BINS` bins, neighbouring bins are merged in pairs (the width doubles).

From a histogram, symmetric int8 quantization needs one number per tensor, ``amax``: values are
clipped to [-amax, amax] and mapped to [-127, 127] with ``scale = amax / 127``.

- ``minmax``: amax = max |x| (exact, from the running extremes).
- ``percentile``: amax = the smallest bin edge below which ``p`` percent of |x| lie.
- ``entropy``: the KL-divergence search of TensorRT's entropy calibrator (Migacz, "8-bit inference
  with TensorRT", GTC 2017): for each candidate threshold ``i`` bins from zero, the reference
  distribution P is ``hist[:i]`` with every count beyond ``i`` added to its last bin; the candidate
  Q merges ``hist[:i]`` into 128 levels and spreads each level's count evenly over its non-empty
  bins. amax is the upper edge of the threshold that minimises KL(P || Q), searched from 128 bins
  up to the whole histogram. Exact zeros are left out of P and Q (as the ``skip_zeros`` option of
  NVIDIA's pytorch-quantization histogram calibrator does): zero is exact in int8, and the zeros of
  a ReLU output otherwise dominate the divergence and clip most of the signal.
"""

from __future__ import annotations

import math

import numpy as np

NUM_BINS = 2048  # bins spanned by the first batch's largest |x|
MAX_BINS = 8192  # growth beyond this merges bins in pairs
_CHUNK = 1 << 16
QUANT_LEVELS = 128  # int8 levels on one side of zero
METHODS = ("entropy", "percentile", "minmax")
DEFAULT_PERCENTILE = 99.99


class AbsHistogram:
    """Running histogram of |x| with exact extremes, for one tensor."""

    def __init__(self, num_bins: int = NUM_BINS, max_bins: int = MAX_BINS):
        if not 1 <= num_bins <= max_bins:
            raise ValueError(f"need 1 <= num_bins <= max_bins, got {num_bins}, {max_bins}")
        self.num_bins = num_bins
        self.max_bins = max_bins
        self.counts = np.zeros(0, np.int64)
        self.width = 0.0  # bin width; 0 until a non-zero value has been seen
        self.zeros = 0  # values counted before the width was known (all exactly 0)
        self.exact_zeros = 0  # values exactly 0 (ReLU outputs have many; see amax_entropy)
        self.min = math.inf
        self.max = -math.inf
        self.count = 0

    @property
    def amax(self) -> float:
        """Largest |x| seen."""
        return max(abs(self.min), abs(self.max)) if self.count else 0.0

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        if x.size == 0:
            return
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        lo, hi = float(x.min()), float(x.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("activation holds NaN or infinity; the model or its input is broken")
        self.min, self.max = min(self.min, lo), max(self.max, hi)
        self.count += x.size
        top = max(abs(lo), abs(hi))
        if top == 0.0:
            self.exact_zeros += x.size
            if self.width == 0.0:
                self.zeros += x.size
            else:
                self.counts[0] += x.size
            return
        if self.width == 0.0:
            self.width = top / self.num_bins
            self.counts = np.zeros(self.num_bins, np.int64)
            self.counts[0] += self.zeros
            self.zeros = 0
        self._fit(top)
        n = len(self.counts)
        inverse = np.float32(1.0 / self.width)
        flat = x.reshape(-1)
        for start in range(0, flat.size, _CHUNK):  # chunks that stay in cache: ~3x faster than one pass
            part = np.abs(flat[start : start + _CHUNK])
            self.exact_zeros += part.size - np.count_nonzero(part)
            part *= inverse
            binned = np.bincount(part.astype(np.intp), minlength=n + 1)
            self.counts += binned[:n]
            self.counts[-1] += binned[n:].sum()  # |x| on the top edge (rounding) joins the last bin

    def _fit(self, top: float) -> None:
        """Grow (and if needed coarsen) the bins so that ``top`` falls inside them."""
        needed = math.ceil(top / self.width)
        if needed <= len(self.counts):
            return
        while needed > self.max_bins:
            if len(self.counts) % 2:
                self.counts = np.append(self.counts, 0)
            self.counts = self.counts.reshape(-1, 2).sum(1)
            self.width *= 2
            needed = math.ceil(top / self.width)
        if needed > len(self.counts):
            self.counts = np.concatenate([self.counts, np.zeros(needed - len(self.counts), np.int64)])


def amax_minmax(hist: AbsHistogram) -> float:
    return hist.amax


def amax_percentile(hist: AbsHistogram, percentile: float = DEFAULT_PERCENTILE) -> float:
    """Upper edge of the first bin at which the share of |x| reaches ``percentile`` (capped at max |x|)."""
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    total = hist.counts.sum()
    if total == 0:
        return hist.amax
    cdf = np.cumsum(hist.counts) / total
    index = int(np.searchsorted(cdf, percentile / 100.0 - 1e-12))
    return min((index + 1) * hist.width, hist.amax)


def amax_entropy(hist: AbsHistogram, levels: int = QUANT_LEVELS, max_candidates: int = MAX_BINS, skip_zeros: bool = True) -> float:
    """Threshold minimising KL(P || Q) between the clipped and the quantized distribution (see module doc).

    Candidate thresholds run from ``levels`` bins to the whole histogram, with a stride that keeps
    their number near ``max_candidates``; ties go to the larger threshold. With ``skip_zeros``
    exact zeros are left out: int8 represents 0 exactly, and the spike of a ReLU output's zeros
    would otherwise dominate the divergence and pull the threshold far into the tail.
    """
    counts = hist.counts.astype(np.float64)
    if skip_zeros and len(counts):
        counts[0] -= hist.exact_zeros
    n = len(counts)
    if n <= levels or counts.sum() <= 0:
        return hist.amax
    stride = max(1, -(-(n - levels) // max_candidates))
    candidates = np.arange(levels, n + 1, stride)
    if candidates[-1] != n:
        candidates = np.append(candidates, n)
    divergence = kl_divergences(counts, candidates, levels)
    best = np.flatnonzero(divergence == divergence.min())[-1]
    return min(float(candidates[best]) * hist.width, hist.amax)


def kl_divergences(counts: np.ndarray, thresholds: np.ndarray, levels: int = QUANT_LEVELS) -> np.ndarray:
    """KL(P || Q) of each threshold (in bins), in O(levels) per threshold from prefix sums.

    Within a level, Q is the same on every non-empty bin, so the sum over bins of p log q reduces to
    a sum over levels; P differs from the plain histogram only in its last bin (the outliers).
    """
    counts = np.asarray(counts, np.float64)
    total = counts.sum()
    t = np.asarray(thresholds, np.int64)
    prefix = np.concatenate([[0.0], np.cumsum(counts)])
    prefix_nonzero = np.concatenate([[0.0], np.cumsum(counts > 0)])
    with np.errstate(divide="ignore", invalid="ignore"):
        h_log_h = np.where(counts > 0, counts * np.log(np.where(counts > 0, counts, 1.0)), 0.0)
    prefix_hlogh = np.concatenate([[0.0], np.cumsum(h_log_h)])

    inside = prefix[t]  # S: counts below the threshold
    last = counts[t - 1]  # the bin that also takes the outliers
    outliers = total - inside
    # Level k spans bins [ceil(k t / levels), ceil((k + 1) t / levels)).
    bounds = (np.arange(levels + 1)[None, :] * t[:, None] + levels - 1) // levels
    level_sum = prefix[bounds[:, 1:]] - prefix[bounds[:, :-1]]
    level_nonzero = prefix_nonzero[bounds[:, 1:]] - prefix_nonzero[bounds[:, :-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_q = np.where(level_sum > 0, np.log(level_sum) - np.log(np.maximum(level_nonzero, 1.0)), 0.0) - np.log(inside)[:, None]
        sum_p_log_q = (level_sum * log_q).sum(1) - last * log_q[:, -1]  # bins below the last one
        body = prefix_hlogh[t - 1] - (inside - last) * np.log(total) - sum_p_log_q
        p_last = (last + outliers) / total
        tail = np.where(p_last > 0, p_last * (np.log(p_last) - np.where(last > 0, log_q[:, -1], -np.inf)), 0.0)
    kl = body / total + tail
    kl[(last <= 0) & (outliers > 0)] = np.inf  # P has mass in the last bin where Q has none
    return kl


def amax_for(hist: AbsHistogram, method: str, percentile: float = DEFAULT_PERCENTILE) -> float:
    if method == "entropy":
        return amax_entropy(hist)
    if method == "percentile":
        return amax_percentile(hist, percentile)
    if method == "minmax":
        return amax_minmax(hist)
    raise ValueError(f"unknown calibration method {method!r}: expected one of {', '.join(METHODS)}")
