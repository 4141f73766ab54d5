"""The optimal assignment the tracker and the identity resolver match with."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

try:
    import lap
except ImportError:  # lap is optional; scipy solves the same padded problem
    lap = None


def assign(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one matching in which no matched pair costs more than ``max_cost``.

    Leaving a row or a column unmatched costs ``max_cost / 2``, so the optimum is taken over
    matchings that may leave pairs out (the Jonker-Volgenant formulation with a cost limit), not
    over full matchings filtered afterwards. Infinite costs forbid a pair.

    Returns (K, 2) matched (row, column) pairs, the unmatched rows and the unmatched columns.
    """
    n_rows, n_cols = cost.shape
    if n_rows == 0 or n_cols == 0:
        return np.zeros((0, 2), np.intp), np.arange(n_rows), np.arange(n_cols)
    forbidden = 2 * max_cost + 1.0  # dearer than leaving both sides unmatched
    finite = np.where(np.isfinite(cost) & (cost <= max_cost), cost, forbidden)
    if lap is not None:
        _, row_to_col, _ = lap.lapjv(finite, extend_cost=True, cost_limit=max_cost)
        rows = np.flatnonzero(row_to_col >= 0)
        cols = row_to_col[rows]
    else:
        padded = np.full((n_rows + n_cols, n_cols + n_rows), forbidden)
        padded[:n_rows, :n_cols] = finite
        padded[:n_rows, n_cols:] = np.where(np.eye(n_rows, dtype=bool), max_cost / 2, forbidden)
        padded[n_rows:, :n_cols] = np.where(np.eye(n_cols, dtype=bool), max_cost / 2, forbidden)
        padded[n_rows:, n_cols:] = 0.0
        r, c = linear_sum_assignment(padded)
        keep = (r < n_rows) & (c < n_cols)
        rows, cols = r[keep], c[keep]
    ok = finite[rows, cols] <= max_cost
    rows, cols = rows[ok], cols[ok]
    matches = np.stack([rows, cols], axis=1).astype(np.intp)
    return matches, np.setdiff1d(np.arange(n_rows), rows), np.setdiff1d(np.arange(n_cols), cols)
