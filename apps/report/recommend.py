"""What to deploy: the report's rows read as a choice.

A row may be chosen only if its accuracy stays within the INT8 acceptance tolerance of the fp32
reference (:data:`dgnet_edge.calib.accuracy.TARGETS`: rank-1 at most 1 point and mAP at most 1.5
points below it). Among those rows, one pick per goal: the lowest batch-1 latency (a camera that
embeds each crop as it comes), the highest throughput at any batch size (a gallery or a crowd
embedded in batches) and the smallest peak memory (a device shared with other processes).

The reference is the first fp32 row measured with accuracy: ONNX Runtime, then TensorRT, then
torch. Without an accuracy pass (``--no-accuracy``) rows are picked by speed alone and the
recommendation says so.
"""

from __future__ import annotations

from typing import Any

from dgnet_edge.calib.accuracy import TARGETS

REFERENCE_ORDER = ("onnxruntime:fp32", "tensorrt:fp32", "torch:fp32")


def _reference(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    by_key = {r["key"]: r for r in rows if r.get("available") and r.get("accuracy")}
    return next((by_key[k] for k in REFERENCE_ORDER if k in by_key), None)


def _drops(row: dict[str, Any], ref: dict[str, Any]) -> tuple[float, float]:
    """(rank-1 drop, mAP drop) in points; negative when the row scores higher."""
    return ref["accuracy"]["rank1"] - row["accuracy"]["rank1"], ref["accuracy"]["mAP"] - row["accuracy"]["mAP"]


def _rejection(row: dict[str, Any], ref: dict[str, Any] | None, accuracy_measured: bool) -> str | None:
    if not accuracy_measured:
        return None
    if not row.get("accuracy"):
        return "accuracy not measured"
    if ref is None:
        return "no fp32 row to compare with"
    rank1_drop, map_drop = _drops(row, ref)
    failures = []
    if rank1_drop > TARGETS.max_rank1_drop:
        failures.append(f"rank-1 {rank1_drop:.2f} points below {ref['label']} (at most {TARGETS.max_rank1_drop:g})")
    if map_drop > TARGETS.max_map_drop:
        failures.append(f"mAP {map_drop:.2f} points below {ref['label']} (at most {TARGETS.max_map_drop:g})")
    return "; ".join(failures) or None


def _best_throughput(row: dict[str, Any]) -> tuple[int, float] | None:
    rates = [(int(b), lat["call"]["images_per_s"]) for b, lat in row.get("latency", {}).items()]
    return max(rates, key=lambda r: r[1]) if rates else None


def recommend(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The picks (one per goal) and the rows left out with the reason; see the module docstring."""
    measured = [r for r in rows if r.get("available") and r.get("latency")]
    accuracy_measured = any(r.get("accuracy") for r in measured)
    ref = _reference(measured)
    rejected, eligible = [], []
    for row in measured:
        reason = _rejection(row, ref, accuracy_measured)
        if reason:
            rejected.append({"key": row["key"], "label": row["label"], "reason": reason})
        else:
            eligible.append(row)

    def pick(goal: str, row: dict[str, Any], value: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"goal": goal, "key": row["key"], "label": row["label"], "value": value,
                                 "rank1_drop": None, "map_drop": None}
        if ref is not None and row.get("accuracy"):
            entry["rank1_drop"], entry["map_drop"] = _drops(row, ref)
        return entry

    picks = []
    latency = [r for r in eligible if "1" in r["latency"]]
    if latency:
        best = min(latency, key=lambda r: r["latency"]["1"]["call"]["p50_ms"])
        ms = best["latency"]["1"]["call"]["p50_ms"]
        text = f"{ms:.2f} ms p50 at batch 1"
        if ref is not None and "1" in ref.get("latency", {}) and ref is not best:
            text += f" ({ref['latency']['1']['call']['p50_ms'] / ms:.1f}x {ref['label']})"
        picks.append(pick("lowest latency", best, text))
    throughput = [(r, t) for r in eligible if (t := _best_throughput(r))]
    if throughput:
        best, (batch, rate) = max(throughput, key=lambda rt: rt[1][1])
        picks.append(pick("highest throughput", best, f"{rate:.0f} images/s at batch {batch}"))
    memory = [r for r in eligible if r.get("peak_rss_bytes")]
    if memory:
        best = min(memory, key=lambda r: r["peak_rss_bytes"])
        picks.append(pick("smallest memory", best, f"{best['peak_rss_bytes'] / 1e6:.0f} MB peak RSS"))
    return {
        "reference": ref["key"] if ref else None,
        "reference_label": ref["label"] if ref else None,
        "accuracy_measured": accuracy_measured,
        "tolerance": {"max_rank1_drop": TARGETS.max_rank1_drop, "max_map_drop": TARGETS.max_map_drop},
        "picks": picks,
        "rejected": rejected,
    }
