"""Write batches that wait for the gallery database, kept in a local SQLite file.

While a PostgreSQL gallery is away, the camera app goes on from memory and queues each transaction's
writes as one batch (gallery_postgres). Kept in a file rather than in memory, the batches outlive the
process: a device killed or switched off during an outage replays them the next time it opens the
gallery. Each batch keeps the uuid it is recorded under in the database, so a batch that did commit
before the loss is skipped at replay, never written twice.

A spool belongs to one connection of one process: an exclusive lock says so, and a second process
that opens the same file gets an error instead of replaying another's writes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from dgnet_edge.apps.camera.storage.gallery_base import GalleryError
from dgnet_edge.apps.camera.storage.open_gallery import redact
from dgnet_edge.cache import cache_root

try:
    import fcntl
except ImportError:  # not POSIX: no lock, one process per device is then the user's to keep
    fcntl = None

Batch = tuple  # (uuid, [write, ...]); a write is a tuple of ints, floats, text, bytes and lists of them


def spool_folder(root: Optional[str], url: str, device: str, cameras: Sequence[str]) -> Path:
    """Where the app that runs ``cameras`` on ``device`` keeps its write spools for one database:
    ``ROOT/DEVICE-HASH`` (ROOT None: ``<cache>/spool``; HASH names the database URL without its
    password and the cameras, so two processes of one device, each with its own cameras, do not meet)."""
    key = "\n".join([redact(url), *sorted(cameras)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return (Path(root).expanduser() if root else cache_root() / "spool") / f"{device}-{digest}"


def _encode(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (tuple, list)):
        return [_encode(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise TypeError(f"a gallery write cannot hold a {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value


class WriteSpool:
    """Batches in the order they were queued: :meth:`append`, :meth:`first`, :meth:`pop`.

    Args:
        path: the spool file (its folder is made); None keeps the batches in memory only.
    """

    def __init__(self, path: Optional[Path] = None):
        self.path = path
        self._lock_file = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._lock_file = open(path.with_name(path.name + ".lock"), "a")
            except OSError as e:
                raise GalleryError(f"write spool {path}: cannot write there ({e.strerror or e}): give the camera "
                                   "config's gallery.spool a folder this user may write") from None
            if fcntl is not None:
                try:
                    fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    self._lock_file.close()
                    raise GalleryError(f"write spool {path} is in use by another process: give each device "
                                       "its own name (--device) or spool folder") from None
        try:
            self._db = sqlite3.connect(":memory:" if path is None else str(path), isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")  # a queued batch is on disk before the frame goes on
            self._db.execute("CREATE TABLE IF NOT EXISTS batches (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                             "id TEXT NOT NULL UNIQUE, writes TEXT NOT NULL)")
            self._count = self._db.execute("SELECT count(*) FROM batches").fetchone()[0]
        except sqlite3.DatabaseError as e:
            self.close()
            raise GalleryError(f"write spool {path}: {e}") from None

    def __len__(self) -> int:
        return self._count

    def append(self, batch_id: str, writes: list[tuple]) -> None:
        self._db.execute("INSERT INTO batches (id, writes) VALUES (?, ?)", (batch_id, json.dumps(_encode(writes))))
        self._count += 1

    def first(self) -> Optional[Batch]:
        """The oldest batch, or None."""
        row = self._db.execute("SELECT id, writes FROM batches ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else (row[0], list(_decode(json.loads(row[1]))))

    def pop(self, batch_id: str) -> None:
        """Forget a batch: written, or refused by the database."""
        self._count -= self._db.execute("DELETE FROM batches WHERE id = ?", (batch_id,)).rowcount

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
            self._db = None
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None
