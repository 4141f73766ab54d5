"""`dgnet-edge bench speed`: the project's speed targets, measured on an export.

Targets (2-core CPU, ResNet-50 E_a at 256x128):

- ONNX Runtime int8 (the CPU model) >= 4x torch eager fp32 and >= 2.5x ONNX Runtime fp32, at batch 1
  (ratios of medians measured in one run);
- every int8 row >= 70 % of the int8 matrix-multiply peak at batch 1 and 8 (pre-processing
  included; see :mod:`~dgnet_edge.apps.report.roofline`);
- the generator (structure encoder + decoder, as ``Generator.open`` picks it: the INT8 CPU parts
  when the export has them, else fp32) >= 20 images/s;
- the report on the default synthetic export < 5 minutes (read from that export's report.json);
- a fresh process that loads the int8 embedder and the generator parts, embeds 8 crops and
  synthesises 8 images stays < 300 MB resident.

Rows are timed in their own processes (:mod:`~dgnet_edge.apps.report.worker`), one after another.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dgnet_edge.errors import DgnetEdgeError, ExportError, UsageError

INT8_VS_TORCH = 4.0
INT8_VS_ORT_FP32 = 2.5
PEAK_FRACTION = 0.70
GENERATOR_IMAGES_PER_S = 20.0
REPORT_SECONDS = 300.0
FOOTPRINT_BYTES = 300e6


@dataclass
class Target:
    name: str
    goal: str
    measured: float | None
    unit: str
    met: bool | None  # None: not measured
    detail: str = ""

    @property
    def verdict(self) -> str:
        return "not measured" if self.met is None else "met" if self.met else "missed"


@dataclass
class SpeedResult:
    export_dir: str
    targets: list[Target] = field(default_factory=list)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    roofline: dict[str, Any] | None = None
    footprint: dict[str, Any] | None = None
    machine: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"export_dir": self.export_dir, "targets": [{**asdict(t), "verdict": t.verdict} for t in self.targets],
                "rows": self.rows, "roofline": self.roofline, "footprint": self.footprint, "machine": self.machine}


def _p50(row: dict[str, Any] | None, batch: int) -> float | None:
    if not row or not row.get("available"):
        return None
    lat = row.get("latency", {}).get(str(batch))
    return lat["call"]["p50_ms"] if lat else None


def _ratio(slow: float | None, fast: float | None) -> float | None:
    return slow / fast if slow and fast else None


def _why(row: dict[str, Any] | None) -> str:
    return "" if row is None else row.get("reason", "") if not row.get("available") else ""


def read_report_duration(path: Path, error: type[DgnetEdgeError] = ExportError) -> tuple[float, str]:
    """(seconds, what was measured) of a report.json written by `dgnet-edge report`; ``error`` naming the
    file if it is missing or is not one."""
    try:
        data = json.loads(path.read_text())
        seconds = float(data["duration_s"])
        detail = (f"{path}: {data['export']['dir']} on {data['data']['root']}, batches "
                  f"{','.join(map(str, data['settings']['batches']))}, {data['settings']['runs']} runs, made {data['created']}")
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise error(f"{path}: not a report.json written by `dgnet-edge report` ({type(e).__name__}: {e})") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise error(f"{path}: duration_s must be a number of seconds >= 0, got {data['duration_s']!r}")
    return seconds, detail


def measure_speed(
    export_dir: str | Path,
    runs: int = 30,
    report_json: str | Path | None = None,
    on_progress: Callable[[str, str, int, int | None], None] | None = None,
    roofline_sizes: tuple[int, ...] | None = None,
) -> SpeedResult:
    from dgnet_edge.apps.report.footprint import measure_footprint
    from dgnet_edge.apps.report.machine import machine_info
    from dgnet_edge.apps.report.macs import count_macs
    from dgnet_edge.apps.report.roofline import DEFAULT_SIZES, fraction_of_peak, measure_roofline, peak_kind
    from dgnet_edge.apps.report.rows import plan_rows
    from dgnet_edge.apps.report.worker import RowJob, run_row_process
    from dgnet_edge.manifest import load_manifest

    progress = on_progress or (lambda *a: None)
    export_dir = Path(export_dir)
    manifest = load_manifest(export_dir)
    # Read before any timing: a wrong --report-json is bad usage, a damaged report in the export the export's fault.
    report_path = Path(report_json) if report_json else export_dir / "report" / "report.json"
    report = None
    if report_json or report_path.is_file():
        report = read_report_duration(report_path, UsageError if report_json else ExportError)
    result = SpeedResult(str(export_dir), machine=machine_info())
    specs = {s.key: s for s in plan_rows(manifest)}
    int8_keys = [k for k, s in specs.items() if s.precision.startswith("int8")]
    wanted = ["torch:fp32", "onnxruntime:fp32", *int8_keys]
    gen_batch = min(8, manifest.profile.max)
    batches = sorted({1, min(8, manifest.profile.max)})

    for i, key in enumerate(wanted):
        spec = specs[key]
        progress("bench", "rows", i, len(wanted))
        if not spec.available:
            result.rows[key] = {"available": False, "reason": spec.reason, "label": spec.label}
            continue
        job = RowJob(str(export_dir), spec.backend, spec.precision, [], batches if spec.precision.startswith("int8") else [1],
                     runs, generator=key in ("onnxruntime:fp32", "onnxruntime:int8-cpu"), generator_batch=gen_batch)
        row = run_row_process(job, lambda stage, done, total, label=spec.label: progress(label, stage, done, total))
        result.rows[key] = {**row, "label": spec.label, "activation_type": spec.activation_type, "onnx_file": spec.onnx_file}
    progress("bench", "rows", len(wanted), len(wanted))

    progress("bench", "roofline", 0, None)
    roofline = measure_roofline(kinds=("fp32", "int8-u8s8", "int8-s8s8"), sizes=roofline_sizes or DEFAULT_SIZES,
                                on_step=lambda d, t: progress("bench", "roofline", d, t))
    result.roofline = roofline.to_dict()
    progress("bench", "footprint", 0, None)
    footprint_precision = "int8" if manifest.has_model("embedder", "int8-cpu") else "fp32"
    result.footprint = measure_footprint(export_dir, precision=footprint_precision, batch=gen_batch)

    torch_row, fp32_row = result.rows.get("torch:fp32"), result.rows.get("onnxruntime:fp32")
    int8_row = result.rows.get("onnxruntime:int8-cpu")
    int8_ms = _p50(int8_row, 1)
    for name, other, goal in (("int8 (ORT int8-cpu) vs torch eager fp32, batch 1", torch_row, INT8_VS_TORCH),
                              ("int8 (ORT int8-cpu) vs ORT fp32, batch 1", fp32_row, INT8_VS_ORT_FP32)):
        ratio = _ratio(_p50(other, 1), int8_ms)
        detail = (f"p50 {_p50(other, 1):.2f} ms vs {int8_ms:.2f} ms" if ratio else
                  "; ".join(filter(None, [_why(other), _why(int8_row)])) or "not measured")
        result.targets.append(Target(name, f">= {goal:g}x", ratio, "x", None if ratio is None else ratio >= goal, detail))

    for key in int8_keys:
        row = result.rows.get(key, {})
        spec = specs[key]
        kind = peak_kind(spec.backend, spec.precision)
        peak = roofline.peak(kind) if kind else None
        for b in batches:
            ms = _p50(row, b)
            frac = None
            if ms and peak and spec.onnx_file:
                frac = fraction_of_peak(count_macs(export_dir / spec.onnx_file, b).total, ms / 1000, peak)
            detail = (f"p50 {ms:.2f} ms; int8 peak {peak / 1e9:.0f} GMAC/s" if frac is not None
                      else _why(row) or "not measured")
            result.targets.append(Target(f"{spec.label} share of the int8 peak, batch {b}",
                                         f">= {PEAK_FRACTION:.0%}", None if frac is None else 100 * frac, "%",
                                         None if frac is None else frac >= PEAK_FRACTION, detail))

    # The generator as Generator.open picks it on ONNX Runtime: the INT8 CPU parts when the export has them.
    generator_precision = "int8-cpu" if manifest.has_model("decoder", "int8-cpu") else "fp32"
    gen_rows = {"fp32": fp32_row, "int8-cpu": int8_row}
    gen = (gen_rows[generator_precision] or {}).get("generator") or {}
    rate = gen.get("images_per_s") if gen.get("available") else None
    detail = (f"batch {gen.get('batch')}, p50 {gen['latency']['p50_ms']:.1f} ms over {gen['latency']['runs']} runs" if rate
              else gen.get("reason") or _why(gen_rows[generator_precision]) or "not measured")
    fp32_gen = (fp32_row or {}).get("generator") or {}
    if generator_precision != "fp32" and fp32_gen.get("available"):
        detail += f"; fp32 parts: {fp32_gen['images_per_s']:.1f} images/s"
    result.targets.append(Target(
        f"generator images/s (structure encoder + decoder, ORT {generator_precision})", f">= {GENERATOR_IMAGES_PER_S:g}", rate,
        "images/s", None if rate is None else rate >= GENERATOR_IMAGES_PER_S, detail,
    ))

    seconds, detail = report if report else (None, f"no {report_path}: run `dgnet-edge report` on the default synthetic export")
    result.targets.append(Target("report on the default synthetic export", f"< {REPORT_SECONDS / 60:g} min",
                                 seconds, "s", None if seconds is None else seconds < REPORT_SECONDS, detail))

    fp = result.footprint or {}
    peak_rss = fp.get("peak_rss_bytes") if footprint_precision == "int8" else None  # the target is about the int8 models
    fp32_note = None
    if footprint_precision != "int8":
        fp32_note = "not measured: no int8 models in the export (export with --int8)" + (
            f"; the fp32 models take {fp['peak_rss_bytes'] / 1e6:.0f} MB" if fp.get("peak_rss_bytes") else "")
    result.targets.append(Target(
        f"peak RSS: load int8 embedder + generator, embed {gen_batch}, synthesise {gen_batch}", f"< {FOOTPRINT_BYTES / 1e6:g} MB",
        None if peak_rss is None else peak_rss / 1e6, "MB", None if peak_rss is None else peak_rss < FOOTPRINT_BYTES,
        fp32_note or fp.get("error") or "; ".join([
            str(fp.get("embedder")),
            f"{fp['generator']} (decoding {fp.get('decode_batch')} per call)" if fp.get("generator") else "no generator parts",
            f"torch imported: {'yes' if fp.get('torch_imported') else 'no'}",
        ]),
    ))
    return result
