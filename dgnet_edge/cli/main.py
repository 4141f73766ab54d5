"""Root of the `dgnet-edge` command: wires the command modules and maps errors to exit codes.

User errors (:class:`~dgnet_edge.errors.DgnetEdgeError`) print one line to stderr and exit with
their code (1, or 2 for usage); set ``DGNET_EDGE_DEBUG=1`` to see the traceback instead.

SIGTERM (``timeout``, systemd, ``docker stop``) stops every command the way Ctrl-C does: training
saves its checkpoint, the demo keeps its tracks and videos, and outputs being assembled are
removed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

import typer
from rich.markup import escape

from dgnet_edge import __version__
from dgnet_edge.cli import bench, bench_camera, build, calib, data, demo, evaluate, export, gallery, generative, quickstart, report, train
from dgnet_edge.cli.output import err, setup_logging
from dgnet_edge.errors import DgnetEdgeError

app = typer.Typer(
    name="dgnet-edge",
    help="Train DG-Net re-id models and compile them for the edge.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.add_typer(bench.app, name="bench")
bench.app.command("camera")(bench_camera.camera)
bench.app.command("synthesis")(__import__("dgnet_edge.cli.bench_synthesis", fromlist=["synthesis"]).synthesis)
app.add_typer(calib.app, name="calib")
app.add_typer(gallery.app, name="gallery")
app.command("train")(train.train)
app.command("eval")(evaluate.evaluate)
app.command("export")(export.export)
app.command("build")(build.build)
app.command("import-official")(generative.import_official)
app.command("synth")(generative.synth)
app.command("quickstart")(quickstart.quickstart)
app.command("report")(report.report)
app.command("eval-tracks")(__import__("dgnet_edge.cli.eval_tracks", fromlist=["eval_tracks"]).eval_tracks)
app.command("demo")(demo.demo)


def _version(value: bool) -> None:
    if value:
        print(__version__)
        raise typer.Exit()


@app.callback()
def root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    setup_logging(verbose)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Handle SIGTERM with whatever handles Ctrl-C now (a command may install its own, as training
    does), else by raising KeyboardInterrupt in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_terminate(signum: int, frame: object) -> None:
        on_interrupt = signal.getsignal(signal.SIGINT)
        if not callable(on_interrupt):  # SIG_IGN in background jobs, or SIG_DFL: stop all the same
            raise KeyboardInterrupt
        on_interrupt(signal.SIGINT, frame)

    previous = signal.signal(signal.SIGTERM, on_terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        with terminate_as_interrupt():
            app(args=argv, prog_name="dgnet-edge")
    except DgnetEdgeError as e:
        if os.environ.get("DGNET_EDGE_DEBUG"):
            raise
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
