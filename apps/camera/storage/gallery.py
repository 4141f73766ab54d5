"""The persistent gallery: identities, their templates and where they were seen, in one SQLite file
(one box; :mod:`.gallery_postgres` is the backend for many devices, behind the same
:class:`~.gallery_base.GalleryBase` interface).

Schema (version 2; ``meta`` holds ``format``, ``version`` and ``feature_dim``)::

    identities (id INTEGER PRIMARY KEY, name TEXT, created REAL, updated REAL)
    templates  (id, identity -> identities ON DELETE CASCADE, feature BLOB (float32, feature_dim,
                L2-normalised), thumbnail BLOB (JPEG of the source crop, or NULL), camera TEXT,
                time REAL, kind 'real'|'synthetic', source TEXT, enrolment INTEGER 0|1)
    sightings  (id, identity -> identities ON DELETE CASCADE, camera TEXT, track INTEGER,
                first REAL, last REAL)
    structures (id, camera TEXT, track INTEGER, time REAL, shape TEXT 'C,H,W', code BLOB (float16),
                thumbnail BLOB (JPEG))      -- the structure bank (structure_bank.py)

``source`` says where a template came from: ``photo:<file>`` (``gallery enrol``), ``track:<camera>:<id>``
(the camera app), ``synthetic:<camera>:<structure>`` for a view rendered in a banked structure.
Version 2 only added the ``structures`` table: a version-1 file is migrated in place, in one
transaction, when it is opened.

Durability: the file is in WAL mode with ``synchronous=FULL``. Every change is one transaction
(``BEGIN IMMEDIATE`` ... ``COMMIT``), so a process killed at any point leaves the file as of its last
commit. WAL with ``NORMAL`` already survives a killed process (the WAL file is in the OS page cache)
but may lose the last commits to a power cut; ``FULL`` syncs the WAL at each commit, so that a
committed enrolment survives that too. The price is one fsync per commit (about 7 ms against
0.3 ms here); the camera app groups each frame's writes in one :meth:`Gallery.transaction`, and
writes only when a track takes an identity, every few seconds per track for templates and
sightings, so most frames commit nothing.

Times: identities' ``created``/``updated`` are the wall clock; template and sighting times are the
source's clock (a camera's frame times). The in-memory matching cache is reloaded when another
connection (say, ``dgnet-edge gallery rename`` while the app runs) commits.

Faults: a file that is damaged or not ours (a ``meta`` row or a table missing, a feature of the
wrong size), read-only, or whose write lock another program holds for :data:`BUSY_TIMEOUT_S` is a
one-line :class:`GalleryError` saying which. A gallery opened ``read_only`` (listing, exporting)
needs no write access: it works on a read-only file or file system.
"""

from __future__ import annotations

import sqlite3
import time as clock
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np

from dgnet_edge.apps.camera.defaults import SYNTHETIC_WEIGHT  # noqa: F401 (callers read the default weight here)
from dgnet_edge.apps.camera.storage.gallery_base import (  # noqa: F401 (the names the gallery's users import from here)
    FORMAT, KINDS, MAX_NAME, THUMBNAIL_HEIGHT, GalleryBase, GalleryError, Identity, Sighting, Template, check_synthetic_weight,
    check_name, encode_thumbnail, least_diverse,
)
from dgnet_edge.errors import InputPathError
from dgnet_edge.paths import unwritable_reason

VERSION = 2
SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 10.0  # how long a write waits for another program to release the write lock
SQLITE_MAX_INT = 2**63 - 1  # no row id lies beyond

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE identities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE templates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identity INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    feature BLOB NOT NULL,
    thumbnail BLOB,
    camera TEXT,
    time REAL NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('real', 'synthetic')),
    source TEXT NOT NULL,
    enrolment INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX templates_identity ON templates(identity);
CREATE TABLE sightings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identity INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    camera TEXT NOT NULL,
    track INTEGER NOT NULL,
    first REAL NOT NULL,
    last REAL NOT NULL
);
CREATE INDEX sightings_identity ON sightings(identity, last);
"""

STRUCTURES_SCHEMA = """
CREATE TABLE structures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    camera TEXT NOT NULL,
    track INTEGER,
    time REAL NOT NULL,
    shape TEXT NOT NULL,
    code BLOB NOT NULL,
    thumbnail BLOB
);
CREATE INDEX structures_camera ON structures(camera, time);
"""
MIGRATIONS = {1: STRUCTURES_SCHEMA}  # from version k to k + 1


def _check_file(path: Path) -> None:
    """A clear error for a file that cannot be a gallery, before SQLite gives a vague one."""
    if path.is_dir():
        raise InputPathError(f"gallery {path} is a folder, not a file: give a file name such as gallery.db")
    if not path.is_file():
        raise InputPathError(f"gallery {path} is not a regular file: give a file name such as gallery.db")
    if path.stat().st_size == 0:
        return  # SQLite treats an empty file as an empty database
    with open(path, "rb") as f:
        header = f.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise GalleryError(f"{path} is not a gallery (not an SQLite file): give another --gallery path")


def _connect(path: Path, read_only: bool) -> sqlite3.Connection:
    if not read_only:
        return sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
    uri = "file:" + urllib.parse.quote(str(path.resolve()))
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError as e:
        db.close()
        if "unable to open" not in str(e) or Path(f"{path}-wal").exists():
            raise
    # A WAL-mode file in a folder that cannot be written: SQLite cannot make the shared-memory file
    # readers need. With no -wal file there is nothing uncommitted to miss, and no writer can start.
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)


@lru_cache(maxsize=None)
def _schema_columns() -> dict[str, tuple[str, ...]]:
    """Each table of the current schema and its columns."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(SCHEMA + STRUCTURES_SCHEMA)
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "AND name NOT LIKE 'sqlite_%'")]
        return {t: tuple(r[1] for r in db.execute(f"PRAGMA table_info({t})")) for t in tables}
    finally:
        db.close()


class Gallery(GalleryBase):
    """The gallery in an SQLite file: one object per thread or process (an SQLite connection is not
    shared between threads); several may have the same file open, and each sees the others' commits.

    Args:
        path: the gallery file; created when missing if ``feature_dim`` is given.
        feature_dim: feature size the caller works with; must match the file's (None: the file's).
        read_only: open for reading only (the file may be read-only); writes then fail.
        max_templates: templates kept per identity and kind. When one more arrives, the least
            diverse one (highest cosine to its nearest other template) is dropped, never an
            enrolment template: the set then spans as much of the person's appearance as it can,
            and since scores are a max over templates, a near-duplicate adds nothing.
        synthetic_weight: the synthetic views' share in an identity's prototype
            (:func:`~.gallery_base.scoring_rows`); None: :data:`SYNTHETIC_WEIGHT`.
        synchronous: ``FULL`` (commits survive a power cut) or ``NORMAL`` (survive a killed process).
    """

    def __init__(
        self,
        path: str | Path,
        feature_dim: int | None = None,
        *,
        read_only: bool = False,
        max_templates: int = 16,
        synthetic_weight: float | None = None,
        synchronous: str = "FULL",
    ):
        if max_templates < 1:
            raise ValueError(f"max_templates must be >= 1, got {max_templates}")
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, got {synchronous!r}")
        self.path = Path(path)
        self.spec = self.path
        self.location = str(self.path)
        self.max_templates = max_templates
        self.synthetic_weight = check_synthetic_weight(synthetic_weight)
        self.read_only = read_only
        self._templates: dict[int, dict[int, tuple[str, np.ndarray]]] | None = None  # loaded once open
        self._rows = {}
        exists = self.path.exists()
        if exists:
            _check_file(self.path)
        elif feature_dim is None or read_only:
            raise InputPathError(f"gallery {self.path} does not exist: enrol someone first or give another --gallery")
        if exists and not read_only:
            reason = unwritable_reason(self.path) or unwritable_reason(self.path.parent)
            if reason is not None:
                raise GalleryError(self._read_only_message(reason))
        try:
            self._db = _connect(self.path, read_only)
        except sqlite3.DatabaseError as e:
            raise self._error(e) from None
        try:
            self._db.execute("PRAGMA foreign_keys=ON")
            self.feature_dim = self._open_schema(feature_dim)  # before WAL: leave a file that is not ours as it was
            if not read_only:
                if self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                    raise GalleryError(f"{self.path}: cannot switch the gallery to WAL mode (a network file system?)")
                self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._data_version = self._read_data_version()
            self._load_cache()
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise self._error(e) from None
        except BaseException:
            self._db.close()
            raise

    # -- faults ------------------------------------------------------------------------------------
    def _read_only_message(self, reason: str) -> str:
        return (f"gallery {self.path} is read-only ({reason}): `dgnet-edge gallery list`, `show` and `export` "
                "can read it; make it writable to change it")

    def unreadable(self, what: str) -> GalleryError:
        return GalleryError(f"{self.path} is not a readable gallery ({what}): give another --gallery path")

    def _fault(self, e: sqlite3.Error) -> GalleryError | None:
        """The one-line error for a lock held too long or a read-only file; None for anything else."""
        text = str(e).lower()
        if "locked" in text or "busy" in text:
            return GalleryError(f"gallery {self.path} is locked: another program has held its write lock for "
                                f"{BUSY_TIMEOUT_S:g} s; close it or let it finish, then try again")
        if "readonly" in text or "read-only" in text:
            return GalleryError(self._read_only_message("SQLite cannot write it"))
        return None

    def _error(self, e: sqlite3.Error) -> GalleryError:
        """While opening, anything not a lock or a read-only file is the file's fault."""
        return self._fault(e) or self.unreadable(str(e))

    # -- schema ------------------------------------------------------------------------------------
    def _open_schema(self, feature_dim: int | None) -> int:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            if feature_dim is None:
                raise GalleryError(f"{self.path} is an empty database, not a gallery: enrol someone to create one")
            with self._write() as db:
                for statement in (SCHEMA + STRUCTURES_SCHEMA).split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.executemany("INSERT INTO meta VALUES (?, ?)",
                                     [("format", FORMAT), ("version", str(VERSION)), ("feature_dim", str(feature_dim))])
            return feature_dim
        if "meta" not in tables:
            raise GalleryError(f"{self.path} is an SQLite database but not a gallery: give another --gallery path")
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("format") != FORMAT:
            raise GalleryError(f"{self.path} is an SQLite database but not a gallery: give another --gallery path")
        if meta.get("version") in {str(v) for v in MIGRATIONS}:
            if not self.read_only:  # read-only, an older file is read as it is
                self._migrate(int(meta["version"]))
        elif meta.get("version") != str(VERSION):
            raise GalleryError(f"{self.path} is a gallery of version {meta.get('version')}; this dgnet-edge reads "
                               f"version {VERSION}: use the dgnet-edge that wrote it")
        self._check_tables()
        if "feature_dim" not in meta:
            raise self.unreadable("its meta table has no feature_dim")
        try:
            stored = int(str(meta["feature_dim"]))
        except ValueError:
            stored = 0
        if stored < 1:
            raise self.unreadable(f"feature_dim {meta['feature_dim']!r} in its meta table is not a positive integer")
        if feature_dim is not None and feature_dim != stored:
            raise GalleryError(f"{self.path} holds {stored}-d features but the embedder gives {feature_dim}-d: "
                               "use the export it was made with, or another --gallery")
        return stored

    def _check_tables(self) -> None:
        """Every table and column of the schema is there (the structures table from version 2 on)."""
        present = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, columns in _schema_columns().items():
            if table == "structures" and table not in present and self.read_only:
                continue  # a version-1 file read as it is
            if table not in present:
                raise self.unreadable(f"it has no {table} table")
            missing = set(columns) - {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if missing:
                raise self.unreadable(f"its {table} table lacks the column(s) {', '.join(sorted(missing))}")

    def _migrate(self, version: int) -> None:
        """Bring a file of an older version up to :data:`VERSION` in one transaction."""
        with self._write() as db:
            if db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0] != str(version):
                return  # another process migrated it while we waited for the write lock
            for step in range(version, VERSION):
                for statement in MIGRATIONS[step].split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute("UPDATE meta SET value = ? WHERE key = 'version'", (str(VERSION),))

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection, for copying the file's rows (``gallery migrate``); from this
        object's thread only, writes inside :meth:`transaction`."""
        return self._db

    def _read_data_version(self) -> int:
        return self._db.execute("PRAGMA data_version").fetchone()[0]

    @contextmanager
    def transaction(self) -> Iterator[Gallery]:
        """Writes in the block commit together (one fsync) or not at all.

        Every write method is a transaction of its own; inside this block it becomes a savepoint, so
        a write that fails is undone alone and the block may go on.
        """
        with self._write():
            yield self

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        nested = self._db.in_transaction
        try:
            self._db.execute("SAVEPOINT write" if nested else "BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            fault = self._fault(e)
            if fault is None:
                raise
            raise fault from None
        try:
            yield self._db
            self._db.execute("RELEASE write" if nested else "COMMIT")
        except BaseException as e:
            if nested:
                self._db.execute("ROLLBACK TO write")
                self._db.execute("RELEASE write")
            elif self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if self._templates is not None:  # None while the file is being opened (a migration)
                self._load_cache()  # the block may have changed the cache before it failed
            fault = self._fault(e) if isinstance(e, sqlite3.OperationalError) else None
            if fault is not None:
                raise fault from None
            raise

    # -- template matrix in memory -----------------------------------------------------------------
    def _load_cache(self) -> None:
        rows = self._db.execute("SELECT id, identity, kind, feature FROM templates ORDER BY identity, id").fetchall()
        self._templates = {}
        size = 4 * self.feature_dim
        for template_id, identity, kind, blob in rows:
            if not isinstance(blob, bytes) or len(blob) != size:
                found = f"{len(blob)} bytes" if isinstance(blob, bytes) else f"a {type(blob).__name__}"
                raise self.unreadable(f"template {template_id} holds a feature of {found}, not {self.feature_dim} "
                                       f"float32 ({size} bytes)")
            self._templates.setdefault(identity, {})[template_id] = (kind, np.frombuffer(blob, np.float32))
        self._names: dict[int, str | None] = dict(self._db.execute("SELECT id, name FROM identities").fetchall())
        self._matrix = None

    def _refresh(self) -> None:
        """Reload the cache when another connection committed since we last looked."""
        version = self._read_data_version()
        if version != self._data_version:
            self._data_version = version
            self._load_cache()

    # -- writes ------------------------------------------------------------------------------------
    def enrol(
        self,
        feature: np.ndarray,
        thumbnail: np.ndarray | None = None,
        *,
        name: str | None = None,
        camera: str | None = None,
        time: float | None = None,
        source: str = "photo",
        unless_matches: float | None = None,
    ) -> int:
        """A new identity with one real enrolment template; see :meth:`GalleryBase.enrol`. With
        ``unless_matches``, the feature is matched again under the write lock, after the commits of
        other connections have been read, against the identities they added."""
        if name is not None:
            check_name(name)
        feature = self._check_features(feature)[0]
        jpeg = None if thumbnail is None else encode_thumbnail(thumbnail)
        now = clock.time()
        known = set(self._names)
        with self._write() as db:
            if unless_matches is not None:
                found = self._best_new_identity(feature, unless_matches, known)
                if found is not None:
                    self.add_template(found, feature, thumbnail, camera=camera, time=time, source=source)
                    return found
            identity = db.execute("INSERT INTO identities (name, created, updated) VALUES (?, ?, ?)",
                                  (name, now, now)).lastrowid
            self._insert_template(identity, feature, jpeg, camera, now if time is None else time, "real", source,
                                  enrolment=True)
            self._names[identity] = name
        return identity

    def add_template(
        self,
        identity: int,
        feature: np.ndarray,
        thumbnail: np.ndarray | None = None,
        *,
        camera: str | None = None,
        time: float | None = None,
        kind: str = "real",
        source: str,
    ) -> int | None:
        if kind not in KINDS:
            raise ValueError(f"template kind must be one of {', '.join(KINDS)}, got {kind!r}")
        feature = self._check_features(feature)[0]
        jpeg = None if thumbnail is None else encode_thumbnail(thumbnail)
        now = clock.time()
        with self._write() as db:
            self._require(identity)
            template = self._insert_template(identity, feature, jpeg, camera, now if time is None else time, kind,
                                             source, enrolment=False)
            dropped = self._prune(identity, kind)
            db.execute("UPDATE identities SET updated = ? WHERE id = ?", (now, identity))
        return None if template in dropped else template

    def _insert_template(self, identity: int, feature: np.ndarray, jpeg: bytes | None, camera: str | None,
                         time: float, kind: str, source: str, *, enrolment: bool) -> int:
        template = self._db.execute(
            "INSERT INTO templates (identity, feature, thumbnail, camera, time, kind, source, enrolment) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (identity, feature.astype(np.float32).tobytes(), jpeg, camera, time, kind, source, int(enrolment)),
        ).lastrowid
        self._templates.setdefault(identity, {})[template] = (kind, feature)
        self._matrix = None
        return template

    def _prune(self, identity: int, kind: str) -> list[int]:
        """Drop the least diverse templates of one kind until at most ``max_templates`` remain."""
        rows = self._db.execute("SELECT id, enrolment FROM templates WHERE identity = ? AND kind = ? ORDER BY id",
                                (identity, kind)).fetchall()
        ids = [r[0] for r in rows]
        if len(ids) <= self.max_templates:
            return []
        feats = np.stack([self._templates[identity][t][1] for t in ids])
        dropped = [ids[row] for row in least_diverse(feats, [bool(r[1]) for r in rows], self.max_templates)]
        self._db.executemany("DELETE FROM templates WHERE id = ?", [(t,) for t in dropped])
        for t in dropped:
            del self._templates[identity][t]
        self._matrix = None
        return dropped

    def rename(self, identity: int, name: str | None) -> None:
        if name is not None:
            check_name(name)
        with self._write() as db:
            self._require(identity)
            db.execute("UPDATE identities SET name = ?, updated = ? WHERE id = ?", (name, clock.time(), identity))
            self._names[identity] = name

    def delete(self, identity: int) -> None:
        with self._write() as db:
            self._require(identity)
            db.execute("DELETE FROM identities WHERE id = ?", (identity,))
            self._templates.pop(identity, None)
            self._names.pop(identity, None)
            self._matrix = None

    def merge(self, keep: int, other: int) -> None:
        if keep == other:
            raise GalleryError(f"cannot merge identity {keep} with itself: give two different ids")
        with self._write() as db:
            kept, gone = self._require(keep), self._require(other)
            for table in ("templates", "sightings"):
                db.execute(f"UPDATE {table} SET identity = ? WHERE identity = ?", (keep, other))
            name = kept[1] if kept[1] is not None else gone[1]
            db.execute("UPDATE identities SET name = ?, created = ?, updated = ? WHERE id = ?",
                       (name, min(kept[2], gone[2]), clock.time(), keep))
            db.execute("DELETE FROM identities WHERE id = ?", (other,))
            self._templates.setdefault(keep, {}).update(self._templates.pop(other, {}))
            self._names[keep] = name
            self._names.pop(other, None)
            self._matrix = None
            for kind in KINDS:
                self._prune(keep, kind)

    def open_sighting(self, identity: int, camera: str, track: int, time: float) -> int:
        with self._write() as db:
            self._require(identity)
            sighting = db.execute("INSERT INTO sightings (identity, camera, track, first, last) VALUES (?, ?, ?, ?, ?)",
                                  (identity, camera, track, time, time)).lastrowid
            db.execute("UPDATE identities SET updated = ? WHERE id = ?", (clock.time(), identity))
        return sighting

    def extend_sightings(self, last_times: dict[int, float]) -> None:
        if not last_times:
            return
        with self._write() as db:
            db.executemany("UPDATE sightings SET last = max(last, ?) WHERE id = ?",
                           [(t, s) for s, t in last_times.items()])

    @contextmanager
    def snapshot(self) -> Iterator[Gallery]:
        self._db.execute("BEGIN")
        try:
            yield self
        finally:
            self._db.execute("COMMIT")

    # -- the structure bank's rows -----------------------------------------------------------------
    def add_structures(self, camera: str, rows: Sequence[tuple[int | None, float, str, bytes, bytes | None]],
                       per_camera: int) -> list[int]:
        with self._write() as db:
            ids = [db.execute("INSERT INTO structures (camera, track, time, shape, code, thumbnail) VALUES (?, ?, ?, ?, ?, ?)",
                              (camera, *row)).lastrowid for row in rows]
            db.execute("DELETE FROM structures WHERE camera = ? AND id NOT IN "
                       "(SELECT id FROM structures WHERE camera = ? ORDER BY time DESC, id DESC LIMIT ?)",
                       (camera, camera, per_camera))
            kept = {r[0] for r in db.execute("SELECT id FROM structures WHERE camera = ?", (camera,))}
        return [i for i in ids if i in kept]

    def structure_counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT camera, count(*) FROM structures GROUP BY camera ORDER BY camera").fetchall())

    def structure_index(self) -> list[tuple[int, str, float, str]]:
        return [tuple(r) for r in self._db.execute("SELECT id, camera, time, shape FROM structures ORDER BY id")]

    def structure(self, structure: int) -> tuple[int | None, str, float, str, bytes] | None:
        row = self._db.execute("SELECT track, camera, time, shape, code FROM structures WHERE id = ?", (structure,)).fetchone()
        return None if row is None else tuple(row)

    def structure_thumbnail(self, structure: int) -> tuple[bool, bytes | None]:
        row = self._db.execute("SELECT thumbnail FROM structures WHERE id = ?", (structure,)).fetchone()
        return (False, None) if row is None else (True, row[0])

    # -- reads -------------------------------------------------------------------------------------
    def _require(self, identity: int) -> tuple:
        row = None
        if abs(identity) <= SQLITE_MAX_INT:  # SQLite cannot even compare with a larger integer
            row = self._db.execute("SELECT id, name, created, updated FROM identities WHERE id = ?",
                                   (identity,)).fetchone()
        if row is None:
            raise GalleryError(f"no identity {identity} in gallery {self.path}: "
                               "`dgnet-edge gallery list` shows the ids")
        return row

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM identities").fetchone()[0]

    def identities(self) -> list[Identity]:
        rows = self._db.execute("SELECT id FROM identities ORDER BY id").fetchall()
        return [self.identity(r[0]) for r in rows]

    def identity(self, identity: int) -> Identity:
        row = self._require(identity)
        counts = dict(self._db.execute("SELECT kind, count(*) FROM templates WHERE identity = ? GROUP BY kind",
                                       (identity,)).fetchall())
        seen = self._db.execute("SELECT camera, max(last) AS t FROM sightings WHERE identity = ? GROUP BY camera "
                                "ORDER BY t DESC", (identity,)).fetchall()
        return Identity(row[0], row[1], row[2], row[3], counts.get("real", 0), counts.get("synthetic", 0),
                        tuple(c for c, _ in seen), seen[0][1] if seen else None)

    def templates(self, identity: int) -> list[Template]:
        self._require(identity)
        rows = self._db.execute("SELECT id, identity, camera, time, kind, source, enrolment, thumbnail IS NOT NULL "
                                "FROM templates WHERE identity = ? ORDER BY id", (identity,)).fetchall()
        return [Template(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), bool(r[7])) for r in rows]

    def template_features(self, identity: int) -> np.ndarray:
        self._require(identity)
        rows = self._db.execute("SELECT feature FROM templates WHERE identity = ? ORDER BY id", (identity,)).fetchall()
        return np.stack([np.frombuffer(r[0], np.float32) for r in rows]) if rows else np.zeros((0, self.feature_dim),
                                                                                                np.float32)

    def thumbnail(self, template: int) -> bytes | None:
        row = None
        if abs(template) <= SQLITE_MAX_INT:
            row = self._db.execute("SELECT thumbnail FROM templates WHERE id = ?", (template,)).fetchone()
        if row is None:
            raise GalleryError(f"no template {template} in gallery {self.path}")
        return row[0]

    def sightings(self, identity: int) -> list[Sighting]:
        self._require(identity)
        rows = self._db.execute("SELECT id, identity, camera, track, first, last FROM sightings WHERE identity = ? "
                                "ORDER BY first, id", (identity,)).fetchall()
        return [Sighting(*r) for r in rows]

    def last_sighting(self, identity: int) -> Sighting | None:
        row = self._db.execute("SELECT id, identity, camera, track, first, last FROM sightings WHERE identity = ? "
                               "ORDER BY last DESC, id DESC LIMIT 1", (identity,)).fetchone()
        return None if row is None else Sighting(*row)

    def journal_mode(self) -> str:
        return self._db.execute("PRAGMA journal_mode").fetchone()[0]

    def integrity_check(self) -> str:
        """SQLite's own check of the file: ``ok`` or the problems found."""
        return "; ".join(r[0] for r in self._db.execute("PRAGMA integrity_check").fetchall())

    def close(self) -> None:
        self._db.close()

