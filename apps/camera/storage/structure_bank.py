"""The structure bank: DG-Net structure codes (pose, background, viewpoint) of crops each camera saw,
kept in the gallery file so that an enrolment can render the person in those structures.

The bank is bounded and refreshed: each camera keeps its ``per_camera`` newest codes (the oldest goes
when one more arrives), and one track gives a code at most every ``track_interval_s`` of that
camera's clock, so a person standing still for a minute does not fill a camera's share. Codes are
stored as float16 (half the size; the decoder's input precision is not the limit of a rendered view),
with a JPEG thumbnail of the crop so that a structure can be shown.

Choosing K structures for an enrolment spreads them across cameras: round-robin over the cameras,
newest first within each, the enrolment's own camera after every other one (a view of the person in
the camera that enrolled them adds least).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dgnet_edge.apps.camera.defaults import BANK_PER_CAMERA, BANK_TRACK_INTERVAL_S
from dgnet_edge.apps.camera.storage.gallery_base import GalleryBase, encode_thumbnail


@dataclass(frozen=True)
class Structure:
    """One banked structure code, (C, H, W) float32."""

    id: int
    camera: str
    track: int | None
    time: float
    code: np.ndarray


def spread_across_cameras(entries: Sequence[tuple[int, str, float]], k: int,
                          exclude_camera: str | None = None) -> list[int]:
    """Ids of at most ``k`` of ``entries`` (id, camera, time): round-robin over cameras in name order,
    newest first within each; ``exclude_camera``'s entries only once the other cameras' run out."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    by_camera: dict[str, list[tuple[float, int]]] = {}
    for sid, camera, time in entries:
        by_camera.setdefault(camera, []).append((time, sid))
    for items in by_camera.values():
        items.sort(key=lambda item: (-item[0], -item[1]))
    others = [by_camera[c] for c in sorted(by_camera) if c != exclude_camera]
    chosen = _round_robin(others, k)
    if exclude_camera in by_camera:
        chosen += _round_robin([by_camera[exclude_camera]], k - len(chosen))
    return chosen


def _round_robin(columns: list[list[tuple[float, int]]], k: int) -> list[int]:
    chosen: list[int] = []
    depth = 0
    while len(chosen) < k and any(depth < len(c) for c in columns):
        chosen += [c[depth][1] for c in columns if depth < len(c)][: k - len(chosen)]
        depth += 1
    return chosen


class StructureBank:
    """The structures of one gallery (and so of its thread), kept beside its identities.

    Args:
        gallery: the gallery whose file holds the bank.
        per_camera: codes kept per camera (the newest).
        track_interval_s: least time, on the camera's clock, between two codes from one track.
    """

    def __init__(self, gallery: GalleryBase, *, per_camera: int = BANK_PER_CAMERA, track_interval_s: float = BANK_TRACK_INTERVAL_S):
        if per_camera < 1:
            raise ValueError(f"per_camera must be >= 1, got {per_camera}")
        self.gallery = gallery
        self.per_camera = per_camera
        self.track_interval_s = track_interval_s
        self._admitted: dict[tuple[str, int], float] = {}  # (camera, track) -> time of its last code

    def due(self, camera: str, track: int, time: float) -> bool:
        """Whether ``track`` of ``camera`` may give a code at ``time`` (its last one is old enough)."""
        last = self._admitted.get((camera, track))
        return last is None or time - last >= self.track_interval_s or time < last

    def admit(self, camera: str, track: int, time: float) -> None:
        """``track`` of ``camera`` gave a code at ``time`` (it is due again ``track_interval_s`` later)."""
        self._admitted[(camera, track)] = time

    def retain(self, camera: str, live_tracks: set[int]) -> None:
        """Forget the admission times of ``camera``'s tracks that are gone (bounded memory)."""
        for key in [key for key in self._admitted if key[0] == camera and key[1] not in live_tracks]:
            del self._admitted[key]

    def add(self, camera: str, codes: np.ndarray, crops: Sequence[np.ndarray | None],
            tracks: Sequence[int | None], time: float) -> list[int]:
        """Bank ``codes`` (N, C, H, W) seen by ``camera`` at ``time`` (``crops``: BGR thumbnails or
        None), dropping that camera's oldest beyond ``per_camera``; the ids of the new rows kept. The
        caller admits the tracks (:meth:`admit`) when it encodes them, before they are banked."""
        if not (len(codes) == len(crops) == len(tracks)):
            raise ValueError(f"{len(codes)} codes, {len(crops)} crops and {len(tracks)} tracks: give one of each per row")
        if len(codes) == 0:
            return []
        codes = np.asarray(codes)
        if codes.ndim != 4:
            raise ValueError(f"structure codes must be (N, C, H, W), got shape {codes.shape}")
        shape = ",".join(str(d) for d in codes.shape[1:])
        rows = [(track, time, shape, code.astype(np.float16).tobytes(), None if crop is None else encode_thumbnail(crop))
                for code, crop, track in zip(codes, crops, tracks)]
        return self.gallery.add_structures(camera, rows, self.per_camera)

    def counts(self) -> dict[str, int]:
        """Codes banked per camera."""
        return self.gallery.structure_counts()

    def __len__(self) -> int:
        return sum(self.gallery.structure_counts().values())

    def choose(self, k: int, exclude_camera: str | None = None, shape: tuple[int, ...] | None = None) -> list[Structure]:
        """K structures spread across cameras (:func:`spread_across_cameras`); ``shape``: only codes of
        that (C, H, W), the generator's (a bank filled by another export's generator is left alone)."""
        rows = self.gallery.structure_index()
        wanted = None if shape is None else ",".join(str(d) for d in shape)
        ids = spread_across_cameras([(r[0], r[1], r[2]) for r in rows if wanted is None or r[3] == wanted], k,
                                    exclude_camera)
        chosen = []
        for sid in ids:
            track, camera, time, shape_text, blob = self.gallery.structure(sid)
            chosen.append(Structure(sid, camera, track, time, self._code(sid, shape_text, blob)))
        return chosen

    def _code(self, structure: int, shape_text: str, blob: object) -> np.ndarray:
        """A stored code as (C, H, W) float32; a GalleryError for one damaged in the file."""
        try:
            dims = tuple(int(d) for d in str(shape_text).split(","))
            if not isinstance(blob, bytes) or len(blob) != 2 * int(np.prod(dims)) or min(dims) < 1:
                raise ValueError
        except ValueError:
            size = f"{len(blob)} bytes" if isinstance(blob, bytes) else f"a {type(blob).__name__}"
            raise self.gallery.unreadable(f"structure {structure} holds a code of {size} for shape {shape_text!r}") from None
        return np.frombuffer(blob, np.float16).astype(np.float32).reshape(dims)

    def thumbnail(self, structure: int) -> bytes | None:
        """The JPEG of a structure's crop (None when it was banked without one)."""
        found, jpeg = self.gallery.structure_thumbnail(structure)
        if not found:
            raise KeyError(f"no structure {structure} in {self.gallery.location}")
        return jpeg
