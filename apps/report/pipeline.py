"""`dgnet-edge report`: measure every row of an export and write report.json, report.md,
report.html and pareto.png.

    dgnet-edge report exports/synth --data data/synth --batch 1,8,32 --runs 30

Order of work: plan the rows (:mod:`~dgnet_edge.apps.report.rows`), describe the machine, measure
the roofline peaks, count each graph's MACs, then run each runnable row in its own process
(:mod:`~dgnet_edge.apps.report.worker`), one after another so rows never compete for the cores.
The files are written at the end, each atomically, into ``out`` (default ``EXPORT_DIR/report``).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from dgnet_edge import __version__
from dgnet_edge.apps.report.recommend import recommend
from dgnet_edge.apps.report.roofline import DEFAULT_SIZES, fraction_of_peak, peak_kind
from dgnet_edge.apps.report.rows import BACKENDS, RowSpec, plan_rows
from dgnet_edge.errors import ExportError, UsageError

log = logging.getLogger(__name__)

SCHEMA = "dgnet-edge-report"
SCHEMA_VERSION = 1
FILES = ("report.json", "report.md", "report.html", "pareto.png")
FRACTION_BATCHES = (1, 8)  # always timed (when the profile allows): the roofline fractions use them

# (row label or "report", stage, done, total): the CLI draws it as progress bars.
ProgressFn = Callable[[str, str, int, Optional[int]], None]

CONVENTIONS = {
    "ap": {
        "standard": "AP convention 'standard': the mean of precision at each correct match (torchreid, fast-reid). "
                    "Market-1501 rules: same-id same-camera gallery items and id -1 are junk; distractors (id 0) stay.",
        "trapezoid": "AP convention 'trapezoid': the Market-1501 MATLAB rule (DG-Net, Person_reID_baseline_pytorch). "
                     "Market-1501 rules: same-id same-camera gallery items and id -1 are junk; distractors (id 0) stay.",
    },
    "latency": "Call = Embedder.embed on uint8 crops already at the network size (stacking, dtype conversion, the backend "
               "call and output copies included); backend = Runner.inference_time, the runtime's own call.",
    "percentiles": "Percentiles interpolate linearly between order statistics (numpy's default); with 30 runs p99 is "
                   "about the slowest run. images/s = batch / p50.",
    "memory": "Peak RSS: the high-water mark of a fresh process that imported the runtime, loaded this row's embedder and "
              "ran it at every batch size (before the generator and the accuracy pass). Start-up = load + first call "
              "(batch 1); import = importing the runtime library. 'torch imported' shows the deployment rows ran "
              "without torch.",
    "roofline": "Peaks: best run of a one-node MatMul graph (n x n by n x n constant weights) at several n, through ONNX "
                "Runtime's CPU kernels: fp32 MatMul, and QDQ MatMuls fused into QLinearMatMul with uint8 (U8S8) or "
                "int8 (S8S8) activations and int8 weights.",
    "macs": "MACs: Conv, ConvTranspose, Gemm, MatMul (and integer forms) counted from the graph with shapes from ONNX "
            "shape inference at the batch size; the flip export runs the trunk on each image and its mirror, so its "
            "MACs are twice one pass (GMAC/image includes the flip). fp32 and fp16 rows use the fp32 peak (ORT's CPU "
            "provider runs fp16 convolutions in fp32 behind casts), int8 rows the int8 peak (the faster int8 kernel "
            "family: the machine's int8 capability through ORT); TensorRT rows run on the GPU and have none here. The call fraction includes pre-processing and the "
            "uncounted ops, so it is a lower bound on the convolution efficiency.",
}


@dataclass(frozen=True)
class ReportOptions:
    """What a report measures.

    Args:
        export_dir: the export folder.
        data: root of the query/gallery set (default: the dataset the export's checkpoint was trained on).
        dataset: its reader (default: the manifest's).
        backends: torch, onnxruntime, tensorrt (any subset).
        batches: batch sizes to time (each at most the export's batch profile maximum).
        runs: timed runs per batch size; warmup: untimed runs before them.
        ap: AP convention, standard | trapezoid.
        alpha: weight of the query's fine-grained half (default: the checkpoint's).
        accuracy: run the accuracy pass (off: latency, memory and generator only).
        generator: time the generator parts when the export has them.
        generator_batch: images per generator call (default 8, at most the profile maximum).
        generator_budget_s: time the generator for at most this long per row (at least 3 runs).
        roofline_sizes, roofline_runs: matrix sizes and timed runs of the peak measurement.
        device: auto | cpu | cuda.
        out: output folder (default: EXPORT_DIR/report).
    """

    export_dir: Path
    data: Path | None = None
    dataset: str | None = None
    backends: tuple[str, ...] = BACKENDS
    batches: tuple[int, ...] = (1, 8, 32)
    runs: int = 30
    warmup: int = 3
    ap: str = "standard"
    alpha: float | None = None
    accuracy: bool = True
    generator: bool = True
    generator_batch: int = 8
    generator_budget_s: float = 20.0
    roofline_sizes: tuple[int, ...] = DEFAULT_SIZES
    roofline_runs: int = 8
    device: str = "auto"
    out: Path | None = None

    def __post_init__(self) -> None:
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown or not self.backends:
            raise UsageError(f"backends must be among {', '.join(BACKENDS)}, got {', '.join(self.backends) or 'none'}")
        if not self.batches or any(b < 1 for b in self.batches):
            raise UsageError(f"batch sizes must be integers >= 1, got {list(self.batches)}")
        if self.runs < 1 or self.warmup < 0:
            raise UsageError(f"runs must be >= 1 and warm-up >= 0, got {self.runs} and {self.warmup}")
        if self.ap not in CONVENTIONS["ap"]:
            raise UsageError(f"ap must be one of {', '.join(CONVENTIONS['ap'])}, got {self.ap!r}")
        if self.device not in ("auto", "cpu", "cuda") and not (self.device.startswith("cuda:") and self.device[5:].isdigit()):
            raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    @property
    def out_dir(self) -> Path:
        return self.out or Path(self.export_dir) / "report"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _sample_paths(dataset: Any, count: int) -> list[str]:
    """Query images spread over the query set, for timing on real crops."""
    records = list(dataset.query) or list(dataset.gallery)
    step = max(1, len(records) // max(count, 1))
    return [str(r.path) for r in records[::step][:count]]


def _count_all_macs(export_dir: Path, files: set[str], batches: Sequence[int]) -> dict[str, dict[str, Any]]:
    """MACs per ONNX file at each batch size."""
    import onnx

    from dgnet_edge.apps.report.macs import count_macs

    result: dict[str, dict[str, Any]] = {}
    for file in sorted(files):
        model = onnx.load(str(export_dir / file))
        result[file] = {str(b): count_macs(model, b).to_dict() for b in sorted(set(batches))}
    return result


def _row_roofline(row: dict[str, Any], spec: RowSpec, macs: dict[str, dict[str, Any]], roofline: Any) -> dict[str, Any]:
    kind = peak_kind(spec.backend, spec.precision)
    counted = macs.get(spec.onnx_file or "", {})
    out: dict[str, Any] = {"peak_kind": kind, "macs_per_image": counted.get("1", {}).get("per_image"), "fraction": {}}
    peak = roofline.peak(kind) if (roofline is not None and kind) else None
    out["peak_gmacs"] = peak / 1e9 if peak else None
    for batch, lat in row.get("latency", {}).items():
        total = counted.get(batch, {}).get("total")
        if not total:
            continue
        out["fraction"][batch] = {
            "call": fraction_of_peak(total, lat["call"]["p50_ms"] / 1000, peak),
            "backend": fraction_of_peak(total, lat["backend"]["p50_ms"] / 1000, peak) if lat["backend"].get("runs") else None,
        }
    return out


def _generator_macs(export_dir: Path, manifest: Any, precision: str, batch: int) -> int | None:
    """MACs per synthesised image: structure encoder + decoder (fp32 graphs unless ``precision`` has them)."""
    from dgnet_edge.apps.report.macs import count_macs

    p = precision if manifest.has_model("structure", precision) and manifest.has_model("decoder", precision) else "fp32"
    if not (manifest.has_model("structure", p) and manifest.has_model("decoder", p)):
        return None
    total = sum(count_macs(export_dir / manifest.model(role, p).file, batch).total for role in ("structure", "decoder"))
    return total // batch


def _verify_files(export_dir: Path, manifest: Any, specs: Sequence[RowSpec]) -> None:
    """Every model file a runnable row reads must match its sha256 in the manifest (as `calib check`
    demands), so that a damaged file is named before the MAC count or a row parses it."""
    from dgnet_edge.manifest import verified_path

    wanted = {f for s in specs if s.available for f in s.files if not Path(f).is_absolute()}
    for entry in (*manifest.models, *manifest.engines):
        if entry.file in wanted:
            verified_path(export_dir, entry)


def _log_reasons(rows: Sequence[dict[str, Any]]) -> None:
    """One warning per distinct reason a measured row could not run, naming the rows it hit."""
    by_reason: dict[str, list[str]] = {}
    for row in rows:
        if row.get("measured") and not row["available"]:
            by_reason.setdefault(str(row.get("reason")), []).append(row["label"])
    for reason, labels in by_reason.items():
        log.warning("%s: %s", ", ".join(labels) if len(labels) < 4 else f"{len(labels)} rows", reason)


def make_report(options: ReportOptions, on_progress: ProgressFn | None = None) -> dict[str, Any]:
    """Measure every row; returns the content of report.json (nothing is written).

    ExportError when the manifest lists no models or a model file differs from its sha256, and
    when no row could run (each distinct reason said once)."""
    from dgnet_edge.apps.report.machine import machine_info
    from dgnet_edge.apps.report.roofline import measure_roofline
    from dgnet_edge.apps.report.worker import RowJob, run_row_process
    from dgnet_edge.data.registry import build_dataset
    from dgnet_edge.manifest import load_manifest

    progress = on_progress or (lambda *a: None)
    started = time.perf_counter()
    export_dir = Path(options.export_dir)
    manifest = load_manifest(export_dir)
    if not manifest.models:
        raise ExportError(f"{export_dir}: the manifest lists no models: export the checkpoint again with `dgnet-edge export`")
    too_big = [b for b in options.batches if b > manifest.profile.max]
    if too_big:
        raise UsageError(f"--batch {','.join(map(str, too_big))}: larger than the export's batch profile maximum "
                         f"({manifest.profile.max}); choose batch sizes up to it")
    dataset_name = options.dataset or manifest.source.get("dataset") or "market1501"
    data_root = options.data or (Path(manifest.source["data_root"]) if manifest.source.get("data_root") else None)
    if data_root is None:
        raise UsageError("the manifest names no dataset; give the query/gallery set with --data DIR")
    dataset = build_dataset(dataset_name, data_root)
    alpha = options.alpha if options.alpha is not None else float(manifest.source.get("eval_alpha", 0.5))
    generator_batch = max(1, min(options.generator_batch, manifest.profile.max))
    specs = plan_rows(manifest, tuple(options.backends))
    _verify_files(export_dir, manifest, specs)

    progress("report", "machine", 0, None)
    machine = machine_info()
    roofline = None
    if any(s.available and s.backend != "tensorrt" for s in specs):
        roofline = measure_roofline(sizes=options.roofline_sizes, runs=options.roofline_runs,
                                    on_step=lambda done, total: progress("report", "roofline", done, total))
    progress("report", "counting MACs", 0, None)
    timed = sorted({*options.batches, *(b for b in FRACTION_BATCHES if b <= manifest.profile.max)})
    macs = _count_all_macs(export_dir, {s.onnx_file for s in specs if s.onnx_file}, timed)

    rows = []
    for i, spec in enumerate(specs):
        row: dict[str, Any] = {**spec.to_dict(), "available": spec.available, "reason": spec.reason}
        progress("report", "rows", i, len(specs))
        if spec.available:
            job = RowJob(
                export_dir=str(export_dir), backend=spec.backend, precision=spec.precision,
                sample_paths=_sample_paths(dataset, max([*timed, generator_batch])),
                batches=timed, runs=options.runs, warmup=options.warmup, device=options.device,
                dataset=dataset_name, data_root=str(data_root) if options.accuracy else None, ap=options.ap, alpha=alpha,
                generator=options.generator, generator_batch=generator_batch, generator_budget_s=options.generator_budget_s,
                accuracy_batch=manifest.profile.max,
            )
            result = run_row_process(job, lambda stage, done, total, label=spec.label: progress(label, stage, done, total))
            row.update(result, measured=True)
            if row.get("traceback"):
                log.debug("%s: %s", spec.label, row["traceback"])
        files = [Path(f) if Path(f).is_absolute() else export_dir / f for f in spec.files]
        row["model_bytes"] = sum(f.stat().st_size for f in files if f.is_file()) or None
        if row["available"]:
            row["roofline"] = _row_roofline(row, spec, macs, roofline)
            gen = row.get("generator") or {}
            if gen.get("available"):
                gen["macs_per_image"] = _generator_macs(export_dir, manifest, spec.precision, gen["batch"])
                kind = peak_kind(spec.backend, spec.precision)
                peak = roofline.peak(kind) if (roofline is not None and kind) else None
                gen["fraction_of_peak"] = (fraction_of_peak(gen["macs_per_image"] * gen["batch"], gen["latency"]["p50_ms"] / 1000, peak)
                                           if gen["macs_per_image"] else None)
        rows.append(row)
    progress("report", "rows", len(specs), len(specs))
    _log_reasons(rows)
    if not any(row["available"] for row in rows):
        reasons = dict.fromkeys(str(row.get("reason")) for row in rows)
        raise ExportError(f"no row of the report could run on {export_dir}: " + "; ".join(reasons))
    for row in rows:
        row.pop("measured", None)

    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "toolkit_version": __version__,
        "created": _now(),
        "duration_s": time.perf_counter() - started,
        "export": {
            "dir": str(export_dir),
            "source": manifest.source,
            "input": {"height": manifest.input.height, "width": manifest.input.width, "dtype": manifest.input.dtype},
            "flip": manifest.flip,
            "feature_dim": manifest.feature_dim,
            "profile": {"min": manifest.profile.min, "opt": manifest.profile.opt, "max": manifest.profile.max},
            "models": [{"file": e.file, "role": e.role, "precision": e.precision,
                        "bytes": (export_dir / e.file).stat().st_size if (export_dir / e.file).is_file() else None}
                       for e in manifest.models],
            "engines": [{"file": e.file, "role": e.role, "precision": e.precision, "gpu": e.gpu, "tensorrt": e.tensorrt}
                        for e in manifest.engines],
        },
        "data": {"dataset": dataset_name, "root": str(data_root), "queries": len(dataset.query), "gallery": len(dataset.gallery)},
        "settings": {"backends": list(options.backends), "batches": timed, "asked_batches": list(options.batches), "runs": options.runs,
                     "warmup": options.warmup, "ap": options.ap, "alpha": alpha, "accuracy": options.accuracy,
                     "generator_batch": generator_batch, "accuracy_batch": manifest.profile.max, "device": options.device},
        "conventions": {**{k: v for k, v in CONVENTIONS.items() if k != "ap"}, "ap": CONVENTIONS["ap"][options.ap]},
        "machine": machine,
        "roofline": roofline.to_dict() if roofline is not None else None,
        "macs": macs,
        "rows": rows,
        "recommendation": recommend(rows),
    }


def pareto_points(report: dict[str, Any]) -> list[Any]:
    from dgnet_edge.apps.report.pareto import Point
    from dgnet_edge.apps.report.rows import SHORT

    points = []
    for row in report["rows"]:
        lat = row.get("latency", {}).get("1")
        acc = row.get("accuracy")
        if row.get("available") and lat and acc:
            label = "torch fp32 eager" if row["backend"] == "torch" else f"{SHORT.get(row['backend'], row['backend'])} {row['precision']}"
            points.append(Point(label, row["backend"], row["precision"], lat["call"]["p50_ms"], acc["mAP"]))
    return points


def write_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """report.json, pareto.png, report.md and report.html into ``out_dir`` (each written atomically)."""
    from dgnet_edge.apps.report.machine import describe_cpu
    from dgnet_edge.apps.report.pareto import render_png
    from dgnet_edge.apps.report.render import report_tables, to_html, to_markdown
    from dgnet_edge.atomic import write_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = report["data"]
    title = f"mAP vs batch-1 latency: {Path(report['export']['dir']).name} on {data['dataset']} ({data['queries']} q / {data['gallery']} g)"
    subtitle = f"{describe_cpu(report['machine']['cpu'])}; AP {report['settings']['ap']}"
    png = render_png(pareto_points(report), title, subtitle)
    tables = report_tables(report)
    paths = {name: out_dir / name for name in FILES}
    write_atomic(paths["report.json"], (json.dumps(report, indent=2) + "\n").encode())
    write_atomic(paths["pareto.png"], png)
    write_atomic(paths["report.md"], to_markdown(report, tables).encode())
    write_atomic(paths["report.html"], to_html(report, tables, png).encode())
    return paths
