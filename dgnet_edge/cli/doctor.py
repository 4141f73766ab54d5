"""`dgnet-edge doctor`: what this machine offers the camera app, and what each finding means.

Run it first on a new device (a Jetson above all): it names the Python, the board and JetPack, the
OpenCV build (pip wheel or system, GStreamer, HOG), ONNX Runtime's providers, TensorRT, CUDA and
pycuda, and whether torch (the training side) is installed. Exit 1 when the app cannot run here.
"""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from dgnet_edge.cli.options import JsonOpt
from dgnet_edge.cli.output import out, print_json


def doctor(as_json: JsonOpt = False) -> None:
    """Report Python, board, OpenCV, ONNX Runtime, TensorRT, CUDA and torch, and what each means."""
    from dgnet_edge.environment import app_can_run, collect_checks, demo_backend

    checks = collect_checks()
    runs = app_can_run(checks)
    if as_json:
        print_json({"checks": [c.to_dict() for c in checks], "demo_backend": demo_backend(checks), "app_can_run": runs})
    else:
        table = Table(title="dgnet-edge doctor")
        for column in ("check", "found", "for the app"):
            table.add_column(column, overflow="fold")
        for c in checks:
            mark = "[green]ok[/]" if c.ok else "[yellow]note[/]"
            table.add_row(f"{mark} {c.name}", escape(c.found), escape(c.meaning))
        out.print(table)
        out.print(f"demo --backend auto runs on: {escape(demo_backend(checks))}")
    if not runs:
        raise typer.Exit(1)
