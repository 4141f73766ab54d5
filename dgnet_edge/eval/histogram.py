"""A colour-histogram matcher: the floor any learned re-id model must clear.

Each image becomes a joint HSV histogram (optionally one per horizontal stripe, top to bottom),
L1-normalised per stripe and L2-normalised overall, so cosine similarity compares colour
distributions. It knows nothing of shape, so on a dataset where many people share colours it
fails; `dgnet-edge data baseline` reports it for a dataset folder.
"""

from __future__ import annotations

import cv2
import numpy as np

from dgnet_edge.eval.distance import cosine_distance

DEFAULT_BINS = (16, 4, 4)
SIZE = (128, 64)  # (height, width) to resize images to first; the histograms barely depend on it
_RANGES = [0, 180, 0, 256, 0, 256]  # OpenCV's 8-bit HSV: hue is 0..179


def hsv_histograms(images: np.ndarray, bins: tuple[int, int, int] = DEFAULT_BINS, stripes: int = 1) -> np.ndarray:
    """(N, stripes * prod(bins)) float32 features of RGB uint8 images (N, H, W, 3), unit L2 norm."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected RGB uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}")
    if not 1 <= stripes <= images.shape[1]:
        raise ValueError(f"stripes must be in 1..{images.shape[1]} (the image height), got {stripes}")
    bounds = np.linspace(0, images.shape[1], stripes + 1).round().astype(int)
    features = np.empty((len(images), stripes * int(np.prod(bins))), np.float32)
    for i, image in enumerate(images):
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        parts = []
        for top, bottom in zip(bounds[:-1], bounds[1:]):
            hist = cv2.calcHist([np.ascontiguousarray(hsv[top:bottom])], [0, 1, 2], None, list(bins), _RANGES).ravel()
            parts.append(hist / max(float(hist.sum()), 1.0))
        features[i] = np.concatenate(parts)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def histogram_distances(
    query_images: np.ndarray,
    gallery_images: np.ndarray,
    bins: tuple[int, int, int] = DEFAULT_BINS,
    stripes: int = 1,
) -> np.ndarray:
    """(Q, G) cosine distances between the HSV histograms of query and gallery images."""
    return cosine_distance(hsv_histograms(query_images, bins, stripes), hsv_histograms(gallery_images, bins, stripes))
