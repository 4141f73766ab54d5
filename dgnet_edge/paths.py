"""Checks on the paths a command reads and writes, made before any work starts.

A command that would fail only at the end of a long run (a folder whose parent is a file, a
read-only disk, a file given where a folder is expected) fails here first, with one line that
names the path.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from dgnet_edge.errors import InputPathError, OutputPathError


def _file_ancestor(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` (or ``path`` itself) that is not a folder."""
    for part in [*reversed(path.parents), path]:
        if part.exists() and not part.is_dir():
            return part
    return None


def _reason(e: OSError) -> str:
    if e.errno == errno.EROFS:
        return "read-only file system"
    if e.errno == errno.EPERM:
        return "operation not permitted; is a folder on the path immutable?"
    return (e.strerror or str(e)).lower()


def _probe_writable(folder: Path, what: str, path: Path) -> None:
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
    except OSError as e:
        raise OutputPathError(f"{what} {path} cannot be written ({_reason(e)}): choose another path") from None
    os.close(fd)
    os.unlink(probe)


def _refuse_file_on_path(folder: Path, what: str, path: Path) -> None:
    """OutputPathError if ``folder`` (the output ``path`` or the folder it goes in) or an ancestor is a file."""
    blocker = _file_ancestor(folder)
    if blocker is not None:
        name = "is a file" if blocker == path else f"has a file in its path: {blocker}"
        raise OutputPathError(f"{what} {path} {name}, not a folder: choose another path")


def unwritable_reason(path: str | Path) -> str | None:
    """Why the existing file or folder ``path`` cannot be written (a read-only file system, no
    permission...), or None when it can; nothing in it is changed."""
    path = Path(path)
    try:
        if path.is_dir():
            fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=path)
            os.close(fd)
            os.unlink(probe)
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError as e:
        return _reason(e)
    return None


def refuse_overwriting_inputs(output: str | Path, inputs: Iterable[str | Path | None],
                              what: str = "output") -> None:
    """OutputPathError when writing ``output`` would destroy one of ``inputs``: ``output`` is that
    input, or a folder holding it (a folder output is replaced as a whole). Paths are compared once
    symbolic links are resolved; ``None`` inputs are skipped."""
    output = Path(output)
    target = output.resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        same = source == target or (source.exists() and target.exists() and os.path.samefile(source, target))
        if same or target in source.parents:
            how = "is" if same else "holds"
            raise OutputPathError(f"{what} {output} {how} the input {given}: writing there would destroy it; "
                                  "choose another path")


def _make_dir(folder: Path, what: str, path: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputPathError(f"{what} {path} cannot be created ({_reason(e)}): choose another path") from None


def prepare_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create folder ``path`` (and its parents) and check that files can be written in it."""
    path = Path(path)
    _refuse_file_on_path(path, what, path)
    _make_dir(path, what, path)
    _probe_writable(path, what, path)
    return path


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Check that folder ``path`` can be written without creating it: no file on its path, its
    parent created and writable (an atomic write assembles the folder in a sibling and renames
    it into place) and, if it exists, the folder itself writable. A run that fails before
    writing then leaves nothing behind."""
    path = Path(path)
    _refuse_file_on_path(path, what, path)
    _make_dir(path.parent, what, path)
    _probe_writable(path.parent, what, path)
    if path.is_dir():
        _probe_writable(path, what, path)
    return path


def prepare_output_file(path: str | Path, what: str = "output file") -> Path:
    """Check that file ``path`` can be written (its folder is created); ``path`` may exist as a file."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{what} {path} is a folder, not a file: give a file name")
    _refuse_file_on_path(path.parent, what, path)
    _make_dir(path.parent, what, path)
    _probe_writable(path.parent, what, path)
    return path


def require_dir(path: str | Path, what: str = "folder") -> Path:
    """``path`` must exist and be a folder."""
    path = Path(path)
    if not path.exists():
        raise InputPathError(f"{what} {path} does not exist")
    if not path.is_dir():
        raise InputPathError(f"{what} {path} is a file, not a folder")
    return path


def require_file(path: str | Path, what: str = "file") -> Path:
    """``path`` must exist and be a regular file."""
    path = Path(path)
    if not path.exists():
        raise InputPathError(f"{what} {path} does not exist")
    if path.is_dir():
        raise InputPathError(f"{what} {path} is a folder, not a file")
    return path
