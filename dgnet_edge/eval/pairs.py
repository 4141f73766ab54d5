"""Rank-1 and ROC AUC on a set of crops from one video, where time stands in for the camera rule.

In one camera, two crops of a person a few frames apart are near copies; counting them would
reward matching pixels, not people. So a same-person pair closer than ``min_gap`` frames is junk:
it is neither a positive nor a candidate in the ranking (Market-1501 drops same-camera matches
for the same reason). Every crop is a query against all the others; rank-1 counts the queries
whose most similar non-junk crop shows the same person (queries with no positive are left out),
and the ROC AUC is over all non-junk pairs: the chance that a same-person pair scores above a
different-person pair (ties count half).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MIN_GAP = 30  # frames (3 s at vtest.avi's 10 frames/s)


@dataclass(frozen=True)
class PairScores:
    rank1: float  # %
    auc: float  # %
    queries: int
    positive_pairs: int
    negative_pairs: int

    def as_dict(self) -> dict:
        return asdict(self)


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the boolean labels ``positive`` (Mann-Whitney, ties half)."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("the ROC AUC needs both positive and negative pairs")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), np.float64)
    starts = np.flatnonzero(np.r_[True, np.diff(sorted_scores) != 0])
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends):  # average ranks (1-based) over ties
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def valid_pairs(people: np.ndarray, frames: np.ndarray, min_gap: int = MIN_GAP) -> tuple[np.ndarray, np.ndarray]:
    """(N, N) masks: pairs that count (no self pair, no same-person pair under ``min_gap`` frames)
    and, among them, the same-person ones."""
    people, frames = np.asarray(people), np.asarray(frames)
    same = people[:, None] == people[None, :]
    near = np.abs(frames[:, None] - frames[None, :]) < min_gap
    valid = ~(same & near)
    np.fill_diagonal(valid, False)
    return valid, same & valid


def pair_scores(similarity: np.ndarray, people: np.ndarray, frames: np.ndarray, min_gap: int = MIN_GAP) -> PairScores:
    """Rank-1 and ROC AUC of an (N, N) similarity matrix (larger is closer) over one set of crops."""
    similarity = np.asarray(similarity, np.float64)
    if similarity.shape != (len(people), len(people)):
        raise ValueError(f"expected a ({len(people)}, {len(people)}) similarity matrix, got {similarity.shape}")
    valid, positive = valid_pairs(people, frames, min_gap)
    has_positive = positive.any(axis=1)
    masked = np.where(valid, similarity, -np.inf)
    best = masked.argmax(axis=1)
    hits = positive[np.arange(len(people)), best] & has_positive
    upper = np.triu(valid, k=1)
    return PairScores(
        rank1=100.0 * hits.sum() / max(int(has_positive.sum()), 1),
        auc=100.0 * roc_auc(similarity[upper], positive[upper]),
        queries=int(has_positive.sum()),
        positive_pairs=int(positive[upper].sum()),
        negative_pairs=int((upper & ~positive).sum()),
    )
