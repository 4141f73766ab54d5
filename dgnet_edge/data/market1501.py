"""Market-1501 reader (also reads the synthetic world, which is written in this layout).

Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015.
https://zheng-lab-anu.github.io/Project/project_reid.html

Published split, 6 cameras:

    train     751 ids   12,936 images
    query     750 ids    3,368 images
    gallery   750 ids + distractors (id 0000) + junk (id -1)   19,732 images

File names are ``PPPP_cCsS_FFFFFF_BB.jpg``: identity, camera (1-based), sequence, frame, box.

This module also holds :func:`read_market_folder`, the reader of one folder of the Market layout
(``bounding_box_train`` / ``query`` / ``bounding_box_test``), which DukeMTMC-reID and CUHK03-NP
share.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Callable, Tuple

from dgnet_edge.data.dataset import ImageRecord, ReidDataset, list_images
from dgnet_edge.errors import DatasetError

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^(-1|\d+)_c(\d+)s?\d*_")

MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}

NameParser = Callable[[Path], Tuple[int, int]]


def parse_market_name(path: Path) -> tuple[int, int]:
    """(pid, 0-based camid) from a Market-style file name; DatasetError naming the file otherwise."""
    m = NAME_PATTERN.match(path.name)
    if m is None:
        raise DatasetError(f"{path}: file name does not follow the Market-1501 pattern PPPP_cCsS_FFFFFF_BB.jpg")
    pid, cam = int(m.group(1)), int(m.group(2))
    if cam < 1:
        raise DatasetError(f"{path}: camera number must start at 1, got c{cam}")
    return pid, cam - 1


def read_market_folder(folder: Path, split: str, parse: NameParser = parse_market_name) -> list[ImageRecord]:
    """The labelled images of one folder of the Market layout, sorted by file name.

    ``parse`` turns a file name into (pid, 0-based camid) or raises DatasetError naming the file.
    Identity 0 (distractor) and -1 (junk) are left out of ``train``, are an error in ``query`` and
    stay in ``gallery``, where the evaluation ranks distractors and drops junk.
    """
    records = []
    left_out = 0
    for path in list_images(folder):
        pid, camid = parse(path)
        if pid < 1:
            if split == "train":
                left_out += 1
                continue  # distractors and junk never train
            if split == "query":
                raise DatasetError(
                    f"{path}: a query image must have a real identity (id >= 1), got {pid}; "
                    "distractors (0) and junk (-1) belong in the gallery folder"
                )
        records.append(ImageRecord(path, pid, camid))
    if left_out:
        log.info("%s: left %d distractor/junk image(s) out of the training split", folder, left_out)
    return records


class Market1501(ReidDataset):
    """Market-1501 in its published layout; ``root`` may also be the folder that holds the unpacked
    ``Market-1501-v15.09.15/`` (or ``market1501/``) folder."""

    name = "market1501"
    layout = (
        "  ROOT/bounding_box_train/0002_c1s1_000451_03.jpg ...\n"
        "  ROOT/query/0001_c1s1_001051_00.jpg ...\n"
        "  ROOT/bounding_box_test/0001_c1s1_001051_03.jpg ... (id 0000 = distractor, -1 = junk)\n"
        "  ROOT may also hold the unpacked Market-1501-v15.09.15/ (or market1501/) folder."
    )
    folders = MARKET_FOLDERS

    def __init__(self, root: str | Path):
        root = Path(root).expanduser()
        for candidate in (
            root,
            root / "Market-1501-v15.09.15",
            root / "market1501",
            root / "market1501" / "Market-1501-v15.09.15",
        ):
            if (candidate / "query").is_dir():
                root = candidate
                break
        super().__init__(root)

    def required_paths(self) -> list[Path]:
        return [self.root / f for f in self.folders.values()]

    def _read_split(self, split: str) -> list[ImageRecord]:
        return read_market_folder(self.root / self.folders[split], split)
