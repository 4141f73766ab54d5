"""Resident memory of this process: now, and the peak so far.

The peak is the kernel's high-water mark of this process's address space (Linux: ``VmHWM`` in
/proc/self/status). ``getrusage``'s ``ru_maxrss`` is only the fallback: Linux carries it across
``execve``, so a worker started by a big parent would report at least the parent's size.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_bytes() -> int | None:
    """Peak resident set size of this process since it started (None where unsupported)."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def current_rss_bytes() -> int | None:
    """Resident set size now (Linux), else None."""
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else None
