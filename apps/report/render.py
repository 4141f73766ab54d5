"""A report as tables, and the tables as Markdown and as one self-contained HTML page.

:func:`report_tables` turns report.json's content into :class:`Table` objects (title, columns,
cells as text, notes); the Markdown, the HTML and the CLI's rich tables are all drawn from them,
so the three always agree.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from typing import Any

DASH = "—"


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    align: str = ""  # one of "l"/"r" per column; default: first column left, the rest right
    notes: list[str] = field(default_factory=list)

    def alignment(self) -> str:
        return self.align or "l" + "r" * (len(self.columns) - 1)


def _mb(value: float | None) -> str:
    return DASH if value is None else f"{value / 1e6:.1f}"


def _num(value: float | None, digits: int = 2) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return DASH if value is None else f"{100 * value:.1f} %"


def _measured(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("available")]


def _delta(drop: float | None) -> str:
    """A drop in points as the signed change, row minus reference."""
    if drop is None:
        return DASH
    change = -drop if abs(drop) >= 0.005 else 0.0  # no "-0.00"
    return f"{change:+.2f}"


def recommendation_table(report: dict[str, Any]) -> Table:
    rec = report["recommendation"]
    ref = rec["reference_label"]
    table = Table("What to deploy", ["goal", "row", "measured", f"rank-1 vs {ref or 'fp32'}", f"mAP vs {ref or 'fp32'}"],
                  align="llrrr")
    for p in rec["picks"]:
        table.rows.append([p["goal"], p["label"], p["value"], _delta(p["rank1_drop"]), _delta(p["map_drop"])])
    tol = rec["tolerance"]
    if not rec["accuracy_measured"]:
        table.notes.append("Accuracy was not measured (--no-accuracy): picked by speed and memory alone.")
    else:
        table.notes.append(f"Only rows whose rank-1 is at most {tol['max_rank1_drop']:g} and mAP at most "
                           f"{tol['max_map_drop']:g} points below {ref or 'an fp32 row'} are picked (points, row minus reference).")
    table.notes += [f"Left out: {r['label']}: {r['reason']}." for r in rec["rejected"]]
    return table


def accuracy_table(report: dict[str, Any]) -> Table:
    data = report["data"]
    ap = report["settings"]["ap"]
    table = Table(
        f"Accuracy on {data['dataset']} at {data['root']} ({data.get('queries', '?')} queries, {data.get('gallery', '?')} gallery; AP: {ap})",
        ["row", "rank-1 %", "mAP %", "mINP %", "status"], align="lrrrl",
    )
    for row in report["rows"]:
        acc = row.get("accuracy")
        if acc:
            table.rows.append([row["label"], f"{acc['rank1']:.2f}", f"{acc['mAP']:.2f}", f"{acc['mINP']:.2f}",
                               f"measured ({acc['num_valid_queries']}/{acc['num_queries']} queries with a match)"])
        else:
            reason = row.get("reason") or "accuracy not measured"
            table.rows.append([row["label"], DASH, DASH, DASH, f"not measured: {reason}"])
    table.notes.append(report["conventions"]["ap"])
    return table


def latency_table(report: dict[str, Any]) -> Table:
    table = Table(
        "Latency per call (embedder, pre-processing included) and backend-only time",
        ["row", "batch", "p50 ms", "p95 ms", "p99 ms", "images/s", "backend p50 ms", "runs"],
    )
    for row in _measured(report["rows"]):
        for batch, lat in row.get("latency", {}).items():
            call, backend = lat["call"], lat["backend"]
            table.rows.append([row["label"], batch, _num(call["p50_ms"]), _num(call["p95_ms"]), _num(call["p99_ms"]),
                               _num(call["images_per_s"], 1), _num(backend.get("p50_ms")), str(call["runs"])])
    table.notes += [report["conventions"]["latency"], report["conventions"]["percentiles"]]
    return table


def resources_table(report: dict[str, Any]) -> Table:
    table = Table(
        "Memory, model size and start-up (each row in its own process)",
        ["row", "peak RSS MB", "model file MB", "import s", "load s", "first call s", "start-up s", "torch imported"],
    )
    for row in _measured(report["rows"]):
        s = row.get("startup", {})
        table.rows.append([row["label"], _mb(row.get("peak_rss_bytes")), _mb(row.get("model_bytes")), _num(s.get("import_s")),
                           _num(s.get("load_s")), _num(s.get("first_inference_s")), _num(s.get("startup_s")),
                           "yes" if row.get("torch_imported") else "no"])
    table.notes.append(report["conventions"]["memory"])
    return table


def generator_table(report: dict[str, Any]) -> Table:
    table = Table(
        "Generator: structure encoder + decoder, synthesised images per second",
        ["row", "batch", "p50 ms", "images/s", "GMAC/image", "% of peak", "status"], align="lrrrrrl",
    )
    gens = [(row, row["generator"]) for row in _measured(report["rows"]) if row.get("generator")]
    reasons = {gen.get("reason", "") for _, gen in gens if not gen.get("available")}
    if gens and len(reasons) == 1 and not any(gen.get("available") for _, gen in gens):
        table.rows.append(["every row", DASH, DASH, DASH, DASH, DASH, reasons.pop()])  # one reason, said once
        return table
    for row, gen in gens:
        if gen.get("available"):
            table.rows.append([row["label"], str(gen["batch"]), _num(gen["latency"]["p50_ms"], 1), _num(gen["images_per_s"], 2),
                               _num(gen.get("macs_per_image", 0) / 1e9 if gen.get("macs_per_image") else None, 1),
                               _pct(gen.get("fraction_of_peak")), f"{gen['latency']['runs']} runs"])
        else:
            table.rows.append([row["label"], DASH, DASH, DASH, DASH, DASH, gen.get("reason", "")])
    return table


def roofline_tables(report: dict[str, Any]) -> list[Table]:
    roof = report.get("roofline")
    if not roof:
        return []
    threads = roof["threads_all"]
    peaks = Table(f"Roofline: sustained matrix-multiply peaks of {roof['runtime']} on this machine (GMAC/s; 1 MAC = 2 FLOPs)",
                  ["kernel", "1 thread", f"{threads} threads", "best size"])
    for kind, p in roof["peaks"].items():
        if kind == "int8":
            peaks.rows.append(["int8 (the faster of the two)", _num(p["single_thread_gmacs"], 1), _num(p["all_threads_gmacs"], 1), ""])
            continue
        sizes = [m for m in roof["measurements"] if m["kind"] == kind and m["threads"] == threads]
        best = max(sizes, key=lambda m: m["gmacs"])["size"] if sizes else None
        peaks.rows.append([kind, _num(p["single_thread_gmacs"], 1), _num(p["all_threads_gmacs"], 1), f"{best}³" if best else DASH])
    peaks.notes.append(report["conventions"]["roofline"])
    rows = Table("Fraction of the matching peak: MACs x 2 / latency / peak FLOP/s",
                 ["row", "peak", "GMAC/image", "b1 call", "b1 backend", "b8 call", "b8 backend"])
    for row in _measured(report["rows"]):
        r = row.get("roofline") or {}
        frac = r.get("fraction", {})

        def cell(batch: str, which: str) -> str:
            return _pct(frac.get(batch, {}).get(which))

        rows.rows.append([row["label"], r.get("peak_kind") or DASH,
                          _num(r["macs_per_image"] / 1e9, 2) if r.get("macs_per_image") else DASH,
                          cell("1", "call"), cell("1", "backend"), cell("8", "call"), cell("8", "backend")])
    rows.notes.append(report["conventions"]["macs"])
    return [peaks, rows]


def unavailable_table(report: dict[str, Any]) -> Table:
    table = Table("Rows not measured here", ["row", "reason"], align="ll")
    for row in report["rows"]:
        if not row.get("available"):
            table.rows.append([row["label"], row.get("reason") or ""])
    return table


def report_tables(report: dict[str, Any]) -> list[Table]:
    tables = [accuracy_table(report), latency_table(report), resources_table(report)]
    if report.get("recommendation"):
        tables.insert(0, recommendation_table(report))
    gen = generator_table(report)
    if gen.rows:
        tables.append(gen)
    tables += roofline_tables(report)
    missing = unavailable_table(report)
    if missing.rows:
        tables.append(missing)
    return tables


def header_lines(report: dict[str, Any]) -> list[str]:
    from dgnet_edge.apps.report.machine import describe_cpu

    machine, export, settings = report["machine"], report["export"], report["settings"]
    gpus = ", ".join(g["name"] for g in machine["gpus"]) or "none"
    libs = ", ".join(f"{k} {v}" for k, v in machine["libraries"].items() if v)
    return [
        f"Export: {export['dir']} (from {export['source'].get('kind', '?')} checkpoint {export['source'].get('checkpoint', '?')}; "
        f"input {export['input']['height']}x{export['input']['width']} {export['input']['dtype']}, flip {'on' if export['flip'] else 'off'})",
        f"Machine: {describe_cpu(machine['cpu'])}; GPU: {gpus}; {machine['os']}, Python {machine['python']}",
        f"Libraries: {libs}",
        f"Settings: batches {', '.join(map(str, settings['batches']))}; {settings['runs']} timed runs after {settings['warmup']} warm-up per batch; "
        f"device {settings['device']}; made {report['created']} in {report['duration_s']:.0f} s",
    ]


# -- Markdown --------------------------------------------------------------------------------------
def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_markdown(table: Table) -> str:
    align = {"l": ":---", "r": "---:"}
    lines = [f"### {table.title}", "", "| " + " | ".join(table.columns) + " |",
             "| " + " | ".join(align[a] for a in table.alignment()) + " |"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    if table.notes:
        lines.append("")
        lines += [f"_{n}_  " for n in table.notes]
    return "\n".join(lines)


def to_markdown(report: dict[str, Any], tables: list[Table], picture: str = "pareto.png") -> str:
    parts = ["# dgnet-edge accuracy-vs-latency report", ""]
    parts += [f"- {line}" for line in header_lines(report)]
    parts += ["", f"![mAP vs batch-1 latency]({picture})", ""]
    for table in tables:
        parts += [table_markdown(table), ""]
    return "\n".join(parts).rstrip() + "\n"


# -- HTML ------------------------------------------------------------------------------------------
_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; max-width: 1240px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .3em; } h2 { font-size: 1.15em; margin: 1.8em 0 .5em; }
ul.meta { color: #555; padding-left: 1.2em; } img { max-width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; margin: .3em 0; } th, td { padding: .3em .7em; border-bottom: 1px solid #e4e4e4; }
th { background: #f4f6f8; text-align: left; } td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
p.note { color: #666; font-size: .9em; margin: .2em 0; }
"""


def table_html(table: Table) -> str:
    align = table.alignment()
    head = "".join(f'<th class="{a}">{html.escape(c)}</th>' for c, a in zip(table.columns, align))
    body = "".join("<tr>" + "".join(f'<td class="{a}">{html.escape(c)}</td>' for c, a in zip(row, align)) + "</tr>"
                   for row in table.rows)
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in table.notes)
    return f"<h2>{html.escape(table.title)}</h2>\n<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n{notes}"


def to_html(report: dict[str, Any], tables: list[Table], png: bytes) -> str:
    meta = "".join(f"<li>{html.escape(line)}</li>" for line in header_lines(report))
    picture = base64.b64encode(png).decode("ascii")
    body = "\n".join(table_html(t) for t in tables)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>dgnet-edge accuracy-vs-latency report</title>"
        f"<style>{_CSS}</style></head><body>\n<h1>dgnet-edge accuracy-vs-latency report</h1>\n"
        f"<ul class=\"meta\">{meta}</ul>\n"
        f"<img alt=\"mAP vs batch-1 latency, one point per row\" src=\"data:image/png;base64,{picture}\">\n"
        f"{body}\n</body></html>\n"
    )
