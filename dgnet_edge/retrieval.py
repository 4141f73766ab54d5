"""Ranking a dataset's query set against its gallery with any embedder.

An embedder is any callable from a batch of RGB uint8 images (N, H, W, 3) at the network size to
float32 features (N, D) — a torch model, an ONNX Runtime session or a TensorRT engine. This module
needs neither torch nor a GPU, so reports on a device use exactly the same code as training.

Scoring follows DG-Net: score = gallery . query', where query' is the query feature with its
fine-grained half (the second head's part) scaled by ``alpha``; distance = 1 - score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import numpy as np

from dgnet_edge.data.dataset import ImageRecord, ReidDataset
from dgnet_edge.data.images import load_images
from dgnet_edge.eval import RankingResult, evaluate, rerank

Embed = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int], None]


def extract_features(
    embed: Embed,
    records: Sequence[ImageRecord],
    height: int,
    width: int,
    batch_size: int = 64,
    workers: int = 4,
    on_batch: Progress | None = None,
) -> np.ndarray:
    """Features of ``records`` in order; an unreadable image is an error (evaluation must be complete)."""
    chunks = []
    for start in range(0, len(records), batch_size):
        paths = [r.path for r in records[start : start + batch_size]]
        pixels = load_images(paths, height, width, workers).pixels
        chunks.append(np.asarray(embed(pixels), dtype=np.float32))
        if on_batch is not None:
            on_batch(len(paths))
    if not chunks:
        raise ValueError("no images to embed")
    return np.concatenate(chunks)


def query_weights(feature_dim: int, heads: int, alpha: float) -> np.ndarray:
    """Per-dimension query weights: 1 on the primary head's part, ``alpha`` on the fine-grained one."""
    weights = np.ones(feature_dim, np.float32)
    if heads == 2:
        weights[feature_dim // 2 :] = alpha
    return weights


def score_distances(qf: np.ndarray, gf: np.ndarray, heads: int, alpha: float, with_rerank: bool = False) -> np.ndarray:
    """(Q, G) distances: 1 - g . q' (and k-reciprocal re-ranking on top when asked)."""
    q = qf * query_weights(qf.shape[1], heads, alpha)
    q_g = 1.0 - q @ gf.T
    if not with_rerank:
        return q_g
    return rerank(q_g, 1.0 - q @ q.T, 1.0 - gf @ gf.T)


@dataclass
class RetrievalRun:
    result: RankingResult
    query_features: np.ndarray
    gallery_features: np.ndarray


def rank_dataset(
    embed: Embed,
    dataset: ReidDataset,
    height: int,
    width: int,
    heads: int,
    alpha: float = 0.5,
    ap: str = "standard",
    with_rerank: bool = False,
    batch_size: int = 64,
    workers: int = 4,
    on_batch: Progress | None = None,
) -> RetrievalRun:
    """Embed query and gallery, score, and evaluate with the Market-1501 rules."""
    qf = extract_features(embed, dataset.query, height, width, batch_size, workers, on_batch)
    gf = extract_features(embed, dataset.gallery, height, width, batch_size, workers, on_batch)
    dist = score_distances(qf, gf, heads, alpha, with_rerank)
    result = evaluate(
        dist,
        np.array([r.pid for r in dataset.query]),
        np.array([r.pid for r in dataset.gallery]),
        np.array([r.camid for r in dataset.query]),
        np.array([r.camid for r in dataset.gallery]),
        ap=ap,
    )
    return RetrievalRun(result, qf, gf)
