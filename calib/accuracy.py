"""INT8 acceptance: rank a dataset with the fp32 and the INT8 models of an export folder in ONNX
Runtime and compare retrieval scores and features.

For each model: rank-1, mAP and mINP with the Market-1501 rules (:func:`dgnet_edge.retrieval.rank_dataset`),
the cosine similarity of every query and gallery feature to the fp32 one
(:func:`dgnet_edge.runtime.compare.compare_outputs`) and the median batch-1 latency. An INT8 model
passes when its mean cosine is >= 0.99, its rank-1 is at most 1 point and its mAP at most 1.5 points
below fp32 (:data:`TARGETS`). The report is truthy only when every INT8 model passes.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dgnet_edge.data.registry import build_dataset
from dgnet_edge.errors import ExportError
from dgnet_edge.manifest import Manifest, load_manifest, verified_path
from dgnet_edge.retrieval import rank_dataset
from dgnet_edge.runtime.compare import compare_outputs
from dgnet_edge.runtime.onnxrt import OnnxRuntimeRunner, SessionFromOnnx

INT8_PRECISIONS = ("int8-qdq", "int8-cpu")


@dataclass(frozen=True)
class Targets:
    min_cosine: float = 0.99
    max_rank1_drop: float = 1.0  # points
    max_map_drop: float = 1.5  # points


TARGETS = Targets()


@dataclass
class ModelScore:
    precision: str
    file: str
    rank1: float  # percent
    rank5: float
    mAP: float
    mINP: float
    cosine_mean: float = 1.0  # to the fp32 features
    cosine_min: float = 1.0
    latency_ms: float | None = None  # median at batch 1
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class AccuracyReport:
    dataset: str
    root: str
    ap: str
    queries: int
    gallery: int
    fp32: ModelScore
    int8: list[ModelScore]
    targets: Targets = TARGETS

    def __bool__(self) -> bool:
        return bool(self.int8) and all(m.passed for m in self.int8)

    def rows(self) -> list[ModelScore]:
        return [self.fp32, *self.int8]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = bool(self)
        for row in (d["fp32"], *d["int8"]):
            row["passed"] = not row["failures"]
        return d


def onnx_embed(runner: OnnxRuntimeRunner, dtype: str, output: str = "features") -> Callable[[np.ndarray], np.ndarray]:
    """An embed callable (uint8 NHWC images -> features) over an active runner."""
    name = runner.input_metadata()[0].name

    def embed(images: np.ndarray) -> np.ndarray:
        return runner.infer({name: images.astype(dtype, copy=False)})[output]

    return embed


def features_on(path: str | Path, feeds: Sequence[dict[str, np.ndarray]], threads: int | None = None) -> list[dict[str, np.ndarray]]:
    """The ``features`` output of the ONNX model at ``path`` for each feed (ONNX Runtime, CPU)."""
    with OnnxRuntimeRunner(SessionFromOnnx(path, device="cpu", threads=threads)) as runner:
        name = runner.input_metadata()[0].name
        return [{"features": runner.infer({name: next(iter(f.values()))})["features"]} for f in feeds]


def feature_cosine(reference: Sequence[dict[str, np.ndarray]], candidate: Sequence[dict[str, np.ndarray]]) -> tuple[float, float]:
    """(mean, min) cosine of the candidate's features to the reference's, over all samples."""
    cmp = compare_outputs(reference, candidate).outputs["features"]
    return cmp.mean_cosine, cmp.min_cosine


def median_latency_ms(runner: OnnxRuntimeRunner, image: np.ndarray, dtype: str, runs: int = 20) -> float:
    """Median time of the backend call on one image (after two warm-up runs)."""
    name = runner.input_metadata()[0].name
    feed = {name: image[None].astype(dtype)}
    times = []
    for i in range(runs + 2):
        runner.infer(feed)
        if i >= 2:
            times.append(runner.inference_time)
    return 1000.0 * statistics.median(times)


def _judge(score: ModelScore, fp32: ModelScore, targets: Targets) -> None:
    if score.cosine_mean < targets.min_cosine:
        score.failures.append(f"mean cosine {score.cosine_mean:.4f} < {targets.min_cosine}")
    if fp32.rank1 - score.rank1 > targets.max_rank1_drop:
        score.failures.append(f"rank-1 drop {fp32.rank1 - score.rank1:.2f} > {targets.max_rank1_drop} points")
    if fp32.mAP - score.mAP > targets.max_map_drop:
        score.failures.append(f"mAP drop {fp32.mAP - score.mAP:.2f} > {targets.max_map_drop} points")


def check_accuracy(
    export_dir: str | Path,
    data_root: str | Path | None = None,
    dataset: str | None = None,
    precisions: Sequence[str] = INT8_PRECISIONS,
    ap: str = "standard",
    batch_size: int = 32,
    threads: int | None = None,
    latency_runs: int = 20,
    targets: Targets = TARGETS,
    on_batch: Callable[[int], None] | None = None,
) -> AccuracyReport:
    """Rank ``data_root`` (default: the checkpoint's dataset) with fp32 and each INT8 model of the export.

    Args:
        export_dir: an export folder with fp32 and INT8 embedders.
        data_root: dataset root; its query and gallery splits are ranked.
        dataset: dataset reader (default: the checkpoint's).
        precisions: INT8 models to check (those missing from the export are an error).
        ap: AP convention, standard or trapezoid.
        batch_size: images per inference batch.
        threads: ONNX Runtime threads (default: all cores).
        latency_runs: timed batch-1 runs per model (0: no timing).
        targets: acceptance thresholds.
        on_batch: progress callback (images done).
    """
    export_dir = Path(export_dir)
    manifest: Manifest = load_manifest(export_dir)
    name = dataset or manifest.source.get("dataset", "market1501")
    root = data_root or manifest.source.get("data_root")
    if root is None:
        raise ExportError("no dataset given and the export does not name the checkpoint's dataset: pass --data")
    ds = build_dataset(name, root)
    fmt = manifest.input
    alpha = float(manifest.source.get("eval_alpha", 0.5))
    entries = [manifest.model("embedder", "fp32")] + [manifest.model("embedder", p) for p in precisions]
    scores: list[ModelScore] = []
    features: list[np.ndarray] = []
    for entry in entries:
        path = verified_path(export_dir, entry)
        with OnnxRuntimeRunner(SessionFromOnnx(path, device="cpu", threads=threads), name=entry.file) as runner:
            run = rank_dataset(
                onnx_embed(runner, fmt.dtype), ds, fmt.height, fmt.width, heads=manifest.heads, alpha=alpha, ap=ap,
                batch_size=batch_size, workers=2, on_batch=on_batch,
            )
            latency = None
            if latency_runs > 0:
                from dgnet_edge.data.images import load_images

                image = load_images([ds.query[0].path], fmt.height, fmt.width, workers=0).pixels[0]
                latency = median_latency_ms(runner, image, fmt.dtype, latency_runs)
        m = run.result.as_dict()
        scores.append(ModelScore(entry.precision, entry.file, m["rank1"], m["rank5"], m["mAP"], m["mINP"], latency_ms=latency))
        features.append(np.concatenate([run.query_features, run.gallery_features]))
    fp32 = scores[0]
    for score, feats in zip(scores[1:], features[1:]):
        cmp = compare_outputs([{"features": features[0]}], [{"features": feats}]).outputs["features"]
        score.cosine_mean, score.cosine_min = cmp.mean_cosine, cmp.min_cosine
        _judge(score, fp32, targets)
    return AccuracyReport(name, str(Path(root)), ap, len(ds.query), len(ds.gallery), fp32, scores[1:], targets)
