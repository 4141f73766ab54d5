"""k-reciprocal re-ranking of a query × gallery distance matrix.

Zhong, Zheng, Cao and Li, "Re-ranking Person Re-identification with k-reciprocal Encoding",
CVPR 2017. https://arxiv.org/abs/1701.08398

All ``q + g`` items (queries then gallery) are one set; ``d(i, j)`` is the given distance
between them. The steps, for every item ``i``:

1. Row scaling: ``d(i, ·)`` is divided by its largest value, so each row lies in [0, 1]. (Negative
   inputs, e.g. rounding below zero, are first clamped to 0.)
2. ``N(i, k)``: the ``k + 1`` nearest items of ``i`` (itself included) under the scaled distance.
   ``R(i, k) = {j in N(i, k) : i in N(j, k)}`` are its k-reciprocal neighbours.
3. Expansion: ``R*(i) = R(i, k1)`` united with every ``R(c, k1/2)``, ``c in R(i, k1)``, that shares
   more than two thirds of its members with ``R(i, k1)``. ``k1/2`` is rounded half to even
   (``k1 = 20`` gives 10).
4. Encoding: ``V(i, j) = exp(-d(i, j))`` for ``j in R*(i)``, 0 elsewhere, normalised to sum 1.
5. Local query expansion (when ``k2 > 1``): ``V(i)`` is replaced by the mean of ``V`` over the
   ``k2`` nearest items of ``i``.
6. Jaccard distance ``dJ(i, j) = 1 - Σ min(V(i), V(j)) / Σ max(V(i), V(j))``, with
   ``Σ max = Σ V(i) + Σ V(j) - Σ min`` (``2 - Σ min`` in the usual case where every row sums to 1;
   an item that is not among its own nearest neighbours, possible only when its distance to itself
   is not the smallest, can have an empty encoding, and is at Jaccard distance 1 from everything).
7. Result: ``(1 - lambda_value) · dJ + lambda_value · d`` for query rows and gallery columns.

Which distance to pass: the paper weighs neighbours with ``exp(-d)`` of a squared distance (its
Mahalanobis distance is a squared form), so pass squared Euclidean distances
(``euclidean_distance(..., squared=True)``) or cosine distances. For L2-normalised features the
cosine distance is half the squared Euclidean one, and since every row is scaled by its maximum,
the two give the same result.

Determinism and ties: neighbour lists come from a stable order (ties broken by item index, queries
before gallery); the result depends only on the inputs.

Memory: the three input matrices are O((q + g)²) and are the caller's; for Market-1501
(3,368 queries, 15,913 gallery) they take 45 MB (query × query), 214 MB (query × gallery) and
1.0 GB (gallery × gallery) in float32. This function never builds the (q + g)² combined matrix:
it reads the inputs in row chunks, keeps the ``k1 + 1`` nearest neighbours of each item and the
sparse encodings ``V`` (at most O((q + g) · k2 · k1²) entries; about 100 per item on Market-size
data), and returns one (q, g) float32 matrix (214 MB for Market). On top of the inputs and the
result it needs about 150 MB at Market size. Arithmetic is float32 for the scaled distances
and the encodings and float64 for the sums.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["rerank"]

# Elements per chunk of the work arrays (~4M keeps each temporary within a few tens of MB).
_CHUNK_ELEMENTS = 1 << 22


class _Sparse(NamedTuple):
    """Rows of a sparse (n × n) matrix: entries of row i are [indptr[i], indptr[i+1]), columns ascending."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray


def rerank(
    q_g_dist: np.ndarray,
    q_q_dist: np.ndarray,
    g_g_dist: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> np.ndarray:
    """Re-ranked (q, g) float32 distances by k-reciprocal encoding (see the module docstring).

    Args:
        q_g_dist: (q, g) query-to-gallery distances.
        q_q_dist: (q, q) query-to-query distances.
        g_g_dist: (g, g) gallery-to-gallery distances. Same kind of distance for all three.
        k1: size of the k-reciprocal neighbourhood (paper: 20).
        k2: number of neighbours averaged in local query expansion; 1 turns it off (paper: 6).
        lambda_value: weight of the original distance against the Jaccard distance, in [0, 1]
            (paper: 0.3).

    Returns:
        (q, g) float32 re-ranked distances, smaller is closer; pass them to
        :func:`~dgnet_edge.eval.evaluate` like the original distances.

    Raises:
        ValueError: on shapes that do not fit together, non-finite distances or parameters out of
            range.
    """
    q_g, q_q, g_g = _check_inputs(q_g_dist, q_q_dist, g_g_dist)
    for name, k in (("k1", k1), ("k2", k2)):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {k!r}")
    if not 0.0 <= float(lambda_value) <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value!r}")

    num_q, num_g = q_g.shape
    n = num_q + num_g
    k_forward = min(k1 + 1, n)
    k_half = min(int(np.around(k1 / 2)) + 1, n)
    k_expand = min(k2, n)
    nearest, scale = _nearest(q_g, q_q, g_g, max(k_forward, k_expand))

    v = _encode(q_g, q_q, g_g, nearest[:, :k_forward], nearest[:, :k_half], scale)
    if k2 != 1:
        v = _expand(v, nearest[:, :k_expand])
    return _blend(v, q_g, scale, float(lambda_value))


def _check_inputs(q_g: Any, q_q: Any, g_g: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q_g, q_q, g_g = (np.asarray(a) for a in (q_g, q_q, g_g))
    for name, a in (("q_g_dist", q_g), ("q_q_dist", q_q), ("g_g_dist", g_g)):
        if a.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {a.shape}")
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
    num_q, num_g = q_g.shape
    if num_q == 0 or num_g == 0:
        raise ValueError(f"q_g_dist is empty: shape {q_g.shape}")
    if q_q.shape != (num_q, num_q):
        raise ValueError(f"q_q_dist must be ({num_q}, {num_q}) to match q_g_dist {q_g.shape}, got {q_q.shape}")
    if g_g.shape != (num_g, num_g):
        raise ValueError(f"g_g_dist must be ({num_g}, {num_g}) to match q_g_dist {q_g.shape}, got {g_g.shape}")
    return q_g, q_q, g_g


def _row_block(q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, start: int, stop: int, out: np.ndarray) -> None:
    """Rows [start, stop) of the combined distances into ``out`` (float32), items = queries then gallery.

    Row i holds the distances *to* item i from every item (column i of [[q_q, q_g], [q_g.T, g_g]]);
    for symmetric inputs that is the same as the distances from i.
    """
    num_q = q_q.shape[0]
    if stop <= num_q:
        _copy_transposed(out[:, :num_q], q_q[:, start:stop])
        out[:, num_q:] = q_g[start:stop]
    else:
        _copy_transposed(out[:, :num_q], q_g[:, start - num_q : stop - num_q])
        _copy_transposed(out[:, num_q:], g_g[:, start - num_q : stop - num_q])


def _copy_transposed(dst: np.ndarray, src: np.ndarray, tile: int = 1024) -> None:
    """``dst[...] = src.T`` in tiles of source rows: about 3x faster than one strided copy."""
    for r in range(0, src.shape[0], tile):
        dst[:, r : r + tile] = src[r : r + tile].T


def _nearest(q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest items of every item in stable order (n, k) int64, and each row's scale (n,) float32."""
    num_q = q_q.shape[0]
    n = num_q + g_g.shape[0]
    nearest = np.empty((n, k), np.int64)
    scale = np.empty(n, np.float32)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    # Chunks never straddle the query/gallery boundary.
    bounds = [*range(0, num_q, chunk), *range(num_q, n, chunk), n]
    buf = np.empty((chunk, n), np.float32)
    for start, stop in zip(bounds[:-1], bounds[1:]):
        block = buf[: stop - start]
        _row_block(q_g, q_q, g_g, start, stop, block)
        lo, hi = block.min(), block.max()
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError("distances must be finite; found NaN or infinity")
        np.maximum(block, 0, out=block)
        s = block.max(axis=1)
        s[s <= 0] = 1  # an all-zero row stays all zero
        block /= s[:, None]
        scale[start:stop] = s
        nearest[start:stop] = _smallest_k(block, k)
    return nearest, scale


def _smallest_k(block: np.ndarray, k: int) -> np.ndarray:
    """Columns of the k smallest values per row, ascending, ties by column (a stable order)."""
    if k >= block.shape[1]:
        return np.argsort(block, axis=1, kind="stable")
    # Everything up to each row's k-th smallest value (k entries, more on ties), then sorted.
    threshold = np.partition(block, k - 1, axis=1)[:, k - 1]
    rows, cols = np.nonzero(block <= threshold[:, None])
    order = np.lexsort((cols, block[rows, cols], rows))
    cols = cols[order]
    counts = np.bincount(rows, minlength=len(block))
    starts = np.cumsum(counts) - counts
    return cols[starts[:, None] + np.arange(k)]


def _scaled(
    q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, scale: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Scaled combined distances at (rows, cols), computed exactly as in :func:`_nearest`."""
    num_q = q_q.shape[0]
    out = np.empty(len(rows), np.float32)
    row_q, col_q = rows < num_q, cols < num_q
    m = row_q & col_q
    out[m] = q_q[cols[m], rows[m]]
    m = row_q & ~col_q
    out[m] = q_g[rows[m], cols[m] - num_q]
    m = ~row_q & col_q
    out[m] = q_g[cols[m], rows[m] - num_q]
    m = ~row_q & ~col_q
    out[m] = g_g[cols[m] - num_q, rows[m] - num_q]
    np.maximum(out, 0, out=out)
    out /= scale[rows]
    return out


def _reciprocal(forward: np.ndarray) -> np.ndarray:
    """(n, k) bool: whether forward[i, m] has i among its own forward neighbours."""
    n, k = forward.shape
    mask = np.empty((n, k), bool)
    chunk = max(1, _CHUNK_ELEMENTS // (k * k))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        items = np.arange(start, stop)
        mask[start:stop] = (forward[forward[start:stop]] == items[:, None, None]).any(axis=2)
    return mask


def _encode(
    q_g: np.ndarray,
    q_q: np.ndarray,
    g_g: np.ndarray,
    forward: np.ndarray,
    forward_half: np.ndarray,
    scale: np.ndarray,
) -> _Sparse:
    """The encodings V (steps 2-4) as sparse rows."""
    n, k = forward.shape
    k_half = forward_half.shape[1]
    recip = _reciprocal(forward)
    recip_half = _reciprocal(forward_half)
    rows_out, cols_out = [], []
    chunk = max(1, _CHUNK_ELEMENTS // (k * k_half * k))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        f, r = forward[start:stop], recip[start:stop]  # (C, k): R(i) = f[r]
        fh, rh = forward_half[f], recip_half[f]  # (C, k, kh): R(c, k1/2) of each candidate c = f[i, m]
        in_r = ((fh[..., None] == f[:, None, None, :]) & r[:, None, None, :]).any(axis=3)
        shared = (in_r & rh).sum(axis=2)
        accept = r & (3 * shared > 2 * rh.sum(axis=2))  # more than 2/3 of R(c, k1/2) lies in R(i)
        members = np.concatenate(
            [np.where(r, f, n), np.where(accept[..., None] & rh, fh, n).reshape(len(f), -1)], axis=1
        )
        members.sort(axis=1)
        keep = members < n
        keep[:, 1:] &= members[:, 1:] != members[:, :-1]
        local_rows, pos = np.nonzero(keep)
        rows_out.append(local_rows + start)
        cols_out.append(members[local_rows, pos])
    rows = np.concatenate(rows_out)
    cols = np.concatenate(cols_out)
    weights = np.exp(-_scaled(q_g, q_q, g_g, scale, rows, cols))
    sums = np.bincount(rows, weights=weights, minlength=n)
    data = (weights / sums[rows]).astype(np.float32)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    return _Sparse(indptr, cols, data)


def _gather_rows(v: _Sparse, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each entry of ``rows`` (any shape, flattened), the positions of its entries in ``v``.

    Returns (owner, positions): ``owner[t]`` is the flat index into ``rows`` that entry t belongs to.
    """
    rows = rows.ravel()
    starts = v.indptr[rows]
    counts = v.indptr[rows + 1] - starts
    owner = np.repeat(np.arange(len(rows)), counts)
    offsets = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, starts[owner] + offsets


def _expand(v: _Sparse, neighbours: np.ndarray) -> _Sparse:
    """Local query expansion (step 5): row i becomes the mean of the rows of its neighbours."""
    n, k = neighbours.shape
    mean_nnz = max(1, len(v.data) // n)
    chunk = max(1, (_CHUNK_ELEMENTS // 4) // (k * mean_nnz))  # each gathered entry takes ~6 temporaries
    rows_out, cols_out, data_out = [], [], []
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        owner, pos = _gather_rows(v, neighbours[start:stop])
        key = (owner // k) * n + v.indices[pos]  # (local row, column)
        uniq, inverse = np.unique(key, return_inverse=True)
        sums = np.bincount(inverse, weights=v.data[pos], minlength=len(uniq))
        rows_out.append(uniq // n + start)
        cols_out.append(uniq % n)
        data_out.append((sums / k).astype(np.float32))
    rows = np.concatenate(rows_out)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    return _Sparse(indptr, np.concatenate(cols_out), np.concatenate(data_out))


def _blend(v: _Sparse, q_g: np.ndarray, scale: np.ndarray, lambda_value: float) -> np.ndarray:
    """Jaccard distances between query and gallery encodings (step 6) mixed with the distances (step 7)."""
    num_q, num_g = q_g.shape
    n = num_q + num_g
    # Gallery rows of V by column: for column c, the gallery items j with V(j, c) > 0.
    first = v.indptr[num_q]
    g_rows = np.repeat(np.arange(num_q, n), np.diff(v.indptr[num_q:])) - num_q
    g_cols = v.indices[first:]
    by_col = np.argsort(g_cols, kind="stable")
    col_items, col_values = g_rows[by_col], v.data[first:][by_col]
    col_ptr = np.concatenate([[0], np.cumsum(np.bincount(g_cols, minlength=n))])
    col_v = _Sparse(col_ptr, col_items, col_values)

    # Work per query: the number of (query entry, gallery entry) pairs sharing a column.
    q_entry_rows = np.repeat(np.arange(num_q), np.diff(v.indptr[: num_q + 1]))
    q_cols = v.indices[: v.indptr[num_q]]
    pairs = np.bincount(q_entry_rows, weights=np.diff(col_ptr)[q_cols], minlength=num_q)

    row_sums = np.bincount(np.repeat(np.arange(n), np.diff(v.indptr)), weights=v.data, minlength=n)
    out = np.empty((num_q, num_g), np.float32)
    max_rows = max(1, _CHUNK_ELEMENTS // num_g)
    max_pairs = _CHUNK_ELEMENTS // 4  # each pair takes ~6 int64/float64 temporaries
    start = 0
    while start < num_q:
        stop, budget = start + 1, pairs[start]
        while stop < num_q and stop - start < max_rows and budget + pairs[stop] <= max_pairs:
            budget += pairs[stop]
            stop += 1
        lo, hi = v.indptr[start], v.indptr[stop]
        owner, pos = _gather_rows(col_v, v.indices[lo:hi])
        smaller = np.minimum(v.data[lo:hi][owner], col_v.data[pos])
        cells = (q_entry_rows[lo:hi][owner] - start) * num_g + col_v.indices[pos]
        shared = np.bincount(cells, weights=smaller, minlength=(stop - start) * num_g).reshape(stop - start, num_g)
        union = row_sums[start:stop, None] + row_sums[None, num_q:] - shared
        # In place from here: shared -> overlap ratio (0 where both encodings are empty) -> weighted dJ.
        np.divide(shared, union, out=shared, where=union > 0)
        del union
        np.subtract(1.0, shared, out=shared)
        shared *= 1.0 - lambda_value
        block = out[start:stop]
        block[...] = q_g[start:stop]
        np.maximum(block, 0, out=block)
        block /= scale[start:stop, None]
        block *= lambda_value
        block += shared
        start = stop
    return out
