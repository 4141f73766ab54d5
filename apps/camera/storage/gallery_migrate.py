"""``dgnet-edge gallery migrate SRC DST``: every row of one gallery into another, SQLite file or
PostgreSQL database, either way round.

Copied as they are, ids included: identities (names, times), templates (features, thumbnails, kinds,
sources), sightings, the structure bank, and the PostgreSQL gallery's record of merges (a SQLite
destination keeps it in a ``merges`` table of its own, read back by a later migration). The
destination must be empty: a gallery is never mixed into another.

Nothing half-written is left: a SQLite destination is written to a temporary file beside it and
renamed into place; a PostgreSQL one is filled in one transaction. The source is only read, within
one snapshot.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from dgnet_edge.apps.camera.storage.gallery import Gallery
from dgnet_edge.apps.camera.storage.gallery_base import GalleryBase, GalleryError
from dgnet_edge.apps.camera.storage.open_gallery import GallerySpec, is_database_url, open_gallery, redact
from dgnet_edge.errors import UsageError
from dgnet_edge.paths import prepare_output_file

COLUMNS = {
    "identities": ("id", "name", "created", "updated"),
    "templates": ("id", "identity", "feature", "thumbnail", "camera", "time", "kind", "source", "enrolment"),
    "sightings": ("id", "identity", "camera", "track", "first", "last"),
    "structures": ("id", "camera", "track", "time", "shape", "code", "thumbnail"),
    "merges": ("id", "keep", "other", "time", "reason"),
}
SQLITE_MERGES = """CREATE TABLE IF NOT EXISTS merges (id INTEGER PRIMARY KEY, keep INTEGER NOT NULL,
    other INTEGER NOT NULL, time REAL NOT NULL, reason TEXT NOT NULL)"""


def _has_table(gallery: GalleryBase, table: str) -> bool:
    """False only for a SQLite file without a ``merges`` table (no merge was ever carried into it)."""
    if not isinstance(gallery, Gallery):
        return True
    return gallery.connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                      (table,)).fetchone() is not None


def read_rows(gallery: GalleryBase, table: str) -> list[tuple]:
    """Every row of ``table`` in id order, in :data:`COLUMNS` order (blobs as bytes)."""
    if not _has_table(gallery, table):
        return []
    rows = gallery.connection.execute(f"SELECT {', '.join(COLUMNS[table])} FROM {table} ORDER BY id").fetchall()
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]


def _count_rows(gallery: GalleryBase) -> dict[str, int]:
    return {table: gallery.connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in COLUMNS if _has_table(gallery, table)}


def _write_sqlite(gallery: Gallery, rows: dict[str, list[tuple]]) -> None:
    db = gallery.connection
    with gallery.transaction():
        db.execute(SQLITE_MERGES)
        for table, columns in COLUMNS.items():
            marks = ", ".join("?" * len(columns))
            data = rows[table]
            if table == "templates":
                data = [(*r[:8], int(r[8])) for r in data]
            db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", data)


def _write_postgres(gallery: Any, rows: dict[str, list[tuple]]) -> None:
    from dgnet_edge.apps.camera.storage.gallery_postgres import SCHEMA, SCHEMA_LOCK

    db = gallery.connection
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        _refuse_non_empty(gallery)
        for table, columns in COLUMNS.items():
            data = rows[table]
            names = list(columns)
            if table == "templates":
                data = [(*r[:8], bool(r[8])) for r in data]
                if gallery.vector:
                    names.append("embedding")
                    data = [(*r, "[" + ",".join(f"{v:.7g}" for v in np.frombuffer(r[2], np.float32).tolist()) + "]")
                            for r in data]
            marks = ", ".join(["%s"] * len(columns) + (["%s::vector"] if len(names) > len(columns) else []))
            with db.cursor() as cur:
                cur.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", data)
            db.execute(f"SELECT setval(pg_get_serial_sequence(%s, 'id'), (SELECT COALESCE(max(id), 0) + 1 FROM {table}), "
                       "false)", (f"{SCHEMA}.{table}",))


def _refuse_non_empty(gallery: GalleryBase) -> None:
    held = {table: n for table, n in _count_rows(gallery).items() if n}
    if held:
        what = ", ".join(f"{n} {table}" for table, n in held.items())
        raise GalleryError(f"{gallery.location} is not empty ({what}): migrate into a new file or an empty database")


def migrate(source: GallerySpec, destination: GallerySpec) -> dict[str, int]:
    """Copy gallery ``source`` into ``destination`` (made, or empty); rows copied per table."""
    same = str(source) == str(destination) if is_database_url(source) else \
        not is_database_url(destination) and Path(source).resolve() == Path(destination).resolve()
    if same:
        raise UsageError(f"gallery migrate: source and destination are both {redact(str(source))}: give another destination")
    with open_gallery(source, read_only=True) as src:
        with src.snapshot():
            rows = {table: read_rows(src, table) for table in COLUMNS}
        feature_dim = src.feature_dim
    if is_database_url(destination):
        try:
            dst = open_gallery(destination)  # a gallery there already: it must be empty
        except GalleryError:
            dst = open_gallery(destination, feature_dim)  # none yet (or unreachable: the same error again)
        with dst:
            _refuse_non_empty(dst)
            if dst.feature_dim != feature_dim:
                raise GalleryError(f"{dst.location} is an empty gallery of {dst.feature_dim}-d features, the source's "
                                   f"are {feature_dim}-d: migrate into another database")
            _write_postgres(dst, rows)
    else:
        _write_file(Path(destination), feature_dim, rows)
    return {table: len(data) for table, data in rows.items()}


def _write_file(path: Path, feature_dim: int, rows: dict[str, list[tuple]]) -> None:
    if path.exists():
        with Gallery(path, read_only=True) as existing:
            _refuse_non_empty(existing)
    prepare_output_file(path, "gallery")
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.unlink(name)  # Gallery makes the file itself
    staging = Path(name)
    try:
        with Gallery(staging, feature_dim) as dst:
            _write_sqlite(dst, rows)
        for suffix in ("-wal", "-shm"):
            Path(f"{staging}{suffix}").unlink(missing_ok=True)
        os.replace(staging, path)
    except BaseException:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{staging}{suffix}").unlink(missing_ok=True)
        raise
