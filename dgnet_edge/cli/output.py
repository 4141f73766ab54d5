"""Where the CLI writes: results to stdout, progress, logs and errors to stderr."""

from __future__ import annotations

import json
import logging
from typing import Any

from rich.console import Console
from rich.logging import RichHandler

out = Console()
err = Console(stderr=True)


def print_json(data: Any) -> None:
    out.print_json(json.dumps(data))


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr through rich; called once by the root command."""
    root = logging.getLogger()
    if any(isinstance(h, RichHandler) for h in root.handlers):
        return
    handler = RichHandler(console=err, show_path=False, show_time=False)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
