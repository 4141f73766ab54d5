"""dgnet_edge.eval: ranking metrics, k-reciprocal re-ranking and distances.

The vectorised metrics and re-ranking are checked against plain per-query / per-item reference
implementations written below (slow, obvious, test-only), on random problems with junk,
distractors, ties and queries without matches, and on small cases worked out by hand.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import tracemalloc

import numpy as np
import pytest
from typer.testing import CliRunner

from dgnet_edge.eval import RankingResult, cosine_distance, euclidean_distance, evaluate, rerank

# The package re-exports the functions `rerank` and `evaluate`, which shadow their module names.
metrics_module = importlib.import_module("dgnet_edge.eval.metrics")
rerank_module = importlib.import_module("dgnet_edge.eval.rerank")

# ----------------------------------------------------------------------------------------------
# Reference implementations (one query / one item at a time)
# ----------------------------------------------------------------------------------------------


def reference_evaluate(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, ap):
    """Per-query loop: (cmc, mAP, mINP, num_valid) under the Market-1501 rules."""
    curves, aps, inps = [], [], []
    for q in range(len(q_pids)):
        order = np.argsort(distmat[q], kind="stable")
        pids, cams = g_pids[order], g_camids[order]
        junk = ((pids == q_pids[q]) & (cams == q_camids[q])) | (pids == -1)
        pids = pids[~junk]
        hits = [pos for pos, pid in enumerate(pids) if pid == q_pids[q]]  # positions after junk removal
        if not hits:
            continue
        total = 0.0
        for i, r in enumerate(hits):
            precision = (i + 1) / (r + 1)
            if ap == "standard":
                total += precision
            else:
                previous = 1.0 if r == 0 else i / r
                total += (previous + precision) / 2
        aps.append(total / len(hits))
        inps.append(len(hits) / (hits[-1] + 1))
        curves.append([1.0 if hits[0] < k else 0.0 for k in range(1, max_rank + 1)])
    return np.mean(curves, axis=0), float(np.mean(aps)), float(np.mean(inps)), len(aps)


def reference_rerank(q_g, q_q, g_g, k1, k2, lambda_value):
    """Item-by-item k-reciprocal re-ranking on dense matrices, following the paper's steps."""
    num_q = len(q_q)
    n = num_q + len(g_g)
    combined = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float32)
    d = np.maximum(combined, 0).T.copy()  # row i: distances to item i
    scale = d.max(axis=1)
    scale[scale <= 0] = 1
    d = d / scale[:, None]
    ranking = np.argsort(d, axis=1, kind="stable")

    def reciprocal(i, k):
        return [j for j in ranking[i, : k + 1] if i in ranking[j, : k + 1]]

    half = int(np.around(k1 / 2))
    v = np.zeros((n, n))
    for i in range(n):
        r = reciprocal(i, k1)
        members = set(r)
        for c in r:
            rc = reciprocal(c, half)
            if len(set(rc) & set(r)) > 2 / 3 * len(rc):
                members |= set(rc)
        if not members:  # possible when i is not among its own nearest (e.g. non-zero self-distance)
            continue
        idx = np.array(sorted(members))
        w = np.exp(-d[i, idx].astype(np.float64))
        v[i, idx] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[ranking[i, :k2]].mean(axis=0) for i in range(n)])
    out = np.empty(q_g.shape)
    for i in range(num_q):
        for j in range(num_q, n):
            union = np.maximum(v[i], v[j]).sum()
            jaccard = 1 - np.minimum(v[i], v[j]).sum() / union if union > 0 else 1.0
            out[i, j - num_q] = (1 - lambda_value) * jaccard + lambda_value * d[i, j]
    return out


# ----------------------------------------------------------------------------------------------
# Problem generators
# ----------------------------------------------------------------------------------------------


def random_problem(rng, num_q=40, num_g=150, ids=10, cameras=3, ties=False, dtype=np.float32):
    """Ids 1..ids plus distractors (0) and junk (-1) in the gallery; some queries have ids the gallery lacks."""
    q_pids = rng.integers(1, ids + 4, num_q)  # ids above `ids` never occur in the gallery
    q_camids = rng.integers(0, cameras, num_q)
    g_pids = rng.integers(1, ids + 1, num_g)
    g_pids[rng.random(num_g) < 0.15] = 0
    g_pids[rng.random(num_g) < 0.1] = -1
    g_camids = rng.integers(0, cameras, num_g)
    if ties:
        distmat = rng.integers(0, 6, (num_q, num_g)).astype(dtype)  # heavy ties
    else:
        distmat = rng.random((num_q, num_g)).astype(dtype)
        same = q_pids[:, None] == g_pids[None, :]
        distmat[same] *= 0.4  # true matches tend to rank high
    return distmat, q_pids, g_pids, q_camids, g_camids


def clustered_features(rng, ids=30, per_query=1, per_gallery=8, dim=32, noise=1.2):
    """Gaussian identity clusters; queries on camera 0, gallery items on cameras 1..5."""
    centres = rng.normal(size=(ids, dim))
    q_pids = np.repeat(np.arange(1, ids + 1), per_query)
    g_pids = np.repeat(np.arange(1, ids + 1), per_gallery)
    qf = centres[q_pids - 1] + noise * rng.normal(size=(len(q_pids), dim))
    gf = centres[g_pids - 1] + noise * rng.normal(size=(len(g_pids), dim))
    q_camids = np.zeros(len(q_pids), np.int64)
    g_camids = rng.integers(1, 6, len(g_pids))
    return qf.astype(np.float32), gf.astype(np.float32), q_pids, g_pids, q_camids, g_camids


# ----------------------------------------------------------------------------------------------
# evaluate: hand-computed cases
# ----------------------------------------------------------------------------------------------


def test_evaluate_hand_computed_one_query():
    # One query, id 1 on camera 0. Gallery items listed in ranking order (by distance), stored in
    # a shuffled order so that evaluate has to sort:
    #   d=0.1 id 2 cam 1   negative
    #   d=0.2 id 1 cam 1   good
    #   d=0.3 id 1 cam 0   junk (same id, same camera): removed
    #   d=0.4 id 0 cam 2   distractor: stays, negative
    #   d=0.5 id 1 cam 2   good
    #   d=0.6 id -1 cam 1  junk: removed
    #   d=0.7 id 1 cam 1   good
    # After junk removal: [neg, good, neg, good, good] -> good positions r = 1, 3, 4; n = 3.
    # standard AP  = (1/2 + 2/4 + 3/5) / 3 = 1.6 / 3 = 8/15
    # trapezoid AP = [(0/1 + 1/2)/2 + (1/3 + 2/4)/2 + (2/4 + 3/5)/2] / 3
    #              = (1/4 + 5/12 + 11/20) / 3 = (73/60) / 3 = 73/180
    # INP = 3 / (4 + 1) = 3/5; CMC: first hit at position 1, so rank-1 = 0 and rank-2.. = 1.
    d = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], np.float32)
    pids = np.array([2, 1, 1, 0, 1, -1, 1])
    cams = np.array([1, 1, 0, 2, 2, 1, 1])
    perm = np.array([4, 0, 6, 2, 5, 1, 3])
    args = (d[perm][None, :], np.array([1]), pids[perm], np.array([0]), cams[perm])

    standard = evaluate(*args, max_rank=5)
    assert standard.mAP == pytest.approx(8 / 15)
    assert standard.mINP == pytest.approx(3 / 5)
    np.testing.assert_allclose(standard.cmc, [0, 1, 1, 1, 1])
    assert standard.num_valid_queries == 1 and standard.ap == "standard"

    trapezoid = evaluate(*args, max_rank=5, ap="trapezoid")
    assert trapezoid.mAP == pytest.approx(73 / 180)
    assert trapezoid.mINP == pytest.approx(3 / 5)
    np.testing.assert_allclose(trapezoid.cmc, standard.cmc)


def test_evaluate_hand_computed_first_hit_on_top():
    # Ranking [good, neg, good]: r = 0, 2.
    # standard  = (1/1 + 2/3) / 2 = 5/6
    # trapezoid = [(1 + 1/1)/2 + (1/2 + 2/3)/2] / 2 = (1 + 7/12) / 2 = 19/24   (p_{-1} = 1 at r = 0)
    # INP = 2/3
    args = (np.array([[0.1, 0.2, 0.3]]), np.array([5]), np.array([5, 7, 5]), np.array([0]), np.array([1, 1, 2]))
    assert evaluate(*args).mAP == pytest.approx(5 / 6)
    assert evaluate(*args, ap="trapezoid").mAP == pytest.approx(19 / 24)
    assert evaluate(*args).mINP == pytest.approx(2 / 3)
    assert evaluate(*args).rank(1) == 1.0


def test_evaluate_ties_go_to_the_lower_gallery_index():
    # Same distance for a negative and a good match: the one stored first ranks first.
    q = (np.array([1]), np.array([0]))
    neg_first = evaluate(np.array([[0.5, 0.5]], np.float32), q[0], np.array([2, 1]), q[1], np.array([1, 1]))
    good_first = evaluate(np.array([[0.5, 0.5]], np.float32), q[0], np.array([1, 2]), q[1], np.array([1, 1]))
    assert neg_first.mAP == pytest.approx(0.5) and neg_first.rank(1) == 0.0
    assert good_first.mAP == pytest.approx(1.0) and good_first.rank(1) == 1.0


def test_evaluate_negative_distances_and_signed_zero():
    # Negated similarities are valid distances; -0.0 and 0.0 tie (stable: lower index first).
    d = np.array([[-0.0, 0.0, -0.5, 0.25]], np.float32)
    g_pids = np.array([2, 1, 3, 1])
    result = evaluate(d, np.array([1]), g_pids, np.array([0]), np.array([1, 1, 1, 1]))
    # Ranking: -0.5 (id 3), -0.0 (id 2), 0.0 (id 1, good), 0.25 (id 1, good) -> r = 2, 3.
    assert result.mAP == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_evaluate_skips_queries_without_matches():
    # Query 0 has a match on another camera; query 1 only on its own camera (junk); query 2 none.
    d = np.array([[0.1, 0.2], [0.1, 0.2], [0.1, 0.2]])
    result = evaluate(d, np.array([1, 2, 3]), np.array([1, 2]), np.array([0, 0, 0]), np.array([1, 0]))
    assert result.num_valid_queries == 1 and result.num_queries == 3
    assert result.mAP == 1.0


# ----------------------------------------------------------------------------------------------
# evaluate: against the reference
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ap", ["standard", "trapezoid"])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("seed", range(3))
def test_evaluate_matches_reference(seed, dtype, ties, ap, monkeypatch):
    rng = np.random.default_rng(seed)
    problem = random_problem(rng, ties=ties or dtype == np.int32, dtype=dtype)
    monkeypatch.setattr(metrics_module, "_CHUNK_ELEMENTS", 7 * 150)  # several uneven chunks
    result = evaluate(*problem, max_rank=20, ap=ap)
    cmc, mAP, mINP, num_valid = reference_evaluate(*problem, max_rank=20, ap=ap)
    assert 0 < num_valid < len(problem[1])  # the generator makes some queries without matches
    assert result.num_valid_queries == num_valid
    np.testing.assert_allclose(result.cmc, cmc, atol=1e-12)
    assert result.mAP == pytest.approx(mAP, abs=1e-12)
    assert result.mINP == pytest.approx(mINP, abs=1e-12)


def test_evaluate_max_rank_beyond_gallery_and_chunking_do_not_matter():
    rng = np.random.default_rng(7)
    problem = random_problem(rng, num_q=25, num_g=30)
    whole = evaluate(*problem, max_rank=60)
    cmc, mAP, _, _ = reference_evaluate(*problem, max_rank=60, ap="standard")
    np.testing.assert_allclose(whole.cmc, cmc)
    assert whole.cmc[-1] == 1.0  # every valid query finds its match within the gallery
    first = evaluate(*problem, max_rank=10)
    np.testing.assert_allclose(first.cmc, whole.cmc[:10])
    assert first.mAP == whole.mAP


def test_evaluate_trapezoid_never_exceeds_standard():
    # Trapezoid terms average p_i with p_{i-1} = i/r_i <= p_i, so trapezoid AP <= standard AP.
    problem = random_problem(np.random.default_rng(3))
    assert evaluate(*problem, ap="trapezoid").mAP <= evaluate(*problem).mAP


# ----------------------------------------------------------------------------------------------
# evaluate: result object and input validation
# ----------------------------------------------------------------------------------------------


def test_ranking_result_api():
    result = evaluate(*random_problem(np.random.default_rng(0)), max_rank=8)
    assert isinstance(result, RankingResult)
    assert result.cmc.shape == (8,) and result.cmc.dtype == np.float64
    assert np.all(np.diff(result.cmc) >= 0) and 0 <= result.cmc[0] <= result.cmc[-1] <= 1
    assert result.rank(1) == result.cmc[0] and result.rank(8) == result.cmc[7]
    for bad in (0, 9):
        with pytest.raises(ValueError, match="rank k"):
            result.rank(bad)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.mAP = 1.0
    with pytest.raises(ValueError):
        result.cmc[0] = 1.0  # read-only
    d = result.as_dict()
    assert set(d) == {"rank1", "rank5", "rank10", "mAP", "mINP", "ap", "num_valid_queries", "num_queries"} - {"rank10"}
    assert d["mAP"] == pytest.approx(100 * result.mAP) and d["rank5"] == pytest.approx(100 * result.rank(5))
    assert d["ap"] == "standard"
    json.dumps(d)
    assert "rank10" in evaluate(*random_problem(np.random.default_rng(0))).as_dict()


def test_evaluate_rejects_bad_input():
    d, q_pids, g_pids, q_camids, g_camids = random_problem(np.random.default_rng(0), num_q=5, num_g=20)
    with pytest.raises(ValueError, match="2-D"):
        evaluate(d[0], q_pids, g_pids, q_camids, g_camids)
    with pytest.raises(ValueError, match="q_pids has 4 entries but distmat has 5 rows"):
        evaluate(d, q_pids[:4], g_pids, q_camids, g_camids)
    with pytest.raises(ValueError, match="g_camids has 19 entries but distmat has 20 columns"):
        evaluate(d, q_pids, g_pids, q_camids, g_camids[:-1])
    with pytest.raises(ValueError, match="integers"):
        evaluate(d, q_pids.astype(float), g_pids, q_camids, g_camids)
    with pytest.raises(ValueError, match="1-D"):
        evaluate(d, q_pids[:, None], g_pids, q_camids, g_camids)
    for bad_value in (np.nan, np.inf, -np.inf):
        bad = d.copy()
        bad[3, 7] = bad_value
        with pytest.raises(ValueError, match=r"non-finite values, first at \[3, 7\]"):
            evaluate(bad, q_pids, g_pids, q_camids, g_camids)
    with pytest.raises(ValueError, match="ap must be one of"):
        evaluate(d, q_pids, g_pids, q_camids, g_camids, ap="voc")
    with pytest.raises(ValueError, match="max_rank"):
        evaluate(d, q_pids, g_pids, q_camids, g_camids, max_rank=0)
    with pytest.raises(ValueError, match="empty"):
        evaluate(d[:0], q_pids[:0], g_pids, q_camids[:0], g_camids)
    with pytest.raises(ValueError, match="real numbers"):
        evaluate(d.astype(complex), q_pids, g_pids, q_camids, g_camids)
    with pytest.raises(ValueError, match="none of the 5 queries has a good match"):
        evaluate(d, q_pids + 1000, g_pids, q_camids, g_camids)


def test_evaluate_market_size_completes():
    # 3,368 x 15,913 like Market-1501's test split; timing is `dgnet-edge bench eval`'s job.
    rng = np.random.default_rng(0)
    q_pids = rng.integers(1, 752, 3368)
    g_pids = rng.integers(0, 752, 15913)
    d = rng.random((3368, 15913), dtype=np.float32)
    result = evaluate(d, q_pids, g_pids, rng.integers(0, 6, 3368), rng.integers(0, 6, 15913))
    assert result.num_valid_queries > 3000 and 0 < result.mAP < 0.05  # random ranking: low mAP


# ----------------------------------------------------------------------------------------------
# rerank
# ----------------------------------------------------------------------------------------------


def _distances(qf, gf, squared=True):
    return (
        euclidean_distance(qf, gf, squared=squared),
        euclidean_distance(qf, qf, squared=squared),
        euclidean_distance(gf, gf, squared=squared),
    )


@pytest.mark.parametrize(
    ("k1", "k2", "lambda_value"),
    [(20, 6, 0.3), (5, 3, 0.3), (4, 1, 0.5), (3, 6, 0.0), (70, 2, 1.0)],  # k1 = 70: k1 + 1 > all 64 items
)
def test_rerank_matches_reference(k1, k2, lambda_value, monkeypatch):
    rng = np.random.default_rng(k1 + k2)
    qf, gf, *_ = clustered_features(rng, ids=8, per_query=2, per_gallery=6, dim=8)
    gf[5] = gf[3]  # an exact duplicate: ties at distance 0
    q_g, q_q, g_g = _distances(qf, gf)
    monkeypatch.setattr(rerank_module, "_CHUNK_ELEMENTS", 500)  # many chunks in every step
    got = rerank(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lambda_value)
    assert got.dtype == np.float32 and got.shape == q_g.shape
    np.testing.assert_allclose(got, reference_rerank(q_g, q_q, g_g, k1, k2, lambda_value), atol=2e-6)


@pytest.mark.parametrize("ties", [False, True])
def test_rerank_matches_reference_on_asymmetric_input(ties):
    # Distances need not be symmetric; row i of the combined matrix holds the distances *to* i.
    # Self-distances are random too, so some items miss their own neighbourhood (empty encodings).
    rng = np.random.default_rng(11)
    shapes = ((6, 30), (6, 6), (30, 30))
    if ties:
        q_g, q_q, g_g = (rng.integers(0, 3, shape).astype(np.float64) for shape in shapes)
    else:
        q_g, q_q, g_g = (rng.random(shape) for shape in shapes)
    q_g[0, 0] = -1e-7  # rounding below zero is clamped to 0
    np.testing.assert_allclose(rerank(q_g, q_q, g_g, k1=6, k2=3), reference_rerank(q_g, q_q, g_g, 6, 3, 0.3), atol=2e-6)


def test_rerank_is_deterministic_and_chunk_independent(monkeypatch):
    rng = np.random.default_rng(5)
    qf, gf, *_ = clustered_features(rng, ids=12, per_query=2, per_gallery=5, dim=16)
    dists = _distances(qf, gf)
    first = rerank(*dists)
    assert np.array_equal(first, rerank(*dists))
    monkeypatch.setattr(rerank_module, "_CHUNK_ELEMENTS", 300)
    np.testing.assert_allclose(rerank(*dists), first, atol=1e-6)


def test_rerank_improves_map_on_clustered_features():
    # Several gallery items per identity: k-reciprocal neighbourhoods recover identities that
    # the raw distance ranks poorly. Cosine and squared Euclidean give the same result on
    # L2-normalised features (every row is scaled by its maximum).
    rng = np.random.default_rng(0)
    qf, gf, q_pids, g_pids, q_camids, g_camids = clustered_features(rng, ids=40, per_query=2, per_gallery=10)
    ids = (q_pids, g_pids, q_camids, g_camids)
    before = evaluate(euclidean_distance(qf, gf, squared=True), *ids)
    after = evaluate(rerank(*_distances(qf, gf)), *ids)
    assert after.mAP > before.mAP + 0.1, (before.mAP, after.mAP)  # about +0.2 here
    assert after.rank(1) >= before.rank(1)

    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    by_cosine = rerank(cosine_distance(qn, gn), cosine_distance(qn, qn), cosine_distance(gn, gn))
    np.testing.assert_allclose(by_cosine, rerank(*_distances(qn, gn)), atol=1e-4)


def test_rerank_rejects_bad_input():
    q_g, q_q, g_g = np.ones((2, 3)), np.ones((2, 2)), np.ones((3, 3))
    with pytest.raises(ValueError, match=r"q_q_dist must be \(2, 2\)"):
        rerank(q_g, np.ones((3, 3)), g_g)
    with pytest.raises(ValueError, match=r"g_g_dist must be \(3, 3\)"):
        rerank(q_g, q_q, np.ones((2, 2)))
    with pytest.raises(ValueError, match="2-D"):
        rerank(q_g[0], q_q, g_g)
    with pytest.raises(ValueError, match="k1 must be an integer >= 1"):
        rerank(q_g, q_q, g_g, k1=0)
    with pytest.raises(ValueError, match="k2 must be an integer >= 1"):
        rerank(q_g, q_q, g_g, k2=2.5)
    with pytest.raises(ValueError, match="lambda_value"):
        rerank(q_g, q_q, g_g, lambda_value=1.5)
    bad = g_g.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        rerank(q_g, q_q, bad)


# ----------------------------------------------------------------------------------------------
# distances
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_distances_match_direct_formulas(dtype, monkeypatch):
    rng = np.random.default_rng(1)
    qf = rng.normal(size=(37, 24)).astype(dtype)
    gf = rng.normal(size=(53, 24)).astype(dtype)
    gf[4] = 0  # zero vector: cosine distance 1
    monkeypatch.setattr("dgnet_edge.eval.distance._CHUNK_ELEMENTS", 200)  # several chunks
    q64, g64 = qf.astype(np.float64), gf.astype(np.float64)
    diff = q64[:, None, :] - g64[None, :, :]
    squared = (diff**2).sum(-1)
    cos = q64 @ g64.T / np.maximum(np.linalg.norm(q64, axis=1)[:, None] * np.linalg.norm(g64, axis=1)[None, :], 1e-300)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for got, want in (
        (euclidean_distance(qf, gf), np.sqrt(squared)),
        (euclidean_distance(qf, gf, squared=True), squared),
        (cosine_distance(qf, gf), 1 - cos),
    ):
        assert got.dtype == dtype and got.shape == (37, 53)
        np.testing.assert_allclose(got, want, atol=tol * max(1, np.abs(want).max()))
    assert np.all(cosine_distance(qf, gf)[:, 4] == 1)
    assert euclidean_distance(qf, qf).diagonal().max() < 1e-2  # clamped at 0, no NaN from sqrt


def test_distances_write_into_the_result_without_copies():
    # float32 C-contiguous features: peak memory is the result plus small chunk buffers.
    rng = np.random.default_rng(0)
    qf = rng.normal(size=(1000, 64)).astype(np.float32)
    gf = rng.normal(size=(6000, 64)).astype(np.float32)
    result_bytes = 1000 * 6000 * 4
    for fn in (cosine_distance, euclidean_distance):
        tracemalloc.start()
        fn(qf, gf)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < result_bytes * 1.1, (fn.__name__, peak / result_bytes)


def test_distances_reject_bad_input():
    with pytest.raises(ValueError, match="feature dims differ"):
        cosine_distance(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="2-D"):
        euclidean_distance(np.ones(3), np.ones((2, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        euclidean_distance(np.full((2, 3), np.nan), np.ones((2, 3)))


# ----------------------------------------------------------------------------------------------
# bench command
# ----------------------------------------------------------------------------------------------


def test_bench_eval_command():
    from dgnet_edge.cli.main import app

    runner = CliRunner()
    args = ["bench", "eval", "--queries", "30", "--gallery", "200", "--ids", "10", "--repeat", "2"]
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "standard" in table.stdout and "trapezoid" in table.stdout
    as_json = runner.invoke(app, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    assert [r["ap"] for r in report["results"]] == ["standard", "trapezoid"]
    assert all(r["median_s"] > 0 and 0 <= r["mAP"] <= 100 for r in report["results"])
    assert runner.invoke(app, ["bench", "eval", "--repeat", "0"]).exit_code == 2
