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
from typing import Iterator, List, Optional

import typer
from rich.markup import escape
from typing_extensions import get_type_hints

from dgnet_edge import __version__
from dgnet_edge.cli import (bench, bench_camera, build, calib, data, demo, detector, doctor, evaluate, export, gallery, generative,
                            quickstart, report, train)
from dgnet_edge.cli.output import err, setup_logging
from dgnet_edge.errors import DgnetEdgeError

# What the [train] extra adds: a command that imports one of them is a training-side command.
TRAINING_PACKAGES = ("torch", "yaml", "pydantic")

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
bench.app.command("real")(__import__("dgnet_edge.cli.bench_real", fromlist=["real"]).real)
bench.app.command("synthesis")(__import__("dgnet_edge.cli.bench_synthesis", fromlist=["synthesis"]).synthesis)
bench.app.command("gallery")(__import__("dgnet_edge.cli.bench_gallery", fromlist=["gallery"]).gallery)
app.add_typer(calib.app, name="calib")
app.add_typer(gallery.app, name="gallery")
app.add_typer(detector.app, name="detector")
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
app.command("doctor")(doctor.doctor)


def resolve_annotations(group: typer.Typer) -> None:
    """Evaluate the annotations of every command and callback under ``group``, in place.

    The CLI modules write ``from __future__ import annotations``, so annotations are strings. Typer
    evaluates them itself on Python 3.10+, but before that it reads them as strings and loses the
    options declared in ``Annotated[...]`` (``--json`` would become ``--as-json``). Python 3.8 is
    JetPack 5's, so they are evaluated here once, with typing_extensions (which keeps ``Annotated``).
    """
    callbacks = [command.callback for command in group.registered_commands]
    if group.registered_callback is not None:
        callbacks.append(group.registered_callback.callback)
    for callback in callbacks:
        if callback is not None:
            callback.__annotations__ = get_type_hints(callback, include_extras=True)
    for sub in group.registered_groups:
        resolve_annotations(sub.typer_instance)


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


resolve_annotations(app)


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


def missing_package_message(e: ModuleNotFoundError) -> Optional[str]:
    """What to install when a command imports a package that the deployment install leaves out.

    None for any other missing module (a real fault, shown as such).
    """
    top = (e.name or "").split(".")[0]
    if top in TRAINING_PACKAGES:
        if sys.version_info < (3, 10):
            return (f"this command belongs to the training side ({top} is not installed), which needs Python 3.10 "
                    f"or newer (this is {sys.version_info.major}.{sys.version_info.minor}): train and export on a "
                    "workstation with pip install 'dgnet-edge[train]' and copy the export folder here")
        return f"this command needs the training side ({top} is not installed): pip install 'dgnet-edge[train]'"
    if top == "trackeval":
        return ("eval-tracks needs TrackEval, left out on a Jetson (it requires a pip OpenCV that would shadow "
                "JetPack's): pip install --no-deps 'trackeval>=1.3', or score the tracks on another machine")
    return None


def main(argv: Optional[List[str]] = None) -> None:
    """Console-script entry point."""
    try:
        with terminate_as_interrupt():
            app(args=argv, prog_name="dgnet-edge")
    except (DgnetEdgeError, ModuleNotFoundError) as e:
        if os.environ.get("DGNET_EDGE_DEBUG"):
            raise
        if isinstance(e, ModuleNotFoundError):
            message = missing_package_message(e)
            if message is None:
                raise
            e = DgnetEdgeError(message)
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
