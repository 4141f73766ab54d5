"""The common shape of every re-id dataset: train / query / gallery lists of labelled images."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from dgnet_edge.errors import DatasetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class ImageRecord:
    """One labelled image.

    ``pid`` is the identity as the dataset names it (0 = distractor, -1 = junk in Market-style test
    sets) except in a training split, where identities are relabelled 0..N-1 in sorted order of the
    original ids. ``camid`` is the 0-based camera index.
    """

    path: Path
    pid: int
    camid: int


def relabel(records: list[ImageRecord]) -> list[ImageRecord]:
    """Map the identities of a training split to 0..N-1, in sorted order of the original ids."""
    mapping = {pid: i for i, pid in enumerate(sorted({r.pid for r in records}))}
    return [ImageRecord(r.path, mapping[r.pid], r.camid) for r in records]


def is_broken_link(path: Path) -> bool:
    """A symbolic link whose target is gone."""
    return path.is_symlink() and not path.exists()


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name; DatasetError if it is not a folder.

    Hidden files are skipped: copies made on macOS leave a ``._name.jpg`` metadata file beside
    each image, which is not an image. Broken symbolic links are listed, so that they count as
    unreadable images (reported by `data check`, skipped and counted by training) instead of
    vanishing from the split.
    """
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder: expected a folder of images there")
    return sorted(
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES and (p.is_file() or is_broken_link(p))
    )


class ReidDataset:
    """Base of the dataset readers.

    A subclass sets :attr:`name` and :attr:`layout` (a short description of the folder tree, shown
    when the tree is wrong), lists its required paths in :meth:`required_paths` and reads each split
    in :meth:`_read_split`. Splits are read on first access; ``train`` is relabelled to 0..N-1. A split
    with no images is a DatasetError (a half-unpacked archive or a wrong folder, never a dataset).
    """

    name = "base"
    layout = ""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        self.check_before_run()

    def required_paths(self) -> list[Path]:
        raise NotImplementedError

    def _read_split(self, split: str) -> list[ImageRecord]:
        raise NotImplementedError

    def check_before_run(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise DatasetError(f"{self.name}: dataset folder {self.root} is a file, not a folder: give the dataset's root folder")
        if not self.root.is_dir():
            raise DatasetError(f"{self.name}: dataset folder {self.root} does not exist. Expected layout:\n{self.layout}")
        missing = [p for p in self.required_paths() if not p.exists()]
        if missing:
            names = ", ".join(str(p) for p in missing)
            raise DatasetError(f"{self.name}: {names} not found under {self.root}. Expected layout:\n{self.layout}")

    def _read_nonempty(self, split: str) -> list[ImageRecord]:
        records = self._read_split(split)
        if not records:
            raise DatasetError(
                f"{self.name}: the {split} split under {self.root} has no images; check that the archive "
                f"unpacked completely. Expected layout:\n{self.layout}"
            )
        return records

    @cached_property
    def train(self) -> list[ImageRecord]:
        return relabel(self._read_nonempty("train"))

    @cached_property
    def query(self) -> list[ImageRecord]:
        return self._read_nonempty("query")

    @cached_property
    def gallery(self) -> list[ImageRecord]:
        return self._read_nonempty("gallery")

    @property
    def num_train_pids(self) -> int:
        return len({r.pid for r in self.train})

    @property
    def num_train_cams(self) -> int:
        return len({r.camid for r in self.train})

    def split(self, name: str) -> list[ImageRecord]:
        if name not in ("train", "query", "gallery"):
            raise ValueError(f"unknown split {name!r}: expected train, query or gallery")
        return getattr(self, name)

    def summary(self) -> dict[str, dict[str, int]]:
        """Images, identities and cameras per split."""
        out = {}
        for split in ("train", "query", "gallery"):
            records = self.split(split)
            out[split] = {
                "images": len(records),
                "ids": len({r.pid for r in records}),
                "cameras": len({r.camid for r in records}),
            }
        return out

    def camera_counts(self, split: str) -> Counter[int]:
        return Counter(r.camid for r in self.split(split))
