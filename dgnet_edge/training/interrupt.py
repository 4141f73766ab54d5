"""Stopping a training run at a step boundary on Ctrl-C (or a time limit), so it can save first."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class StopFlag:
    """Set by the first Ctrl-C or when ``max_seconds`` have passed; a second Ctrl-C aborts at once."""

    def __init__(self, max_seconds: float | None = None):
        self.deadline = None if max_seconds is None else time.monotonic() + max_seconds
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        self.reason = self.reason or reason

    @property
    def stop(self) -> bool:
        if self.reason is None and self.deadline is not None and time.monotonic() >= self.deadline:
            self.reason = "time limit"
        return self.reason is not None


@contextmanager
def stop_on_interrupt(max_seconds: float | None = None) -> Iterator[StopFlag]:
    flag = StopFlag(max_seconds)
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: object) -> None:
        if flag.reason == "interrupted":
            raise KeyboardInterrupt
        flag.request("interrupted")
        log.warning("interrupted: saving a checkpoint after this step (Ctrl-C again to abort without saving)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
