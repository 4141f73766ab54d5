"""What every gallery is, whatever holds it: the interface the camera app, the structure bank,
synthesis, export and ``dgnet-edge gallery`` use, and the pieces the backends share.

Two backends sit behind :class:`GalleryBase`: an SQLite file on one box (:mod:`.gallery`) and a
PostgreSQL database shared by many devices (:mod:`.gallery_postgres`); :func:`.open_gallery.open_gallery`
picks one from a path or a ``postgresql://`` URL.
"""

from __future__ import annotations

import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dgnet_edge.apps.camera.defaults import SYNTHETIC_WEIGHT
from dgnet_edge.boxes import l2_normalise
from dgnet_edge.errors import DgnetEdgeError, UsageError

FORMAT = "dgnet-edge-gallery"
KINDS = ("real", "synthetic")
THUMBNAIL_HEIGHT = 128
MAX_NAME = 200  # characters in a person's name


class GalleryError(DgnetEdgeError):
    """A gallery that is not a gallery, of another version or feature size, or an unknown id."""


@dataclass(frozen=True)
class Identity:
    id: int
    name: str | None
    created: float
    updated: float
    templates: int  # real ones
    synthetic: int
    cameras: tuple[str, ...]  # where it was seen, by last sighting first
    last_seen: float | None

    @property
    def label(self) -> str:
        return self.name or f"#{self.id}"


@dataclass(frozen=True)
class Template:
    id: int
    identity: int
    camera: str | None
    time: float
    kind: str
    source: str
    enrolment: bool
    has_thumbnail: bool


@dataclass(frozen=True)
class Sighting:
    id: int
    identity: int
    camera: str
    track: int
    first: float
    last: float


def encode_thumbnail(crop_bgr: np.ndarray, height: int = THUMBNAIL_HEIGHT) -> bytes:
    """A JPEG of a BGR crop, shrunk to ``height`` rows when taller."""
    import cv2

    if crop_bgr.ndim != 3 or crop_bgr.shape[2] != 3 or crop_bgr.shape[0] == 0 or crop_bgr.shape[1] == 0:
        raise ValueError(f"a thumbnail needs a BGR image (H, W, 3), got shape {crop_bgr.shape}")
    crop_bgr = np.ascontiguousarray(crop_bgr)
    h, w = crop_bgr.shape[:2]
    if h > height:
        crop_bgr = cv2.resize(crop_bgr, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", crop_bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("the crop could not be encoded as JPEG")
    return data.tobytes()


def check_name(name: str) -> str:
    """``name`` when it can name a person (not blank, at most :data:`MAX_NAME` characters, no control
    characters); a UsageError saying what is wrong otherwise."""
    if len(name) > MAX_NAME:
        raise UsageError(f"a name has at most {MAX_NAME} characters, this one has {len(name)}: give a shorter one")
    if not name.strip():
        raise UsageError(f"name {name!r} is blank: give the person's name")
    control = next((c for c in name if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        raise UsageError(f"name {name!r} holds the control character {control!r}: give a name on one line")
    return name


def check_synthetic_weight(weight: float | None) -> float:
    """The synthetic views' share in an identity's prototype: :data:`SYNTHETIC_WEIGHT` unless given."""
    weight = SYNTHETIC_WEIGHT if weight is None else float(weight)
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"synthetic_weight must be in [0, 1], got {weight}")
    return weight


def scoring_rows(kinds: Sequence[str], features: np.ndarray, synthetic_weight: float) -> np.ndarray:
    """The rows one identity is scored by (its score: the max cosine over them).

    Its real templates, each on its own; and, when it has synthetic views, one prototype:
    normalise(mean of the real templates + ``synthetic_weight`` x mean of the views). A view never
    scores on its own, so no view can decide an identity; it can only pull the person's prototype
    towards the poses and cameras it was rendered in. An identity without a real template has no
    rows.
    """
    kinds = np.asarray(kinds)
    real, views = features[kinds == "real"], features[kinds == "synthetic"]
    if len(real) == 0 or len(views) == 0 or synthetic_weight == 0:
        return real
    prototype = real.mean(axis=0) + synthetic_weight * views.mean(axis=0)
    return np.concatenate([real, (prototype / max(float(np.linalg.norm(prototype)), 1e-12))[None]]).astype(np.float32)


def least_diverse(features: np.ndarray, pinned: Sequence[bool], keep: int) -> list[int]:
    """Rows of ``features`` (T, D) to drop, in order, until at most ``keep`` remain: each time the one
    most similar to its nearest other (a near-duplicate adds nothing to a max over templates), never a
    pinned one (an enrolment template); ties go to the oldest, the first row."""
    pinned = np.asarray(pinned, bool)
    if len(features) <= keep:
        return []
    sim = features @ features.T
    np.fill_diagonal(sim, -np.inf)
    alive = np.ones(len(features), bool)
    dropped: list[int] = []
    while alive.sum() > keep and (alive & ~pinned).any():
        redundancy = np.where(alive[None], sim, -np.inf).max(axis=1)
        redundancy[~alive | pinned] = -np.inf
        victim = int(redundancy.argmax())
        alive[victim] = False
        dropped.append(victim)
    return dropped


class GalleryBase(ABC):
    """Identities, their templates and sightings, matched against an in-memory cache.

    A backend fills ``_templates`` (identity -> {template id: (kind, feature)}) and ``_names``
    (identity -> name) when it opens, keeps them in step with its own writes, and brings them up to
    date with other writers' in :meth:`_refresh`. The templates are stacked into one matrix on
    demand, so that scoring N features against every identity is one matrix product.

    ``spec`` is what opens it again (:func:`.open_gallery.open_gallery`: a file path, or a URL);
    ``location`` names it in messages (the path, or the URL without its password).
    """

    feature_dim: int
    spec: Path | str
    location: str
    synthetic_weight: float
    read_only: bool

    def _reset_cache(self) -> None:
        self._templates: dict[int, dict[int, tuple[str, np.ndarray]]] = {}
        self._names: dict[int, str | None] = {}
        self._matrix: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        # identity -> (its (kind, feature) entries, its scoring rows): rows are made again only for an
        # identity whose entries changed, not for the whole gallery after every write
        self._rows: dict[int, tuple[tuple, np.ndarray]] = {}

    @abstractmethod
    def _refresh(self) -> None:
        """Bring the cache up to date with what other writers committed."""

    def _matrix_cache(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(R, D) scoring rows (:func:`scoring_rows`) sorted by identity, the identity ids and row starts."""
        if self._matrix is None:
            ids, blocks, starts, count = [], [], [], 0
            rows_by_identity = {}
            for identity in sorted(self._templates):
                templates = self._templates[identity]
                if not templates:
                    continue
                entries = tuple(templates.values())
                known = self._rows.get(identity)
                if known is None or len(known[0]) != len(entries) or any(a is not b for a, b in zip(known[0], entries)):
                    kinds, features = zip(*entries)
                    known = (entries, scoring_rows(kinds, np.stack(features), self.synthetic_weight))
                rows_by_identity[identity] = known
                rows = known[1]
                if len(rows):
                    ids.append(identity)
                    starts.append(count)
                    blocks.append(rows)
                    count += len(rows)
            self._rows = rows_by_identity
            matrix = np.concatenate(blocks) if blocks else np.zeros((0, self.feature_dim), np.float32)
            self._matrix = (matrix, np.asarray(ids, np.int64), np.asarray(starts, np.int64))
        return self._matrix

    # -- matching ----------------------------------------------------------------------------------
    def identity_scores(self, features: np.ndarray, include: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """Identity ids (I,) and scores (N, I): per identity, the max cosine over its scoring rows (its
        real templates and, with synthetic views, its prototype: :func:`scoring_rows`).

        ``include``: identities whose scores the caller needs even when a backend that searches an
        index returns only the nearest ones (the in-memory path scores every identity anyway).
        """
        features = self._check_features(features)
        self._refresh()
        matrix, ids, starts = self._matrix_cache()
        if len(ids) == 0 or len(features) == 0:
            return ids, np.zeros((len(features), len(ids)), np.float32)
        return ids, np.maximum.reduceat(features @ matrix.T, starts, axis=1)

    def match(self, features: np.ndarray, threshold: float) -> list[tuple[int | None, float]]:
        """For each row, the best identity and its score; identity None when the score is under ``threshold``."""
        ids, scores = self.identity_scores(features)
        if len(ids) == 0:
            return [(None, float("-inf"))] * len(scores)
        best = scores.argmax(axis=1)
        top = scores[np.arange(len(scores)), best]
        return [(int(ids[b]) if s >= threshold else None, float(s)) for b, s in zip(best, top)]

    def _best_new_identity(self, feature: np.ndarray, threshold: float, known: set[int]) -> int | None:
        """The identity, not one of ``known`` (those the caller matched against, and had its reasons not
        to take), that ``feature`` matches best at ``threshold`` or more once the cache is brought up to
        date; None when there is none."""
        ids, scores = self.identity_scores(feature)
        new = np.array([int(i) not in known for i in ids], bool)
        if not new.any():
            return None
        scores = np.where(new, scores[0], -np.inf)
        best = int(scores.argmax())
        return int(ids[best]) if scores[best] >= threshold else None

    def _check_features(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim == 1:
            features = features[None]
        if features.ndim != 2 or features.shape[1] != self.feature_dim:
            raise ValueError(f"features must be (N, {self.feature_dim}), got shape {features.shape}")
        return l2_normalise(features)

    def label(self, identity: int) -> str:
        """The identity's name, or ``#id`` when it has none (from memory: cheap enough for every frame)."""
        self._refresh()
        return self._names.get(identity) or f"#{identity}"

    # -- writes ------------------------------------------------------------------------------------
    @abstractmethod
    def enrol(self, feature: np.ndarray, thumbnail: np.ndarray | None = None, *, name: str | None = None,
              camera: str | None = None, time: float | None = None, source: str = "photo",
              unless_matches: float | None = None) -> int:
        """A new identity with one real enrolment template (``thumbnail``: the BGR crop); its id.

        ``time`` is the template's (the source's clock); identities' created and updated times are
        the wall clock. ``unless_matches``: a threshold; where another writer may have enrolled the
        same person since this gallery last looked (a shared database), the feature is matched again
        inside the enrolment's transaction and, on a score at or over it, joins that identity as a
        template instead, whose id is returned.
        """

    @abstractmethod
    def add_template(self, identity: int, feature: np.ndarray, thumbnail: np.ndarray | None = None, *,
                     camera: str | None = None, time: float | None = None, kind: str = "real",
                     source: str) -> int | None:
        """Add a template to ``identity`` (dropping the least diverse one when full); the id kept, or None
        when the new one was itself the least diverse and so not kept."""

    @abstractmethod
    def rename(self, identity: int, name: str | None) -> None: ...

    @abstractmethod
    def delete(self, identity: int) -> None: ...

    @abstractmethod
    def merge(self, keep: int, other: int) -> None:
        """Move ``other``'s templates and sightings to ``keep`` and delete ``other``; ``keep`` takes
        ``other``'s name if it has none. Templates are then bounded again."""

    @abstractmethod
    def open_sighting(self, identity: int, camera: str, track: int, time: float) -> int:
        """Start a sighting (a track holding ``identity`` in ``camera``); its id."""

    @abstractmethod
    def extend_sightings(self, last_times: dict[int, float]) -> None:
        """Move the end of several sightings (id -> last time) in one transaction."""

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[GalleryBase]:
        """Writes in the block commit together or not at all; a write that fails inside is undone alone."""

    @abstractmethod
    @contextmanager
    def snapshot(self) -> Iterator[GalleryBase]:
        """A block whose reads all see the gallery as of one moment, even while others write."""

    # -- the structure bank's rows (structure_bank.py keeps the rules) ------------------------------
    @abstractmethod
    def add_structures(self, camera: str, rows: Sequence[tuple[int | None, float, str, bytes, bytes | None]],
                       per_camera: int) -> list[int]:
        """Insert ``rows`` (track, time, shape 'C,H,W', float16 code, JPEG or None) for ``camera`` and keep
        that camera's ``per_camera`` newest; the ids of the new rows kept."""

    @abstractmethod
    def structure_counts(self) -> dict[str, int]:
        """Codes banked per camera, by camera name."""

    @abstractmethod
    def structure_index(self) -> list[tuple[int, str, float, str]]:
        """(id, camera, time, shape) of every banked structure."""

    @abstractmethod
    def structure(self, structure: int) -> tuple[int | None, str, float, str, bytes] | None:
        """(track, camera, time, shape, code) of one structure, None when there is none."""

    @abstractmethod
    def structure_thumbnail(self, structure: int) -> tuple[bool, bytes | None]:
        """(found, JPEG or None) of one structure."""

    # -- reads -------------------------------------------------------------------------------------
    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def identities(self) -> list[Identity]: ...

    @abstractmethod
    def identity(self, identity: int) -> Identity: ...

    @abstractmethod
    def templates(self, identity: int) -> list[Template]: ...

    @abstractmethod
    def template_features(self, identity: int) -> np.ndarray:
        """(T, D) features of ``identity``'s templates, in template id order."""

    @abstractmethod
    def thumbnail(self, template: int) -> bytes | None:
        """The JPEG bytes of a template's source crop (None when it was stored without one)."""

    @abstractmethod
    def sightings(self, identity: int) -> list[Sighting]: ...

    @abstractmethod
    def last_sighting(self, identity: int) -> Sighting | None: ...

    def unreadable(self, what: str) -> GalleryError:
        """The error for a gallery that is damaged or not ours (``what``: how)."""
        return GalleryError(f"{self.location} is not a readable gallery ({what}): give another --gallery")

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> GalleryBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
