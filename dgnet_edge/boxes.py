"""Box geometry in one place: conversions, overlap, non-maximum suppression, clipping and crops.

Boxes are rows of an (N, 4) array: ``xyxy`` corners x1, y1, x2, y2 (what detectors, the tracker
and the app use), ``tlwh`` top-left x, y, width, height (MOTChallenge files), ``cxcywh`` centre x,
y, width, height (YOLO outputs, the Kalman state). The camera app and the rendered video world
both use these; nothing here imports more than numpy.
"""

from __future__ import annotations

import numpy as np

MIN_CROP = 8  # pixels: narrower or shorter crops are too small to embed


def tlwh_to_xyxy(boxes) -> np.ndarray:
    """Top-left x, y, width, height -> x1, y1, x2, y2 (the dtype kept, float32 for other inputs)."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    boxes = boxes if boxes.dtype.kind == "f" else boxes.astype(np.float32)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def xyxy_to_tlwh(boxes) -> np.ndarray:
    boxes = np.asarray(boxes).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def xyxy_to_cxcywh(boxes) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    wh = boxes[:, 2:] - boxes[:, :2]
    return np.concatenate([boxes[:, :2] + wh / 2, wh], axis=1)


def cxcywh_to_xyxy(boxes) -> np.ndarray:
    """Centre x, y, width, height -> x1, y1, x2, y2 (the dtype kept)."""
    half = boxes[:, 2:4] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection areas of xyxy boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    return wh[..., 0] * wh[..., 1]


def box_iou(a, b) -> np.ndarray:
    """(len(a), len(b)) intersection over union of xyxy boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    inter = intersection(a, b)
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def covered_fraction(boxes) -> np.ndarray:
    """(N,) largest fraction of each box's area that one other box of the same set covers."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) < 2:
        return np.zeros(len(boxes))
    inter = intersection(boxes, boxes)
    np.fill_diagonal(inter, 0.0)
    return inter.max(axis=1) / np.maximum(area(boxes), 1e-12)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int = 300) -> np.ndarray:
    """Greedy non-maximum suppression; indices of the kept xyxy boxes, best first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    keep = []
    while order.size and len(keep) < max_keep:
        best, rest = order[0], order[1:]
        keep.append(best)
        w = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        inter = w * h
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """xyxy ``boxes`` clipped to a ``width`` x ``height`` image, in place (and returned)."""
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    return boxes


def crop(image: np.ndarray | None, box: np.ndarray) -> np.ndarray | None:
    """The part of ``image`` inside an xyxy ``box`` (rounded, clipped to the image), or None if empty."""
    if image is None:
        return None
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1, x2 = max(0, x1), min(w, x2)
    y1, y2 = max(0, y1), min(h, y2)
    if x2 <= x1 or y2 <= y1:
        return None
    return image[y1:y2, x1:x2]


def crops_to_embed(image: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
    """RGB crops of xyxy ``boxes`` from a BGR frame, clipped to it and at least :data:`MIN_CROP`
    pixels wide and high (as far as the frame allows): what the embedder takes."""
    h, w = image.shape[:2]
    crops = []
    for x1, y1, x2, y2 in boxes:
        x1, x2 = int(max(0, min(w - 1, x1))), int(max(1, min(w, round(x2))))
        y1, y2 = int(max(0, min(h - 1, y1))), int(max(1, min(h, round(y2))))
        x2, y2 = max(x2, min(w, x1 + MIN_CROP)), max(y2, min(h, y1 + MIN_CROP))
        crops.append(np.ascontiguousarray(image[y1:y2, x1:x2, ::-1]))
    return crops


def l2_normalise(features) -> np.ndarray:
    """Rows scaled to unit length (float32); a zero row stays zero."""
    features = np.asarray(features, dtype=np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=-1, keepdims=True), 1e-12)
