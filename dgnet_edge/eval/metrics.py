"""Ranking metrics for person re-identification: CMC, mAP and mINP under the Market-1501 protocol.

:func:`evaluate` is a pure numpy function of a (query × gallery) distance matrix and the ids and
cameras of both sides. It returns a :class:`RankingResult`.

Protocol (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015), per query:

- gallery items with the query's id taken by the query's camera are *junk*: they are removed from
  the ranking, so they neither help nor hurt;
- gallery items with id ``-1`` are junk for every query and are removed too;
- gallery items with id ``0`` (distractors) stay in the ranking as negatives;
- *good* matches are the gallery items with the query's id from another camera;
- a query without any good match is skipped; :attr:`RankingResult.num_valid_queries` says how many
  queries counted.

Positions below are 0-based positions in the ranking after junk removal; ``r_i`` is the position
of the ``i``-th good match (``i = 0, 1, ...``) and ``n`` the number of good matches.

- CMC at rank k: the fraction of valid queries whose first good match is among the first k.
- AP, two conventions (say which one a number used; they differ by up to a few tenths of a point
  of mAP on Market-1501):

  - ``"standard"``: the mean over good matches of the precision at that match,
    ``AP = (1/n) Σ_i (i+1)/(r_i+1)`` (torchreid, fast-reid);
  - ``"trapezoid"``: the rule of the Market-1501 MATLAB evaluation code, also used by DG-Net and
    Person_reID_baseline_pytorch, ``AP = (1/n) Σ_i (p_{i-1} + p_i)/2`` with ``p_i = (i+1)/(r_i+1)``
    and ``p_{i-1} = i/r_i`` (taken as 1 when ``r_i = 0``).

- INP (Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook", TPAMI 2021):
  ``n / (r_last + 1)``, the precision at the last good match; mINP is its mean over valid queries.

Ties in distance are broken by gallery index (a stable sort): of two gallery items at the same
distance, the one that comes first in the gallery ranks first. Other implementations sort with an
unspecified tie order, so on matrices with many exact ties (e.g. quantized features) their numbers
can differ slightly from ours and from run to run.

The work is done in chunks of queries, each sorted at once, so memory stays at about 130 MB on top
of the distance matrix (which may be a ``np.memmap``) whatever the number of queries. float32
distances take the fast path (a sort of packed 64-bit keys, about 2 s for Market-1501's
3,368 × 15,913 on one core); other dtypes use ``np.argsort(kind="stable")`` (about twice as long).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["AP_CONVENTIONS", "RankingResult", "evaluate"]

APConvention = Literal["standard", "trapezoid"]
AP_CONVENTIONS: tuple[str, ...] = ("standard", "trapezoid")

# Elements of the (queries × gallery) work arrays per chunk: ~4M keeps every temporary below ~35 MB.
_CHUNK_ELEMENTS = 1 << 22

_NEGATIVE, _GOOD, _JUNK = 0, 1, 2


@dataclass(frozen=True, eq=False)
class RankingResult:
    """Scores of one ranking, as fractions in [0, 1] (:meth:`as_dict` gives percent).

    Attributes:
        cmc: float64 array of length ``max_rank``; ``cmc[k-1]`` is the CMC at rank k (read-only).
        mAP: mean average precision over the valid queries, in the ``ap`` convention.
        mINP: mean inverse negative penalty over the valid queries.
        num_valid_queries: queries with at least one good match; the others were skipped.
        num_queries: all queries passed in.
        ap: the AP convention used, ``"standard"`` or ``"trapezoid"``.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    num_queries: int
    ap: str

    def rank(self, k: int) -> float:
        """CMC at rank ``k`` (1-based: ``rank(1)`` is rank-1 accuracy), as a fraction."""
        if not 1 <= k <= len(self.cmc):
            raise ValueError(f"rank k must be in 1..{len(self.cmc)} (max_rank), got {k}")
        return float(self.cmc[k - 1])

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary for reports, with the scores in **percent** (0-100).

        Keys: ``rank1``, ``rank5``, ``rank10`` (those within ``max_rank``), ``mAP``, ``mINP`` (all
        percent), ``ap`` (the AP convention), ``num_valid_queries``, ``num_queries``. The attributes
        of the result itself stay fractions.
        """
        d: dict[str, Any] = {f"rank{k}": 100.0 * self.rank(k) for k in (1, 5, 10) if k <= len(self.cmc)}
        d.update(
            mAP=100.0 * float(self.mAP),
            mINP=100.0 * float(self.mINP),
            ap=self.ap,
            num_valid_queries=int(self.num_valid_queries),
            num_queries=int(self.num_queries),
        )
        return d


def evaluate(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 50,
    ap: APConvention = "standard",
) -> RankingResult:
    """CMC, mAP and mINP of a ranking under the Market-1501 protocol (see the module docstring).

    Args:
        distmat: (Q, G) distances, smaller is closer; any real dtype, finite values. float32 is the
            fast path. May be a memory map: it is read one chunk of queries at a time.
        q_pids: (Q,) integer identity of each query.
        g_pids: (G,) integer identity of each gallery item; ``0`` is a distractor, ``-1`` junk.
        q_camids: (Q,) integer camera of each query.
        g_camids: (G,) integer camera of each gallery item.
        max_rank: length of the returned CMC curve.
        ap: AP convention, ``"standard"`` (mean precision at each hit; torchreid, fast-reid) or
            ``"trapezoid"`` (Market-1501 MATLAB code, DG-Net).

    Returns:
        A :class:`RankingResult` with fractions (not percent).

    Raises:
        ValueError: on inputs of the wrong shape, dtype or with non-finite distances, on an
            unknown ``ap`` or a ``max_rank`` below 1, and when no query has a good match.
    """
    if ap not in AP_CONVENTIONS:
        raise ValueError(f"ap must be one of {', '.join(map(repr, AP_CONVENTIONS))}, got {ap!r}")
    if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise ValueError(f"max_rank must be an integer >= 1, got {max_rank!r}")
    distmat = _as_distmat(distmat)
    num_q, num_g = distmat.shape
    q_pids = _as_ids(q_pids, "q_pids", num_q, "rows")
    q_camids = _as_ids(q_camids, "q_camids", num_q, "rows")
    g_pids = _as_ids(g_pids, "g_pids", num_g, "columns")
    g_camids = _as_ids(g_camids, "g_camids", num_g, "columns")

    num_good = np.zeros(num_q, np.int64)
    ap_sum = np.zeros(num_q, np.float64)
    first_hit = np.zeros(num_q, np.int64)
    last_hit = np.zeros(num_q, np.int64)
    g_junk = g_pids == -1
    chunk = max(1, min(num_q, _CHUNK_ELEMENTS // num_g))
    for start in range(0, num_q, chunk):
        stop = min(num_q, start + chunk)
        block = np.asarray(distmat[start:stop])
        _check_finite(block, start)
        order = _stable_order(block)
        # Status of each gallery item for each query, in gallery order, then in ranking order.
        same_id = q_pids[start:stop, None] == g_pids[None, :]
        same_cam = q_camids[start:stop, None] == g_camids[None, :]
        good = same_id & ~same_cam & ~g_junk
        junk = (same_id & same_cam) | g_junk
        status = good.view(np.int8) * np.int8(_GOOD) + junk.view(np.int8) * np.int8(_JUNK)
        ranked = np.take_along_axis(status, order, axis=1)
        _score_chunk(ranked, ap, num_good[start:stop], ap_sum[start:stop], first_hit[start:stop], last_hit[start:stop])

    valid = num_good > 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError(
            f"none of the {num_q} queries has a good match (same id, other camera, id != -1) in the "
            f"gallery of {num_g}; check that query and gallery ids and cameras belong together"
        )
    hits = first_hit[valid]
    cmc = np.bincount(hits[hits < max_rank], minlength=int(max_rank)).cumsum() / num_valid
    cmc.setflags(write=False)
    return RankingResult(
        cmc=cmc,
        mAP=float(np.mean(ap_sum[valid] / num_good[valid])),
        mINP=float(np.mean(num_good[valid] / (last_hit[valid] + 1))),
        num_valid_queries=num_valid,
        num_queries=num_q,
        ap=ap,
    )


def _score_chunk(
    ranked: np.ndarray,
    ap: str,
    num_good: np.ndarray,
    ap_sum: np.ndarray,
    first_hit: np.ndarray,
    last_hit: np.ndarray,
) -> None:
    """Fill the per-query outputs of one chunk from its (C, G) status array in ranking order.

    Only good and junk entries are visited (``np.nonzero``), in row-major order: per query, by raw
    ranking position. A good match's position after junk removal is its raw position minus the
    junk entries before it in the same row.
    """
    num_rows = ranked.shape[0]
    rows, cols = np.nonzero(ranked)
    is_junk = ranked[rows, cols] == _JUNK
    good = ~is_junk
    g_rows = rows[good]
    if len(g_rows) == 0:
        return
    junk_before = np.cumsum(is_junk) - is_junk  # junk entries before each entry, counted over all rows
    row_starts = np.searchsorted(rows, np.arange(num_rows))  # first entry of each row
    junk_in_row = junk_before[good] - junk_before[row_starts[g_rows]]
    r = cols[good] - junk_in_row  # 0-based position after junk removal
    counts = np.bincount(g_rows, minlength=num_rows)
    g_starts = np.cumsum(counts) - counts
    i = np.arange(len(g_rows)) - g_starts[g_rows]  # ordinal of the hit within its query

    precision = (i + 1) / (r + 1)
    if ap == "standard":
        terms = precision
    else:
        previous = np.divide(i, r, out=np.ones(len(r)), where=r > 0)
        terms = (previous + precision) / 2
    ap_sum[:] = np.bincount(g_rows, weights=terms, minlength=num_rows)
    num_good[:] = counts
    present = counts > 0
    first_hit[present] = r[g_starts[present]]
    last_hit[present] = r[g_starts[present] + counts[present] - 1]


def _stable_order(block: np.ndarray) -> np.ndarray:
    """Per row, the column indices sorted by value, ties by column index (like a stable argsort)."""
    if block.dtype == np.float32 and sys.byteorder == "little" and block.shape[1] < 2**31:
        # Pack (value, column) into one int64 key per element and sort the keys: the keys are
        # unique, so any sort gives the stable order, and sorting values beats argsort. The high
        # word maps float32 bits to an int32 of the same order (-0.0 and 0.0 map to 0).
        bits = np.ascontiguousarray(block).view(np.int32)
        sign = bits >> 31
        high = (bits & 0x7FFFFFFF) ^ sign
        high -= sign
        keys = np.empty(block.shape + (2,), np.int32)
        keys[..., 0] = np.arange(block.shape[1], dtype=np.int32)
        keys[..., 1] = high
        packed = keys.view(np.int64)[..., 0]
        packed.sort(axis=1)
        return keys[..., 0]
    return np.argsort(block, axis=1, kind="stable")


def _as_distmat(distmat: Any) -> np.ndarray:
    if not isinstance(distmat, np.ndarray):
        distmat = np.asarray(distmat)
    if distmat.ndim != 2:
        raise ValueError(f"distmat must be 2-D (queries × gallery), got shape {distmat.shape}")
    if not (np.issubdtype(distmat.dtype, np.floating) or np.issubdtype(distmat.dtype, np.integer)):
        raise ValueError(f"distmat must hold real numbers, got dtype {distmat.dtype}")
    if distmat.shape[0] == 0 or distmat.shape[1] == 0:
        raise ValueError(f"distmat is empty: shape {distmat.shape}")
    return distmat


def _as_ids(ids: Any, name: str, expected: int, side: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {ids.shape}")
    if len(ids) != expected:
        raise ValueError(f"{name} has {len(ids)} entries but distmat has {expected} {side}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {ids.dtype}")
    return ids.astype(np.int64, copy=False)


def _check_finite(block: np.ndarray, start: int) -> None:
    if np.issubdtype(block.dtype, np.floating):
        # Two reductions instead of an isfinite mask: NaN propagates into min, inf shows at the ends.
        lo, hi = block.min(), block.max()
        if not (np.isfinite(lo) and np.isfinite(hi)):
            rows, cols = np.nonzero(~np.isfinite(block))
            raise ValueError(
                f"distmat holds non-finite values, first at [{start + rows[0]}, {cols[0]}]: {block[rows[0], cols[0]]}"
            )
