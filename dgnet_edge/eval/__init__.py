"""Evaluation: distance matrices, k-reciprocal re-ranking and Market-1501 ranking metrics.

Typical use::

    dist = cosine_distance(query_features, gallery_features)
    result = evaluate(dist, q_pids, g_pids, q_camids, g_camids, ap="standard")
    result.rank(1), result.mAP, result.mINP
"""

from dgnet_edge.eval.distance import cosine_distance, euclidean_distance
from dgnet_edge.eval.metrics import RankingResult, evaluate
from dgnet_edge.eval.rerank import rerank

__all__ = ["RankingResult", "cosine_distance", "euclidean_distance", "evaluate", "rerank"]
