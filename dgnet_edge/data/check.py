"""Checking a dataset folder before training on it: counts per split and camera, and problems.

Reading the splits already rejects a missing folder, a wrong layout or a malformed file name
(DatasetError naming it). :func:`check_dataset` adds what only the whole set shows: query
identities that have no gallery image from another camera (they cannot be evaluated under the
Market-1501 rules), empty (0-byte) files and broken symbolic links (found without decoding) and,
when asked, images that do not decode.
"""

from __future__ import annotations

import statistics
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from dgnet_edge.data.dataset import ImageRecord, ReidDataset, is_broken_link
from dgnet_edge.errors import DatasetError, ImageReadError

SPLITS = ("train", "query", "gallery")


@dataclass(frozen=True)
class SplitStats:
    """One split. ``identities`` and ``images_per_identity`` count real identities only (id >= 1
    outside train); ``per_camera`` maps the 1-based camera number to its image count."""

    images: int
    identities: int
    cameras: int
    per_camera: dict[int, int]
    images_per_identity: tuple[int, float, int]  # min, median, max


@dataclass(frozen=True)
class DatasetCheck:
    root: str
    dataset: str
    splits: dict[str, SplitStats]
    distractors: int
    junk: int
    query_ids_missing_from_gallery: list[int]
    undecodable: list[str] = field(default_factory=list)
    decoded: bool = False
    empty_or_broken: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        found = []
        missing = self.query_ids_missing_from_gallery
        if missing:
            shown = ", ".join(str(p) for p in missing[:10]) + (" ..." if len(missing) > 10 else "")
            found.append(f"{len(missing)} query identities have no gallery image from another camera ({shown})")
        if self.empty_or_broken and not self.undecodable:  # decoding reports them too
            shown = "; ".join(self.empty_or_broken[:5]) + (" ..." if len(self.empty_or_broken) > 5 else "")
            found.append(f"{len(self.empty_or_broken)} image files are empty or broken links: {shown}")
        if self.undecodable:
            shown = "; ".join(self.undecodable[:5]) + (" ..." if len(self.undecodable) > 5 else "")
            found.append(f"{len(self.undecodable)} images do not decode: {shown}")
        return found

    def raise_for_problems(self) -> None:
        if self.problems:
            raise DatasetError(f"{self.root}: " + "; ".join(self.problems))

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["problems"] = self.problems
        return d


def _split_stats(records: list[ImageRecord], real_only: bool) -> SplitStats:
    people = [r for r in records if r.pid >= 1 or not real_only]
    per_id = sorted(Counter(r.pid for r in people).values())
    spread = (per_id[0], float(statistics.median(per_id)), per_id[-1]) if per_id else (0, 0.0, 0)
    per_camera = Counter(r.camid + 1 for r in records)
    return SplitStats(
        images=len(records),
        identities=len(per_id),
        cameras=len(per_camera),
        per_camera=dict(sorted(per_camera.items())),
        images_per_identity=spread,
    )


def _missing_in_gallery(query: list[ImageRecord], gallery: list[ImageRecord]) -> list[int]:
    cameras_of: dict[int, set[int]] = {}
    for r in gallery:
        cameras_of.setdefault(r.pid, set()).add(r.camid)
    missing = set()
    for r in query:
        if not cameras_of.get(r.pid, set()) - {r.camid}:
            missing.add(r.pid)
    return sorted(missing)


def _undecodable(records: list[ImageRecord], workers: int) -> list[str]:
    from dgnet_edge.data.images import read_image  # OpenCV only when decoding is asked for

    def one(record: ImageRecord) -> str | None:
        try:
            read_image(record.path)
        except ImageReadError as e:
            return str(e)
        return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return [msg for msg in pool.map(one, records) if msg is not None]


def _empty_or_broken(records: list[ImageRecord]) -> list[str]:
    """Files a stat shows to be unusable: 0 bytes, or a symbolic link to nothing."""
    found = []
    for r in records:
        if is_broken_link(r.path):
            found.append(f"{r.path}: broken symbolic link")
        elif r.path.stat().st_size == 0:
            found.append(f"{r.path}: empty file (0 bytes)")
    return found


def check_dataset(dataset: ReidDataset, decode: bool = False, workers: int = 4) -> DatasetCheck:
    """Counts and problems of ``dataset``; reading it raises DatasetError on a malformed tree."""
    splits = {name: _split_stats(dataset.split(name), real_only=name != "train") for name in SPLITS}
    gallery_pids = Counter(r.pid for r in dataset.gallery)
    everything = [r for name in SPLITS for r in dataset.split(name)]
    return DatasetCheck(
        root=str(dataset.root),
        dataset=dataset.name,
        splits=splits,
        distractors=gallery_pids[0],
        junk=gallery_pids[-1],
        query_ids_missing_from_gallery=_missing_in_gallery(dataset.query, dataset.gallery),
        undecodable=_undecodable(everything, workers) if decode else [],
        decoded=decode,
        empty_or_broken=_empty_or_broken(everything),
    )
