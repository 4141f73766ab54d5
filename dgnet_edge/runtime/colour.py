"""Colour beside the learned features, weighed per site from unlabelled video.

The embedded model is trained on a rendered world where garment colour says almost nothing about
identity (an HSV histogram ranks 0.5 % right there); on real people colour is the strongest simple
cue. How much it should count is a property of the site, so it is measured on the site, without
labels: a tracker's tracklets give same-person pairs (two crops of one track at least
:data:`MIN_GAP` frames apart) and people seen in the same frame are different. For each weight
``w`` on a grid, the fused score ``(1 - w) * cos(features) + w * cos(colour)`` is scored by its
ROC AUC on those pairs, and the best weight is kept, capped at :data:`MAX_WEIGHT` (tracklet pairs
favour colour: a person's colours hardly change along one track while their pose does).

The fused feature is ``[sqrt(1 - w) * f, sqrt(w) * h]`` with ``f`` and ``h`` unit-norm, so a
gallery's plain cosine gives exactly the fused score and nothing downstream changes. The camera
app's threshold moves with it: the fused threshold is the one at which the same share of
different-person pairs score over it as over the model's calibrated threshold with features alone.
The result is ``site_colour.json`` in the export folder; :class:`~dgnet_edge.runtime.embedder.Embedder`
applies it when it is there.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from dgnet_edge.atomic import write_atomic
from dgnet_edge.boxes import l2_normalise
from dgnet_edge.data.images import resize
from dgnet_edge.errors import ExportError
from dgnet_edge.eval.histogram import SIZE, hsv_histograms
from dgnet_edge.eval.pairs import MIN_GAP, roc_auc
from dgnet_edge.manifest import read_export_file, unreadable_export_file

SITE_COLOUR_FILE = "site_colour.json"
FORMAT = "dgnet-edge-site-colour"
VERSION = 1
MAX_WEIGHT = 0.5  # colour never counts more than the learned features
GRID = tuple(round(0.05 * i, 2) for i in range(21))
STRIPES = 3


@dataclass(frozen=True)
class SiteColour:
    weight: float
    threshold: float  # the app's score threshold in the fused space
    stripes: int = STRIPES
    evidence: Dict[str, object] = field(default_factory=dict)  # pairs, AUC per weight, where it was measured

    @property
    def extra_dim(self) -> int:
        return self.stripes * 256

    def fuse(self, features: np.ndarray, crops: Sequence[np.ndarray]) -> np.ndarray:
        """``[sqrt(1 - w) * f, sqrt(w) * h]`` for features ``f`` and the crops' colour histograms ``h``."""
        return fuse(features, colour_features(crops, self.stripes), self.weight)


def colour_features(crops: Sequence[np.ndarray], stripes: int = STRIPES) -> np.ndarray:
    """Unit-norm HSV histograms (``stripes`` horizontal bands) of RGB uint8 crops of any size."""
    if len(crops) == 0:
        return np.zeros((0, stripes * 256), np.float32)
    return hsv_histograms(np.stack([resize(c, *SIZE) for c in crops]), stripes=stripes)


def fuse(features: np.ndarray, colours: np.ndarray, weight: float) -> np.ndarray:
    return np.concatenate([np.sqrt(1.0 - weight) * l2_normalise(features), np.sqrt(weight) * l2_normalise(colours)], axis=1)


def tracklet_pairs(tracks: np.ndarray, frames: np.ndarray, min_gap: int = MIN_GAP) -> tuple:
    """Upper-triangle masks of same-track pairs at least ``min_gap`` frames apart (same person) and
    different-track pairs in one frame (different people)."""
    tracks, frames = np.asarray(tracks), np.asarray(frames)
    upper = np.triu(np.ones((len(tracks), len(tracks)), bool), k=1)
    same = (tracks[:, None] == tracks[None]) & (np.abs(frames[:, None] - frames[None]) >= min_gap) & upper
    apart = (frames[:, None] == frames[None]) & (tracks[:, None] != tracks[None]) & upper
    return same, apart


def choose_site_colour(features: np.ndarray, colours: np.ndarray, tracks: np.ndarray, frames: np.ndarray,
                       model_threshold: float, stripes: int = STRIPES, min_gap: int = MIN_GAP,
                       max_weight: float = MAX_WEIGHT) -> SiteColour:
    """The colour weight and fused threshold for a site, from crops of its tracklets (see the module docstring)."""
    same, apart = tracklet_pairs(tracks, frames, min_gap)
    if same.sum() < 10 or apart.sum() < 10:
        raise ExportError(f"too few tracklet pairs to weigh colour ({int(same.sum())} same-person, {int(apart.sum())} "
                          "different-person; 10 of each at least): give a longer video or more people")
    model, colour = l2_normalise(features) @ l2_normalise(features).T, l2_normalise(colours) @ l2_normalise(colours).T
    pairs = same | apart
    aucs: List[float] = [roc_auc((1 - w) * model[pairs] + w * colour[pairs], same[pairs]) for w in GRID]
    allowed = [i for i, w in enumerate(GRID) if w <= max_weight]
    best = max(allowed, key=lambda i: (aucs[i], -GRID[i]))  # ties: the smaller weight
    weight = GRID[best]
    # the fused threshold keeps the model threshold's share of different-person pairs over it
    negatives_model = model[apart]
    share = float((negatives_model >= model_threshold).mean())
    fused = ((1 - weight) * model + weight * colour)[apart]
    threshold = float(np.quantile(fused, 1.0 - share)) if share > 0 else float(max(fused.max(), model_threshold))
    evidence = {"same_person_pairs": int(same.sum()), "different_person_pairs": int(apart.sum()), "min_gap_frames": min_gap,
                "auc_by_weight": {f"{w:.2f}": round(100 * a, 2) for w, a in zip(GRID, aucs)},
                "max_weight": max_weight, "model_threshold": model_threshold,
                "different_pairs_over_threshold": round(share, 4)}
    return SiteColour(weight, round(min(max(threshold, -1.0), 1.0), 4), stripes, evidence)


def write_site_colour(export_dir: str | Path, site: SiteColour, measured_on: dict) -> Path:
    path = Path(export_dir) / SITE_COLOUR_FILE
    body = {"format": FORMAT, "version": VERSION, **asdict(site), "measured_on": measured_on}
    write_atomic(path, (json.dumps(body, indent=2) + "\n").encode())
    return path


def read_site_colour(export_dir: str | Path) -> Optional[SiteColour]:
    """The export's site colour, or None when it has none."""
    path = Path(export_dir) / SITE_COLOUR_FILE
    hint = "run `dgnet-edge gallery colour` again or delete it"
    body = read_export_file(path, FORMAT, VERSION, "site colour", hint)
    if body is None:
        return None
    try:
        weight, threshold, stripes = body["weight"], body["threshold"], body["stripes"]
        if isinstance(weight, bool) or not (isinstance(weight, (int, float)) and 0.0 <= weight <= 1.0):
            raise ValueError(f"weight {weight!r} is not in [0, 1]")
        if isinstance(threshold, bool) or not (isinstance(threshold, (int, float)) and -1.0 <= threshold <= 1.0):
            raise ValueError(f"threshold {threshold!r} is not a cosine score in [-1, 1]")
        if isinstance(stripes, bool) or not isinstance(stripes, int) or not 1 <= stripes <= SIZE[0]:
            raise ValueError(f"stripes {stripes!r} is not an integer in 1..{SIZE[0]}")
        return SiteColour(float(weight), float(threshold), stripes, body.get("evidence", {}))
    except (ValueError, KeyError) as e:
        raise unreadable_export_file(path, "site colour", hint, e) from None
