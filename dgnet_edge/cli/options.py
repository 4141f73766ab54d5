"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[
    str,
    typer.Option("--config", "-c", help="YAML config file, or a built-in config name (synth_small, teacher_market, ...)."),
]
OverridesOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config value, e.g. --set id_train.epochs=3 (repeatable)."),
]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (default: the config's output_dir).")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda | cuda:N (default: the config's).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")]
