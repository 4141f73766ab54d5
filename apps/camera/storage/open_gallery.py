"""One opener for every gallery: ``--gallery`` is a file path (SQLite) or a ``postgresql://`` URL."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any, Union

from dgnet_edge.apps.camera.storage.gallery_base import GalleryBase

URL_SCHEMES = ("postgresql://", "postgres://")
GallerySpec = Union[str, Path]


def is_database_url(spec: GallerySpec) -> bool:
    """Whether ``spec`` names a PostgreSQL database rather than a file."""
    return isinstance(spec, str) and spec.lower().startswith(URL_SCHEMES)


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:  # not even a URL: keep what comes before any password
        return url.split(":", 1)[0] + "://..."
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}@{host}"))


def parse_gallery_spec(text: str) -> GallerySpec:
    """The CLI's ``--gallery`` text as a URL (kept as text) or a path."""
    return text if is_database_url(text) else Path(text)


def open_gallery(spec: GallerySpec, feature_dim: int | None = None, *, read_only: bool = False,
                 queue_writes: bool = False, spool: Path | None = None, **options: Any) -> GalleryBase:
    """The gallery ``spec`` names, opened.

    Args:
        spec: a file path (SQLite) or ``postgresql://USER@HOST[:PORT]/DATABASE``.
        feature_dim, read_only: as for the galleries (a missing gallery is created when ``feature_dim``
            is given).
        queue_writes: PostgreSQL only: keep working through a database outage (the camera app).
        spool: PostgreSQL with ``queue_writes``: the file where queued writes wait (None: memory).
        options: the backend's own (``max_templates``, ``synthetic_weight``; SQLite's ``synchronous``,
            PostgreSQL's ``search_in_db_above``).
    """
    if is_database_url(spec):
        from dgnet_edge.apps.camera.storage.gallery_postgres import PostgresGallery

        return PostgresGallery(str(spec), feature_dim, read_only=read_only, queue_writes=queue_writes, spool=spool,
                               **options)
    from dgnet_edge.apps.camera.storage.gallery import Gallery

    return Gallery(spec, feature_dim, read_only=read_only, **options)
