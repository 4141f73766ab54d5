"""Staging folders: where a folder output (an export, a synthetic world) is assembled before it
is renamed into place.

A staging folder sits beside its target as ``.TARGET.staging-PID-XXXX``, PID being the process
that writes it. A run that is killed (``kill -9``, a lost machine) cannot clean up after itself,
so the next run for the same target removes the staging folders of processes that are gone.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

log = logging.getLogger(__name__)


def _prefix(target: Path) -> str:
    return f".{target.name}.staging-"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_staging(target: str | Path) -> list[Path]:
    """Remove the staging folders of ``target`` whose writing process no longer runs; returns them."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    pattern = re.compile(re.escape(_prefix(target)) + r"(\d+)-")
    removed = []
    for path in sorted(target.parent.iterdir()):
        m = pattern.match(path.name)
        if m and path.is_dir() and int(m.group(1)) != os.getpid() and not process_alive(int(m.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        log.info("removed %d staging folder(s) left by an interrupted run: %s", len(removed), ", ".join(p.name for p in removed))
    return removed


def make_staging_dir(target: str | Path) -> Path:
    """A new empty staging folder beside ``target`` (stale ones of ``target`` removed first; the
    folder of ``target`` must exist)."""
    target = Path(target)
    remove_stale_staging(target)
    path = Path(tempfile.mkdtemp(prefix=f"{_prefix(target)}{os.getpid()}-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o777 & ~umask)  # mkdtemp makes 0700 folders; the renamed output gets the usual permissions
    return path


def move_into_place(staging: str | Path, target: str | Path) -> None:
    """Rename a finished staging folder to ``target``. An empty ``target`` is replaced; a full one
    is renamed aside first and removed once the new one is in place, so ``target`` is never
    missing or half-written for long."""
    staging, target = Path(staging), Path(target)
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    if not target.exists():
        staging.rename(target)
        return
    old = target.with_name(f"{target.name}.old-{uuid.uuid4().hex[:8]}")
    target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
