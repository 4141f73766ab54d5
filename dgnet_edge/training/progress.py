"""A training progress bar on stderr (rich), silent when disabled (other ranks, tests)."""

from __future__ import annotations

from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from dgnet_edge.cli.output import err


class TrainProgress:
    def __init__(self, total: int, completed: int = 0, enabled: bool = True):
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[stats]}"),
            console=err,
            disable=not enabled,
        )
        self._task = self._progress.add_task("train", total=total, completed=completed, stats="")

    def __enter__(self) -> TrainProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)

    def update(self, step: int, stats: dict[str, float]) -> None:
        text = " ".join(f"{k} {v:.3g}" for k, v in stats.items())
        self._progress.update(self._task, completed=step, stats=text)

    def note(self, text: str) -> None:
        self._progress.update(self._task, stats=text)
