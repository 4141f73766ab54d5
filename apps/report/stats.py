"""Latency statistics and the timing loop.

Percentiles interpolate linearly between the two nearest order statistics (Hyndman & Fan type 7,
numpy's default): for ``n`` sorted values ``x_0..x_{n-1}`` the q-th percentile sits at position
``(n - 1) * q / 100``. With 30 runs, p99 lies between the two slowest runs: read it as "about the
worst run", not as a tail estimate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values`` by linear interpolation (type 7)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in 0..100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds per call of ``batch`` images over ``runs`` timed calls."""

    batch: int
    runs: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float

    @property
    def images_per_s(self) -> float:
        """Throughput at the median: batch / p50."""
        return 1000.0 * self.batch / self.p50_ms if self.p50_ms > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "images_per_s": self.images_per_s}


def summarise(seconds: Sequence[float], batch: int) -> LatencyStats:
    """Statistics of per-call times given in seconds."""
    ms = [1000.0 * s for s in seconds]
    return LatencyStats(
        batch=batch,
        runs=len(ms),
        p50_ms=percentile(ms, 50),
        p95_ms=percentile(ms, 95),
        p99_ms=percentile(ms, 99),
        mean_ms=sum(ms) / len(ms),
        min_ms=min(ms),
        max_ms=max(ms),
    )


@dataclass
class Timings:
    """Seconds per timed call: the whole call, and the backend's own time when it reports one."""

    call: list[float]
    backend: list[float]


def time_calls(
    call: Callable[[], object],
    runs: int,
    warmup: int = 3,
    backend_time: Callable[[], float | None] | None = None,
    budget_s: float | None = None,
    min_runs: int = 3,
) -> Timings:
    """Call ``call`` ``warmup`` times untimed, then ``runs`` times timed.

    ``backend_time`` is read after each timed call (e.g. ``lambda: runner.inference_time``). With
    ``budget_s``, timing stops early once ``min_runs`` runs are done and the budget is spent (for
    slow parts such as the generator); the number of runs is recorded with the statistics.
    """
    for _ in range(warmup):
        call()
    timings = Timings([], [])
    started = time.perf_counter()
    for i in range(runs):
        start = time.perf_counter()
        call()
        timings.call.append(time.perf_counter() - start)
        if backend_time is not None:
            value = backend_time()
            if value is not None:
                timings.backend.append(value)
        if budget_s is not None and i + 1 >= min_runs and time.perf_counter() - started > budget_s:
            break
    return timings
